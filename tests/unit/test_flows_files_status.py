"""What a Backup and a Restore say of the application's files in ``status.files``.

Run for real: a NocoBase-shaped SQLite database, a FilesystemStore, a files root in a
temporary directory and a fake cluster. The numbers in status are the files' own: a
Backup counts what it holds, a Restore what it wrote, left alone and moved aside.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from controller.backups.store import FilesystemStore
from controller.flows.backup import reconcile_backup
from controller.flows.outcome import Outcome
from controller.flows.restore import reconcile_restore
from tests.unit.fake_cluster import FakeCluster
from tests.unit.fake_workloads import Clock, FakeWorkloads
from tests.unit.test_flows_application import APP, OK, WEB, apps, urls  # noqa: F401
from tests.unit.test_flows_application import env as app_env
from tests.unit.test_flows_application import migration as app_migration
from tests.unit.test_flows_application import run as app_run

NOW = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)
READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "Connected"}]}
LOGO = b"\x89PNG" + bytes(range(256)) * 8


def environment(url: str, store: Path, files: Path | None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "stage": "production",
        "allowRunningApplication": True,
        "database": {"dialect": "sqlite", "url": url},
        "backups": {"store": {"path": str(store)}},
    }
    if files is not None:
        spec["files"] = {"path": str(files), "exclude": ["*.tmp"]}
    return {"kind": "Environment", "metadata": {"name": "prod"}, "spec": spec, "status": READY}


def obj(kind: str, name: str, **spec: Any) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "generation": 1}
    return {
        "kind": kind,
        "metadata": {**meta, "creationTimestamp": "2026-03-28T11:30:00Z"},
        "spec": spec,
    }


def run(cluster: FakeCluster, kind: str, name: str) -> Outcome:
    body = cluster.get(kind, "ns", name)
    assert body is not None
    reconcile = reconcile_backup if kind == "Backup" else reconcile_restore
    outcome = reconcile(body, cluster, now=NOW)
    cluster.patch_status(kind, "ns", name, outcome.status)
    return outcome


@pytest.fixture
def root(tmp_path: Path) -> Path:
    files = tmp_path / "storage"
    (files / "uploads").mkdir(parents=True)
    (files / "uploads" / "logo.png").write_bytes(LOGO)
    (files / "uploads" / "notes.txt").write_bytes(b"minutes")
    (files / "uploads" / "draft.tmp").write_bytes(b"excluded")
    (files / "uploads" / "link").symlink_to(files / "uploads" / "notes.txt")
    return files


def backed_up(url: str, store: Path, files: Path | None) -> tuple[FakeCluster, Outcome]:
    cluster = FakeCluster(environment(url, store, files), obj("Backup", "b", environment="prod"))
    out = run(cluster, "Backup", "b")
    assert out.status["phase"] == "Completed", out.status
    return cluster, out


def test_a_backup_with_files_says_what_it_holds(url: str, store: Path, root: Path) -> None:
    _, out = backed_up(url, store, root)
    assert out.status["files"] == {
        "count": 2,
        "bytes": len(LOGO) + len(b"minutes"),
        "consistency": "copied-after-snapshot",
        "skipped": 1,  # the symlink, never followed
    }
    assert ", 2 files " in out.status["message"]


def test_a_backup_of_the_rows_alone_has_no_files_block(url: str, store: Path) -> None:
    _, out = backed_up(url, store, None)
    assert out.status["files"] is None  # a merge patch: removed, never a stale block


def test_a_restore_with_files_says_what_it_wrote_kept_and_moved(
    url: str, store: Path, root: Path
) -> None:
    cluster, done = backed_up(url, store, root)
    (root / "uploads" / "notes.txt").write_bytes(b"edited after the backup")
    (root / "uploads" / "later.pdf").write_bytes(b"uploaded after the backup")
    cluster.add(obj("Restore", "r", backup="b"))
    out = run(cluster, "Restore", "r")
    assert out.status["phase"] == "Completed", out.status
    files = out.status["files"]
    stamp = files.pop("displacedTo")
    assert files == {"root": str(root), "written": 1, "unchanged": 1, "displaced": 2}
    assert stamp.startswith(".ferry-displaced/") and (root / stamp / "uploads/later.pdf").exists()
    assert (root / stamp / "uploads" / "notes.txt").read_bytes() == b"edited after the backup"
    assert (root / "uploads" / "notes.txt").read_bytes() == b"minutes"
    message = out.status["message"]
    assert "2 files (1 written, 1 unchanged, 2 moved aside to " in message, message
    assert done.status["id"] in message


def test_a_restore_that_changes_no_file_says_nothing_moved(
    url: str, store: Path, root: Path
) -> None:
    cluster, _ = backed_up(url, store, root)
    cluster.add(obj("Restore", "r", backup="b"))
    out = run(cluster, "Restore", "r")
    assert out.status["files"] == {
        "root": str(root),
        "written": 0,
        "unchanged": 2,
        "displaced": 0,
        "displacedTo": None,
    }
    assert not (root / ".ferry-displaced").exists()


def test_a_restore_into_an_environment_without_files_says_the_files_stayed_out(
    url: str, store: Path, root: Path
) -> None:
    cluster, _ = backed_up(url, store, root)
    cluster.patch("Environment", "ns", "prod", {"spec": {"files": None}})
    (root / "uploads" / "notes.txt").write_bytes(b"edited after the backup")
    cluster.add(obj("Restore", "r", backup="b"))
    out = run(cluster, "Restore", "r")
    assert out.status["phase"] == "Completed", out.status
    assert out.status["files"] is None
    assert "not its 2 files: Environment prod declares no spec.files" in out.status["message"]
    assert (root / "uploads" / "notes.txt").read_bytes() == b"edited after the backup"


def test_a_backup_status_matches_its_manifest(url: str, store: Path, root: Path) -> None:
    _, out = backed_up(url, store, root)
    manifest = FilesystemStore(store).manifest(out.status["id"])
    assert manifest.files is not None
    assert out.status["files"]["count"] == len(manifest.files.entries)
    assert out.status["files"]["bytes"] == manifest.files.bytes


def test_with_the_application_stopped_the_safety_backups_files_are_exact(
    tmp_path: Path,
    urls: dict[str, str],  # noqa: F811
) -> None:
    """An Environment with ``spec.application``: the Migration and the Restore quiesce
    it, so the pre-migration backup and the pre-restore safety backup record their
    files as ``quiesced``; without it they are ``copied-after-snapshot``."""
    files, store = tmp_path / "storage", tmp_path / "backups"
    (files / "uploads").mkdir(parents=True)
    (files / "uploads" / "logo.png").write_bytes(LOGO)
    pre = app_env(
        "pre",
        urls["pre"],
        backups={"store": {"path": str(store)}},
        application=APP,
        files={"path": str(files)},
    )
    cluster = FakeCluster(app_env("dev", urls["dev"]), pre, app_migration())
    assert app_run(cluster, apps(cluster)).status["phase"] == "Succeeded"
    status = (cluster.get("Migration", "ns", "release") or {})["status"]
    pre_migration = FilesystemStore(store).manifest(status["backup"]["id"])
    assert pre_migration.files is not None and pre_migration.files.consistency == "quiesced"

    cluster.add(obj("Restore", "back", backup=pre_migration.id))
    body = cluster.get("Restore", "ns", "back")
    assert body is not None
    workloads = FakeWorkloads({WEB: 3}, health=[OK])
    out = reconcile_restore(
        body, cluster, now=NOW, workloads=workloads, lifecycle_options=Clock().options()
    )
    assert out.status["phase"] == "Completed", out.status["message"]
    safety = FilesystemStore(store).manifest(out.status["safetyBackup"]["id"])
    assert safety.reason == "pre-restore"
    assert safety.files is not None and safety.files.consistency == "quiesced"
    assert [e.path for e in safety.files.entries] == ["uploads/logo.png"]

    cluster.patch("Environment", "ns", "pre", {"spec": {"application": None}})
    cluster.add(obj("Restore", "again", backup=pre_migration.id))
    out = run(cluster, "Restore", "again")
    assert out.status["phase"] == "Completed", out.status["message"]
    safety = FilesystemStore(store).manifest(out.status["safetyBackup"]["id"])
    assert safety.files is not None and safety.files.consistency == "copied-after-snapshot"
