"""The Migration flow with ``spec.rehearsal: Required``, through a fake cluster on real
SQLite files (the scratch server of SQLite is a directory).

A passed rehearsal comes between approval and the backup, is recorded in
``status.rehearsal`` with the digest the real apply was held to, and is not repeated
for the same plan; a plan that fails on the copy, and a target that declares no scratch,
end the Migration ``Failed`` with their reasons while the target (rows and ledger) is
exactly as it was and no rehearsal file is left; ``Skip`` (the default) rehearses
nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from controller.api.migration import MigrationPhase
from controller.backups.store import FilesystemStore
from controller.flows.migration import reconcile_migration
from tests.unit import test_flows_migration_errors as migration_errors
from tests.unit.fake_cluster import FakeCluster
from tests.unit.test_flows_migration import NOW, conditions_of, env, migration

REQUIRED = {"rehearsal": "Required"}
dump = migration_errors.dump
urls = migration_errors.urls  # the fixture: dev with a builder's changes, pre as installed


def run(cluster: FakeCluster, name: str) -> tuple[dict[str, Any], list[str], list[str]]:
    """The status, the phases the flow announced, and the events' reasons."""
    body = cluster.get("Migration", "ns", name)
    assert body is not None
    phases: list[str] = []
    outcome = reconcile_migration(body, cluster, now=NOW, on_phase=phases.append)
    cluster.patch_status("Migration", "ns", name, outcome.status)
    return outcome.status, phases, [e.reason for e in outcome.events]


def target_env(url: str, store: Path, scratch: dict[str, Any] | None) -> dict[str, Any]:
    body = env("pre", url, store=store)
    if scratch is not None:
        body["spec"]["rehearsal"] = {"scratch": scratch}
    return body


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    path = tmp_path / "scratch"
    path.mkdir()
    return path


def make_cluster(
    tmp_path: Path, urls: dict[str, str], scratch: dict[str, Any] | None
) -> FakeCluster:
    return FakeCluster(
        env("dev", urls["dev"]),
        target_env(urls["pre"], tmp_path / "store", scratch),
        secrets={"scratch": {"url": f"sqlite:///{tmp_path / 'scratch'}"}},
    )


def test_a_required_rehearsal_passes_then_the_apply_runs_held_to_its_digest(
    tmp_path: Path, urls: dict[str, str], scratch: Path
) -> None:
    cluster = make_cluster(tmp_path, urls, {"directory": str(scratch)})
    cluster.add(migration("m", **REQUIRED))
    status, phases, reasons = run(cluster, "m")
    assert status["phase"] == "Succeeded", status
    assert phases.index(MigrationPhase.REHEARSING) < phases.index(MigrationPhase.BACKING_UP)
    rehearsal = status["rehearsal"]
    assert rehearsal["outcome"] == "Passed" and rehearsal["reason"] == "RehearsalPassed"
    assert rehearsal["planDigest"] == status["planDigest"]
    assert rehearsal["scratchDatabase"].startswith("ferry_rehearsal_")
    assert rehearsal["durationSeconds"] > 0 and rehearsal["leftoversDropped"] == []
    store = FilesystemStore(tmp_path / "store")
    used = store.manifest(rehearsal["backupId"])
    assert used.reason == "rehearsal" and used.environment == "pre"
    assert status["backup"]["id"] != rehearsal["backupId"]  # the pre-migration backup
    assert reasons == ["RehearsalPassed", "Applied"]
    assert list(scratch.iterdir()) == []
    assert "rehearsal" not in run(cluster, "m")[0]  # finished: nothing runs again


def test_the_scratch_server_may_come_from_a_secret(
    tmp_path: Path, urls: dict[str, str], scratch: Path
) -> None:
    ref = {"urlFrom": {"secretKeyRef": {"name": "scratch", "key": "url"}}}
    cluster = make_cluster(tmp_path, urls, ref)
    cluster.add(migration("m", **REQUIRED))
    status, _, _ = run(cluster, "m")
    assert status["phase"] == "Succeeded" and status["rehearsal"]["outcome"] == "Passed"
    assert list(scratch.iterdir()) == []


