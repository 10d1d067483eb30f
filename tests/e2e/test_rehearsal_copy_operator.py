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
from pathlib import Path
from typing import Any

import pytest

from tests.db.dbhelpers import dump
from tests.db.test_rehearsal import rehearsal_databases
from tests.db.test_rehearsal_copy import REFUSED, cramped_scratch
from tests.e2e.conftest import SHAPE_VARS, Kubectl
from tests.e2e.test_operator import apply_ok, environment, migration, wait_phase
from tests.fixtures import nocobase_shape as shape

pytestmark = pytest.mark.e2e
DONE = {"Succeeded", "Failed", "RolledBack"}


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"], ids=["postgresql", "mariadb"])
def test_a_copy_the_scratch_server_refuses_fails_the_migration_untouched(
    kubectl: Kubectl,
    namespace: str,
    dialect: str,
    make_database: Any,
    tmp_path: Path,
    operator: Any,
) -> None:
    dev, pre = make_database(dialect, "dev"), make_database(dialect, "pre")
    shape.build(dev, app="dev", seed=1, variables=SHAPE_VARS)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", seed=1, variables=SHAPE_VARS)
    before = dump(pre)
    store = tmp_path / "store"
    with cramped_scratch(make_database, dialect) as (scratch, password):
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "scratch-server"},
            "stringData": {"url": scratch},
        }
        apply_ok(kubectl, namespace, json.dumps(secret))
        rehearsal = (
            "  rehearsal:\n    scratch: {urlFrom: {secretKeyRef: {name: scratch-server, "
            "key: url}}}\n"
        )
        apply_ok(
            kubectl,
            namespace,
            environment("dev", "development", dev)
            + "---"
            + environment("pre", "pre-release", pre, store=str(store), extra=rehearsal),
        )
        for env in ("dev", "pre"):
            kubectl("wait", "--for=condition=Ready", f"environment/{env}", "-n", namespace)
        apply_ok(kubectl, namespace, migration("m", "dev", "pre", "  rehearsal: Required\n"))
        got = wait_phase(kubectl, namespace, "m", DONE, timeout=180)
        admin = make_database.server(dialect).admin_url()
        assert rehearsal_databases(admin) == []

    assert got["phase"] == "Failed", got
    stalled = next(c for c in got["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "RehearsalCopyFailed", stalled
    assert REFUSED[dialect] in stalled["message"]
    assert "would not take the target's backup" in stalled["message"]
    assert got["rehearsal"]["outcome"] == "Failed"
    assert got["rehearsal"]["reason"] == "RehearsalCopyFailed"
    assert "backup" not in got  # no pre-migration backup: the apply never started
    assert dump(pre) == before and "ferry_migrations" not in before
    events = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=m"
    )
    assert ("Warning", "RehearsalCopyFailed") in [(e["type"], e["reason"]) for e in events["items"]]
    shown = kubectl("get", "migration", "m", "-n", namespace, "-o", "yaml").stdout
    assert password not in shown + operator.tail(400)
