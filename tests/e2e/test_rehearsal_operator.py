"""Rehearsed Migrations through the operator, on PostgreSQL and MariaDB servers.

The target Environment names its scratch server in a Secret; a Migration with
``spec.rehearsal: Required`` goes Rehearsing → … → Succeeded (every phase seen through a
watch, so none is missed), with ``status.rehearsal`` (Passed, the digest the apply was
held to, the scratch database, the fresh backup) and a RehearsalPassed event, and leaves
no rehearsal database behind. A release that fails on the copy (a unique index only the
target has) ends Failed with RehearsalFailed, the target's rows and ledger exactly as
they were, nothing left on the scratch server, and no password in status or the log.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.db.scratch import PREFIX
from tests.db.dbhelpers import dump, execute, q, rows
from tests.db.test_rehearsal import rehearsal_databases
from tests.e2e.conftest import SHAPE_VARS, Kubectl
from tests.e2e.test_operator import apply_ok, environment, migration, wait_phase
from tests.fixtures import nocobase_shape as shape
from tests.harness.cluster import wait_for

pytestmark = pytest.mark.e2e
DONE = {"Succeeded", "Failed", "RolledBack"}


@pytest.fixture(params=["postgresql", "mysql"], ids=["postgresql", "mariadb"])
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def servers(
    kubectl: Kubectl,
    namespace: str,
    dialect: str,
    make_database: Any,
    tmp_path: Path,
    operator: Any,
) -> dict[str, str]:
    """dev and pre on the dialect's server, both Environments, pre with a store and the
    scratch server (the server's superuser connection) in a Secret."""
    dev, pre = make_database(dialect, "dev"), make_database(dialect, "pre")
    shape.build(dev, app="dev", seed=1, variables=SHAPE_VARS)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", seed=1, variables=SHAPE_VARS)
    scratch = make_database.server(dialect).admin_url()
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "scratch-server"},
        "stringData": {"url": scratch},
    }
    apply_ok(kubectl, namespace, json.dumps(secret))
    rehearsal = (
        "  rehearsal:\n    scratch: {urlFrom: {secretKeyRef: {name: scratch-server, key: url}}}\n"
    )
    store = tmp_path / "store"
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", dev)
        + "---"
        + environment("pre", "pre-release", pre, store=str(store), extra=rehearsal),
    )
    for env in ("dev", "pre"):
        kubectl("wait", "--for=condition=Ready", f"environment/{env}", "-n", namespace)
    return {"dev": dev, "pre": pre, "scratch": scratch, "store": str(store)}


@pytest.fixture
def phases(kubectl: Kubectl, namespace: str) -> Iterator[list[str]]:
    """Every phase the Migration ``m`` passes through, read live from a watch of the
    namespace's Migrations started before ``m`` exists."""
    plane = kubectl.control_plane
    cmd = [str(plane.kubectl_path), "--kubeconfig", str(plane.kubeconfig)]
    cmd += ["get", "migrations", "-n", namespace, "--watch"]  # the collection: m is not yet
    cmd += ["-o", 'jsonpath={.metadata.name} {.status.phase}{"\\n"}']
    watch = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen: list[str] = []

    def read() -> None:
        assert watch.stdout is not None
        for line in watch.stdout:
            name, _, phase = line.strip().partition(" ")
            if name == "m" and phase and (not seen or seen[-1] != phase):
                seen.append(phase)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    yield seen
    watch.terminate()
    watch.wait(timeout=10)
    reader.join(timeout=10)


def seen_finished(phases: list[str]) -> None:
    wait_for(lambda: bool(phases) and phases[-1] in DONE, timeout=30, description="the watch")


def events_of(kubectl: Kubectl, namespace: str) -> list[tuple[str, str]]:
    got = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=m"
    )
    return [(e["type"], e["reason"]) for e in got["items"]]


def test_a_required_rehearsal_passes_then_the_migration_applies(
    kubectl: Kubectl,
    namespace: str,
    servers: dict[str, str],
    phases: list[str],
    operator: Any,
) -> None:
    apply_ok(kubectl, namespace, migration("m", "dev", "pre", "  rehearsal: Required\n"))
    got = wait_phase(kubectl, namespace, "m", DONE, timeout=180)
    assert got["phase"] == "Succeeded", got
    rehearsal = got["rehearsal"]
    assert rehearsal["outcome"] == "Passed" and rehearsal["reason"] == "RehearsalPassed"
    assert rehearsal["planDigest"] == got["planDigest"] == got["plan"]["digest"]
    assert rehearsal["scratchDatabase"].startswith(PREFIX) and rehearsal["backupId"]
    assert rehearsal["backupId"] != got["backup"]["id"]
    assert (Path(servers["store"]) / "pre" / rehearsal["backupId"] / "manifest.json").exists()
    seen_finished(phases)
    assert "Rehearsing" in phases and phases[-1] == "Succeeded", phases
    assert phases.index("Rehearsing") < phases.index("BackingUp") < phases.index("Applying")
    assert ("Normal", "RehearsalPassed") in events_of(kubectl, namespace)
    assert rehearsal_databases(servers["scratch"]) == []
    assert rows(servers["pre"], "roles", "name", order="name")[-1] == ("support",)


def test_a_rehearsal_that_fails_on_the_copy_leaves_the_target_untouched(
    kubectl: Kubectl,
    namespace: str,
    dialect: str,
    servers: dict[str, str],
    phases: list[str],
    operator: Any,
) -> None:
    pre, roles = servers["pre"], q(dialect, "roles")
    # the end state breaks pre's unique index: dev adds 'Support' and gives member that
    # title too (whatever order the rows are written in, two rows hold it)
    execute(pre, f"create unique index uq_roles_title on {roles} (title)")
    execute(servers["dev"], f"update {roles} set title = 'Support' where name = 'member'")
    before = dump(pre)
    apply_ok(kubectl, namespace, migration("m", "dev", "pre", "  rehearsal: Required\n"))
    got = wait_phase(kubectl, namespace, "m", DONE, timeout=180)
    assert got["phase"] == "Failed", got
    stalled = next(c for c in got["conditions"] if c["type"] == "Stalled")
    assert stalled["reason"] == "RehearsalFailed" and "roles" in stalled["message"]
    assert got["rehearsal"]["outcome"] == "Failed" and "backup" not in got
    assert dump(pre) == before and "ferry_migrations" not in before
    assert rehearsal_databases(servers["scratch"]) == []
    seen_finished(phases)
    assert "Rehearsing" in phases and "BackingUp" not in phases and "Applying" not in phases
    assert ("Warning", "RehearsalFailed") in events_of(kubectl, namespace)
    password = servers["scratch"].split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    shown = kubectl("get", "migration", "m", "-n", namespace, "-o", "yaml").stdout
    assert password not in shown + operator.tail(400)