def test_a_plan_that_fails_on_the_copy_fails_the_migration_and_touches_nothing(
    tmp_path: Path, urls: dict[str, str], scratch: Path
) -> None:
    from tests.db.dbhelpers import execute

    # the end state breaks pre's unique index: dev adds 'Support' and gives member that
    # title too (whatever order the rows are written in, two rows hold it)
    execute(urls["pre"], "create unique index uq_roles_title on roles(title)")
    execute(urls["dev"], "update roles set title = 'Support' where name = 'member'")
    cluster = make_cluster(tmp_path, urls, {"directory": str(scratch)})
    before = dump(urls["pre"])
    cluster.add(migration("m", **REQUIRED))
    status, phases, reasons = run(cluster, "m")
    assert status["phase"] == "Failed", status
    assert conditions_of(status)["Stalled"] == ("True", "RehearsalFailed")
    assert conditions_of(status)["Applied"] == ("False", "RehearsalFailed")
    assert "UNIQUE constraint failed: roles.title" in status["message"]
    assert status["rehearsal"]["outcome"] == "Failed"
    assert status["rehearsal"]["message"] == status["message"]
    assert MigrationPhase.BACKING_UP not in phases and MigrationPhase.APPLYING not in phases
    assert reasons == ["RehearsalFailed"]
    assert dump(urls["pre"]) == before  # rows, schema, and no ferry_migrations ledger
    assert "ferry_migrations" not in before
    assert list(scratch.iterdir()) == []


def test_a_target_without_a_scratch_server_fails_the_required_rehearsal(
    tmp_path: Path, urls: dict[str, str]
) -> None:
    cluster = make_cluster(tmp_path, urls, None)
    before = dump(urls["pre"])
    cluster.add(migration("m", **REQUIRED))
    status, phases, _ = run(cluster, "m")
    assert status["phase"] == "Failed"
    assert conditions_of(status)["Stalled"] == ("True", "RehearsalNotConfigured")
    assert "spec.rehearsal.scratch" in status["message"] and phases == ["Planning"]
    assert dump(urls["pre"]) == before


def test_a_plan_that_changes_nothing_is_not_rehearsed(
    tmp_path: Path, urls: dict[str, str], scratch: Path
) -> None:
    cluster = make_cluster(tmp_path, urls, {"directory": str(scratch)})
    cluster.add(migration("first"))
    assert run(cluster, "first")[0]["phase"] == "Succeeded"
    cluster.add(migration("again", **REQUIRED))
    status, phases, _ = run(cluster, "again")
    assert status["phase"] == "Succeeded" and "rehearsal" not in status
    assert MigrationPhase.REHEARSING not in phases


def test_skip_is_the_default_and_rehearses_nothing(
    tmp_path: Path, urls: dict[str, str], scratch: Path
) -> None:
    cluster = make_cluster(tmp_path, urls, {"directory": str(scratch)})
    cluster.add(migration("m"))
    status, phases, _ = run(cluster, "m")
    assert status["phase"] == "Succeeded" and "rehearsal" not in status
    assert MigrationPhase.REHEARSING not in phases


def test_an_approved_plan_is_rehearsed_once_and_held_to_the_approved_digest(
    tmp_path: Path, urls: dict[str, str], scratch: Path
) -> None:
    cluster = make_cluster(tmp_path, urls, {"directory": str(scratch)})
    cluster.add(migration("m", approval={"required": True}, **REQUIRED))
    status, phases, _ = run(cluster, "m")
    assert status["phase"] == "AwaitingApproval" and MigrationPhase.REHEARSING not in phases
    digest = status["planDigest"]
    cluster.patch("Migration", "ns", "m", {"spec": {"approval": {"planDigest": digest}}})
    # A passed rehearsal of this very plan is already recorded (an earlier attempt
    # rehearsed it, then waited): it is not rehearsed again.
    recorded = {"outcome": "Passed", "planDigest": digest, "backupId": "earlier"}
    cluster.patch_status("Migration", "ns", "m", {"rehearsal": recorded})
    status, phases, _ = run(cluster, "m")
    assert status["phase"] == "Succeeded", status
    assert MigrationPhase.REHEARSING not in phases
    assert status["approval"]["planDigest"] == digest


def test_a_recorded_rehearsal_of_another_plan_is_not_trusted(
    tmp_path: Path, urls: dict[str, str], scratch: Path
) -> None:
    cluster = make_cluster(tmp_path, urls, {"directory": str(scratch)})
    cluster.add(migration("m", **REQUIRED))
    stale = {"outcome": "Passed", "planDigest": "sha256:" + "0" * 64}
    cluster.patch_status("Migration", "ns", "m", {"rehearsal": stale})
    status, phases, _ = run(cluster, "m")
    assert MigrationPhase.REHEARSING in phases and status["phase"] == "Succeeded"
    assert status["rehearsal"]["planDigest"] == status["planDigest"]
