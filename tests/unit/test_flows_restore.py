"""The Restore flow's branches, run for real: SQLite, a FilesystemStore and a fake cluster.

A Restore waits for what may yet come (its Backup or Migration, a Ready target, its
turn) and fails, changing nothing, for what cannot work (a failed Backup, an unknown
backup ID, a damaged archive, a Migration with nothing to roll back, later edits).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup
from controller.flows.migration import reconcile_migration
from controller.flows.outcome import Outcome
from controller.flows.restore import reconcile_restore
from tests.fixtures import nocobase_shape as shape
from tests.unit.fake_cluster import FakeCluster
from tests.unit.flow_support import conditions, events

NOW = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)
READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "Connected"}]}
VARS = {"HOOK_TOKEN": ("secret", "t"), "TICKET_WEBHOOK": ("plain", "u")}


def environment(name: str, url: str, store: Path | None, ready: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "stage": "production",
        "allowRunningApplication": True,
        "database": {"dialect": "sqlite", "url": url},
    }
    if store is not None:
        spec["backups"] = {"store": {"path": str(store)}}
    body = {"kind": "Environment", "metadata": {"name": name}, "spec": spec}
    if ready:
        body["status"] = READY
    return body


def restore(name: str = "r", created: str = "2026-03-28T11:30:00Z", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Restore",
        "metadata": {"name": name, "generation": 1, "creationTimestamp": created},
        "spec": spec,
    }


def run(cluster: FakeCluster, name: str = "r", retry: int = 0) -> Outcome:
    body = cluster.get("Restore", "ns", name)
    assert body is not None
    outcome = reconcile_restore(body, cluster, now=NOW, retry=retry)
    cluster.patch_status("Restore", "ns", name, outcome.status)
    return outcome


def assert_failed(outcome: Outcome, reason: str, fragment: str, phase: str = "Failed") -> None:
    """Ended (``phase``: Failed, or Reverted when the target is as it was) and says so."""
    status = outcome.status
    assert status["phase"] == phase, status
    assert fragment in status["message"] and status["error"] == status["message"]
    assert status["completionTime"] == "2026-03-28T12:00:00Z"
    cond = conditions(outcome)
    assert cond["Stalled"] == ("True", reason, status["message"])
    assert cond["Restored"][:2] == ("False", reason)
    assert events(outcome) == [("Warning", reason)]
    assert outcome.retry_after is None


def assert_waiting(
    outcome: Outcome, reason: str, fragment: str, delay: float, phase: str = "Pending"
) -> None:
    status = outcome.status
    assert status["phase"] == phase and fragment in status["message"], status
    assert "completionTime" not in status
    cond = conditions(outcome)
    assert cond["Reconciling"][:2] == ("True", reason)
    assert cond["Ready"][:2] == ("False", reason)
    assert outcome.retry_after == delay
    assert events(outcome) == [("Normal", reason)]


@pytest.fixture
def backup_id(url: str, store: Path) -> str:
    manifest, _ = create_backup(url, FilesystemStore(store), environment="prod")
    return manifest.id


def tables(url: str) -> dict[str, int]:
    return shape.row_counts(url)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        pytest.param({}, "backup", id="neither"),
        pytest.param({"backup": "b", "migration": "m"}, "backup", id="both"),
        pytest.param({"migration": "m", "tables": ["users"]}, "spec.tables", id="tables"),
        pytest.param({"backup": "../etc"}, "spec.backup", id="path-like-ref"),
    ],
)
def test_an_invalid_spec_fails_at_once(url: str, spec: dict[str, Any], fragment: str) -> None:
    cluster = FakeCluster(environment("prod", url, None), restore(**spec))
    assert_failed(run(cluster), "InvalidSpec", fragment)


def test_a_backup_object_that_does_not_exist_is_waited_for(url: str) -> None:
    cluster = FakeCluster(environment("prod", url, None), restore(backup="nightly"))
    assert_waiting(run(cluster), "BackupNotFound", "waiting for Backup nightly to exist", 10.0)
    assert run(cluster).events == ()


def test_a_backup_object_not_yet_completed_is_waited_for_and_a_failed_one_refused(
    url: str,
) -> None:
    cluster = FakeCluster(
        environment("prod", url, None),
        {"kind": "Backup", "metadata": {"name": "b"}, "spec": {"environment": "prod"}},
        restore(backup="b"),
    )
    assert_waiting(run(cluster), "BackupNotReady", "waiting for Backup b to complete", 5.0)
    cluster.patch_status("Backup", "ns", "b", {"phase": "Failed"})
    assert_failed(run(cluster), "BackupFailed", "Backup b failed; nothing to restore")


def test_a_backup_id_in_no_store_fails(url: str, store: Path, backup_id: str) -> None:
    unknown = "20260101T000000000Z-abcdef"
    cluster = FakeCluster(environment("prod", url, store), restore(backup=unknown))
    assert_failed(run(cluster), "BackupNotFound", f"has backup {unknown}")
    named = FakeCluster(
        environment("prod", url, store), restore(backup=unknown, environment="prod")
    )
    assert_failed(run(named), "BackupNotFound", f"no complete backup {unknown!r}")


def test_a_backup_id_found_but_unreadable_says_why(
    url: str, store: Path, backup_id: str, tmp_path: Path
) -> None:
    """Not "no store has it": the store that has it refuses it (here a manifest edited
    after sealing), and that refusal is what the Restore reports."""
    (manifest,) = store.glob(f"*/{backup_id}/manifest.json")
    manifest.write_text(manifest.read_text().replace('"prod"', '"prod2"', 1))
    empty = tmp_path / "other-store"
    empty.mkdir()
    cluster = FakeCluster(
        environment("other", url, empty), environment("prod", url, store), restore(backup=backup_id)
    )
    outcome = run(cluster)
    assert outcome.status["phase"] == "Failed", outcome.status
    assert "has backup" not in outcome.status["message"]
    assert backup_id in outcome.status["message"], outcome.status["message"]


def test_a_missing_or_unready_target_is_waited_for(url: str, store: Path, backup_id: str) -> None:
    cluster = FakeCluster(
        environment("prod", url, store), restore(backup=backup_id, environment="pre")
    )
    out = run(cluster)
    assert_waiting(out, "EnvironmentNotFound", "Environment ns/pre does not exist", 5.0)
    cluster = FakeCluster(environment("prod", url, store, ready=False), restore(backup=backup_id))
    out = run(cluster)
    assert_waiting(out, "EnvironmentNotReady", "waiting for Environment prod to be Ready", 3.0)
    assert out.status["environment"] == "prod" and out.status["backup"] == {"id": backup_id}


def test_a_named_target_that_does_not_exist_is_waited_for(url: str, store: Path) -> None:
    cluster = FakeCluster(
        environment("prod", url, store),
        {
            "kind": "Backup",
            "metadata": {"name": "b"},
            "spec": {"environment": "prod"},
            "status": {"phase": "Completed", "id": "x"},
        },
        restore(backup="b", environment="ghost"),
    )
    cluster.delete("Environment", "ns", "prod")
    assert_waiting(run(cluster), "EnvironmentNotFound", "Environment ns/prod does not exist", 5.0)


def test_an_earlier_writer_queues_the_restore(url: str, store: Path, backup_id: str) -> None:
    before = tables(url)
    cluster = FakeCluster(
        environment("prod", url, store),
        restore(backup=backup_id),
        {
            "kind": "Migration",
            "metadata": {"name": "earlier", "creationTimestamp": "2026-03-28T11:00:00Z"},
            "spec": {"source": {"environment": "dev"}, "target": "prod"},
            "status": {"phase": "Applying"},
        },
    )
    out = run(cluster)
    assert_waiting(out, "WaitingForTurn", "Migration earlier writes to prod first", 2.0, "Queued")
    assert tables(url) == before
    cluster.patch_status("Migration", "ns", "earlier", {"phase": "Succeeded"})
    assert run(cluster).status["phase"] == "Completed"


def test_a_damaged_backup_is_refused_with_every_problem_and_nothing_changes(
    url: str, store: Path, backup_id: str
) -> None:
    for member in sorted(store.rglob("*.arrow"))[:3]:
        data = bytearray(member.read_bytes())
        data[len(data) // 2] ^= 0xFF
        member.write_bytes(bytes(data))
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("DELETE FROM roles")
    before = tables(url)
    cluster = FakeCluster(environment("prod", url, store), restore(backup=backup_id))
    out = run(cluster)
    assert_failed(out, "BackupCorrupted", f"backup {backup_id} is damaged; nothing was changed")
    assert out.status["message"].count(";") >= 3  # each damaged member is listed
    assert tables(url) == before


def test_a_restore_that_completes_records_its_work(url: str, store: Path, backup_id: str) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("DELETE FROM roles")
    cluster = FakeCluster(environment("prod", url, store), restore(backup=backup_id))
    out = run(cluster)
    assert out.status["phase"] == "Completed", out.status
    assert conditions(out)["Restored"][:2] == ("True", "Restored")
    assert events(out) == [("Normal", "Restored")]
    assert tables(url)["roles"] > 0
    body = cluster.get("Restore", "ns", "r")
    assert body is not None and reconcile_restore(body, cluster, now=NOW) == Outcome({})


# -- rolling a Migration back -------------------------------------------------------------


def test_a_missing_or_unfinished_migration_is_waited_for(url: str) -> None:
    cluster = FakeCluster(environment("prod", url, None), restore(migration="m"))
    assert_waiting(run(cluster), "MigrationNotFound", "waiting for Migration m to exist", 10.0)
    cluster.add({"kind": "Migration", "metadata": {"name": "m"}, "status": {"phase": "Applying"}})
    out = run(cluster)
    assert out.status["phase"] == "Pending"
    assert conditions(out)["Ready"][:2] == ("False", "MigrationNotFinished")
    assert out.retry_after == 5.0


@pytest.mark.parametrize("phase", ["Failed", "RolledBack"])
def test_a_migration_that_changed_nothing_has_nothing_to_roll_back(url: str, phase: str) -> None:
    cluster = FakeCluster(
        environment("prod", url, None),
        {"kind": "Migration", "metadata": {"name": "m"}, "status": {"phase": phase}},
        restore(migration="m"),
    )
    assert_failed(run(cluster), "NothingToRollBack", f"Migration m is {phase}")


@pytest.mark.parametrize(
    "status",
    [
        {"phase": "Succeeded", "migrationId": "ns.m.1"},
        {"phase": "Succeeded", "backup": {"id": "x"}},
        {"phase": "Succeeded", "migrationId": "ns.m.1", "backup": {"skipped": "spec.backup.skip"}},
    ],
)
def test_a_migration_without_a_backup_cannot_be_rolled_back(
    url: str, status: dict[str, Any]
) -> None:
    cluster = FakeCluster(
        environment("prod", url, None),
        {"kind": "Migration", "metadata": {"name": "m"}, "status": status},
        restore(migration="m"),
    )
    assert_failed(run(cluster), "NoPreMigrationBackup", "no pre-migration backup")


@pytest.fixture
def migrated(tmp_path: Path) -> tuple[FakeCluster, str]:
    """dev promoted into pre (with a store) by a real Migration ``m``."""
    urls = {n: f"sqlite:///{tmp_path}/{n}.db" for n in ("dev", "pre")}
    shape.build(urls["dev"], app="dev", variables=VARS)
    shape.builder_changes(urls["dev"])
    shape.build(urls["pre"], app="pre", variables=VARS)
    dev = environment("dev", urls["dev"], None)
    dev["spec"]["stage"] = "development"
    cluster = FakeCluster(dev, environment("pre", urls["pre"], tmp_path / "backups"))
    cluster.add(
        {
            "kind": "Migration",
            "metadata": {
                "name": "m",
                "uid": "m-0000-uid",
                "creationTimestamp": "2026-03-28T11:00:00Z",
            },
            "spec": {"source": {"environment": "dev"}, "target": "pre"},
        }
    )
    body = cluster.get("Migration", "ns", "m") or {}
    outcome = reconcile_migration(body, cluster, now=NOW, on_phase=lambda _: None)
    assert outcome.status["phase"] == "Succeeded", outcome.status
    cluster.patch_status("Migration", "ns", "m", outcome.status)
    return cluster, urls["pre"]


def test_a_target_without_a_store_cannot_be_rolled_back(migrated: tuple[FakeCluster, str]) -> None:
    cluster, _ = migrated
    cluster.patch("Environment", "ns", "pre", {"spec": {"backups": None}})
    cluster.add(restore(migration="m"))
    assert_failed(run(cluster), "NoBackupStore", "Environment pre has no spec.backups.store")


def test_later_edits_refuse_the_rollback_and_are_listed(
    migrated: tuple[FakeCluster, str],
) -> None:
    cluster, pre = migrated
    with sqlite3.connect(pre.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE collections SET title = 'edited by hand'")
    before = tables(pre)
    cluster.add(restore(migration="m"))
    out = run(cluster)
    assert_failed(out, "ChangedSinceMigration", "were made after migration")
    assert "nothing was rolled back" in out.status["message"]
    assert "collections" in out.status["message"]
    assert tables(pre) == before


def test_a_rollback_completes_and_the_target_is_the_migrations_own(
    migrated: tuple[FakeCluster, str],
) -> None:
    cluster, _ = migrated
    cluster.add(restore(migration="m"))
    out = run(cluster)
    assert out.status["phase"] == "Completed", out.status
    assert out.status["environment"] == "pre"
    assert out.status["migration"]["name"] == "m"
    assert conditions(out)["Restored"][:2] == ("True", "RolledBack")
    assert events(out) == [("Normal", "RolledBack")]
