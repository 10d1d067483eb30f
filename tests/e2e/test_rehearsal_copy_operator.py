"""RehearsalCopyFailed through the operator: the scratch server will not take the copy.

The target Environment's scratch server (in a Secret) has a user that may create and
drop the rehearsal databases but not fill them (see tests/db/test_rehearsal_copy.py).
A Migration with ``spec.rehearsal: Required`` ends Failed with RehearsalCopyFailed
(condition, Warning event, ``status.rehearsal``), the server's words in the message,
no pre-migration backup taken, the target's rows and ledger as they were, nothing left
on the scratch server, and the user's password in neither status nor the log.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.db.dbhelpers import dump
from tests.db.test_rehearsal import rehearsal_databases
from tests.db.test_rehearsal_copy import REFUSED, cramped_scratch
from tests.e2e.conftest import Kubectl
from tests.e2e.test_operator import apply_ok, migration, wait_phase
from tests.e2e.test_rehearsal_operator import (  # noqa: F401  (the shared fixtures)
    dialect,
    events_of,
    servers,
)

pytestmark = pytest.mark.e2e
DONE = {"Succeeded", "Failed", "RolledBack"}


def test_a_copy_the_scratch_server_refuses_fails_the_migration_untouched(
    kubectl: Kubectl,
    namespace: str,
    dialect: str,  # noqa: F811
    servers: dict[str, str],  # noqa: F811
    make_database: Any,
    operator: Any,
) -> None:
    before = dump(servers["pre"])
    with cramped_scratch(make_database, dialect) as (scratch, password):
        # the target Environment's Secret now names the cramped user
        patch = json.dumps({"stringData": {"url": scratch}})
        kubectl("patch", "secret", "scratch-server", "-n", namespace, "--type=merge", "-p", patch)
        apply_ok(kubectl, namespace, migration("m", "dev", "pre", "  rehearsal: Required\n"))
        got = wait_phase(kubectl, namespace, "m", DONE, timeout=180)
        assert rehearsal_databases(servers["scratch"]) == []

    assert got["phase"] == "Failed", got
    stalled = next(c for c in got["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "RehearsalCopyFailed", stalled
    assert REFUSED[dialect] in stalled["message"]
    assert "would not take the target's backup" in stalled["message"]
    assert got["rehearsal"]["outcome"] == "Failed"
    assert got["rehearsal"]["reason"] == "RehearsalCopyFailed"
    assert "backup" not in got  # no pre-migration backup: the apply never started
    assert dump(servers["pre"]) == before and "ferry_migrations" not in before
    assert ("Warning", "RehearsalCopyFailed") in events_of(kubectl, namespace)
    shown = kubectl("get", "migration", "m", "-n", namespace, "-o", "yaml").stdout
    assert password not in shown + operator.tail(400)
