"""The safety backups carry the application's files, on SQLite, PostgreSQL and MariaDB.

A restore with a files root first backs up what it is about to replace, files too, so
that restoring that pre-restore safety backup brings rows *and* files back to before
the restore. A Migration into an Environment with ``spec.files`` takes its
pre-migration backup with the files: a Restore by that backup's ID is a user's way
back to before the migration, files included; the scoped rollback of the migration
(Restore ``spec.migration``) touches no file, since a migration writes none.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.backups.store import FilesystemStore
from controller.engine.profiles import LEDGER_TABLE
from tests.db.dbhelpers import dump, execute, q
from tests.db.test_backup_files import app_with_files, backup_cli, make_files, tree
from tests.fixtures import nocobase_shape as shape
from tests.hostile import run_cli
from tests.unit.fake_cluster import FakeCluster
from tests.unit.test_flows_migration import migration
from tests.unit.test_flows_migration import run as run_migration
from tests.unit.test_flows_restore import READY, VARS, restore
from tests.unit.test_flows_restore import run as run_restore

MakeDb = Callable[..., str]
UPLOADS = ["uploads/2026/11/logo.png", "uploads/empty.bin", "uploads/notes with spaces é.txt"]


def rows(url: str) -> dict[str, Any]:
    """The database's tables and rows, Ferry's ledger left out (a restore keeps it)."""
    return {k: v for k, v in dump(url).items() if k != LEDGER_TABLE}


def run_app(dialect: str, db: str, files: Path) -> None:
    """The application runs on: a row edited, a file rewritten, one added, one removed."""
    execute(db, f"update {q(dialect, 'roles')} set title = 'edited since'")
    (files / "uploads" / "2026" / "11" / "logo.png").write_bytes(b"rewritten since")
    (files / "uploads" / "report.pdf").write_bytes(b"uploaded since")
    (files / "uploads" / "empty.bin").unlink()


def restore_cli(store: Path, backup_id: str, db: str, files: Path) -> dict[str, Any]:
    out = run_cli(
        ["restore", "--store", str(store), "--backup", backup_id, "--database", db,
         "--files", str(files), "--files-exclude", "tmp", "--format", "json"]
    )  # fmt: skip
    assert out.code == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def test_restoring_the_pre_restore_safety_backup_brings_rows_and_files_back(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    db, files, store = app_with_files(dialect, make_database, tmp_path)
    backup_id = backup_cli(store, db, files)
    run_app(dialect, db, files)
    rows_then, files_then = rows(db), tree(files)  # what the restore is about to replace

    first = restore_cli(store, backup_id, db, files)
    assert rows(db) != rows_then and tree(files) != files_then
    safety = FilesystemStore(store).manifest(first["safetyBackupId"])
    assert safety.reason == "pre-restore" and safety.files is not None
    assert sorted(e.path for e in safety.files.entries) == sorted(
        p for p in files_then if p.startswith("uploads/")
    )  # the key directory and the excluded tmp/ stay out of it, as in any backup

    back = restore_cli(store, safety.id, db, files)
    assert rows(db) == rows_then
    assert tree(files) == files_then
    assert back["files"]["written"] == 2  # the rewritten logo and the report, again
    assert back["files"]["displaced"] == 2  # the backup's logo and empty.bin, moved aside


def test_a_safety_backup_holds_only_the_tables_the_restore_replaces(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    """A restore that replaces no existing table (here: one table the target lacks) but
    replaces files backs up the files alone, not every table of the target."""
    db, files, store = app_with_files(dialect, make_database, tmp_path)
    backup_id = backup_cli(store, db, files)
    target = make_database(dialect, "fresh")
    execute(target, f"create table {q(dialect, 'other')} (id integer primary key)")
    out = run_cli(
        ["restore", "--store", str(store), "--backup", backup_id, "--database", target,
         "--tables", "roles", "--force", "--files", str(files), "--files-exclude", "tmp",
         "--format", "json"]
    )  # fmt: skip
    assert out.code == 0, out.stderr
    safety = FilesystemStore(store).manifest(json.loads(out.stdout)["safetyBackupId"])
    assert safety.tables == [] and safety.files is not None


def env(
    name: str, dialect: str, url: str, store: Path | None, files: Path | None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "stage": "production" if store else "development",
        "allowRunningApplication": True,
        "database": {"dialect": dialect, "url": url},
    }
    if store is not None:
        spec["backups"] = {"store": {"path": str(store)}}
    if files is not None:
        spec["files"] = {"path": str(files), "exclude": ["tmp"]}
    return {"kind": "Environment", "metadata": {"name": name}, "spec": spec, "status": READY}


def migrated(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> tuple[FakeCluster, str, Path, dict[str, Any]]:
    """dev promoted into pre by a real Migration ``m``; pre's Environment declares its
    files. The cluster, pre's URL, its files root and its rows before the migration."""
    dev, pre = make_database(dialect, "dev"), make_database(dialect, "pre")
    shape.build(dev, app="dev", variables=VARS)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables=VARS)
    files, store = tmp_path / "storage", tmp_path / "store"
    make_files(files)
    rows_before, files_before = rows(pre), tree(files)
    cluster = FakeCluster(
        env("dev", dialect, dev, None, None), env("pre", dialect, pre, store, files)
    )
    cluster.add(migration("m"))
    status = run_migration(cluster, "m")
    assert status["phase"] == "Succeeded", status
    assert rows(pre) != rows_before and tree(files) == files_before  # it wrote no file
    pre_migration = FilesystemStore(store).manifest(status["backup"]["id"])
    assert pre_migration.reason == "pre-migration" and pre_migration.files is not None
    assert sorted(e.path for e in pre_migration.files.entries) == UPLOADS
    return cluster, pre, files, rows_before


def test_a_restore_of_the_pre_migration_backup_brings_rows_and_files_back(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    cluster, pre, files, rows_before = migrated(dialect, make_database, tmp_path)
    files_before = tree(files)
    run_app(dialect, pre, files)
    backup_id = (cluster.get("Migration", "ns", "m") or {})["status"]["backup"]["id"]
    cluster.add(restore("back", "2026-03-28T11:50:00Z", backup=backup_id))
    back = run_restore(cluster, "back")
    assert back.status["phase"] == "Completed", back.status["message"]
    assert rows(pre) == rows_before
    assert tree(files) == files_before
    assert back.status["files"]["written"] == 2 and back.status["files"]["displaced"] == 2


def test_the_rollback_of_a_migration_touches_no_file(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    cluster, pre, files, rows_before = migrated(dialect, make_database, tmp_path)
    (files / "uploads" / "report.pdf").write_bytes(b"uploaded since")
    (files / "uploads" / "empty.bin").unlink()
    files_since = tree(files)
    cluster.add(restore("undo", "2026-03-28T11:40:00Z", migration="m"))
    undone = run_restore(cluster, "undo")
    assert undone.status["phase"] == "Completed", undone.status["message"]
    assert rows(pre) == rows_before
    assert undone.status.get("files") is None
    assert tree(files) == files_since and not (files / ".ferry-displaced").exists()
