"""Backups and restores on real databases: round trips, damage, faults, consistency."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.backups.manifest import FORMAT_VERSION
from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup, restore, verify
from controller.errors import CheckFailed, InvalidInput, PermanentError, Reverted
from tests.db.dbhelpers import DB_EXAMPLES, dump, execute, q, rows
from tests.db.dbhelpers import damage as damage_file
from tests.fixtures import nocobase_shape as shape

MakeDb = Callable[..., str]
ROOT = Path(__file__).resolve().parents[2]


def test_round_trip_into_empty_database(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    src, dst = make_database(dialect, "src"), make_database(dialect, "dst")
    shape.build(src, app="src")
    shape.builder_changes(src)
    store = FilesystemStore(tmp_path / "store")
    manifest, location = create_backup(src, store, environment="dev")
    assert Path(location).is_dir() and manifest.rows > 50
    assert verify(store, manifest.id)[1] == []
    result = restore(store, manifest.id, dst)
    assert result.rows == manifest.rows
    assert dump(dst) == dump(src)


def test_restore_selected_tables_keeps_the_rest(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    db = make_database(dialect, "db")
    shape.build(db, app="x")
    store = FilesystemStore(tmp_path / "s")
    manifest, _ = create_backup(db, store, environment="x")
    titles = rows(db, "roles", "title", order="name")
    assert len(titles) > 1 and {t[0] for t in titles} != {"edited"}
    execute(
        db,
        f"update {q(dialect, 'roles')} set title = 'edited'",
        f"update {q(dialect, 'orders')} set title = 'business edit'",
    )
    result = restore(store, manifest.id, db, tables=["roles"])
    assert result.safety_backup is not None
    assert rows(db, "roles", "title", order="name") == titles
    assert {r[0] for r in rows(db, "orders", "title")} == {"business edit"}


def _member_path(store_root: Path, manifest_id: str, table: str) -> Path:
    manifest = FilesystemStore(store_root).manifest(manifest_id)
    member = manifest.member(table)
    assert member is not None
    return store_root / manifest.environment / manifest.id / member.key


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_backup_refused_and_nothing_changed(damage: str, tmp_path: Path) -> None:
    src, dst = f"sqlite:///{tmp_path}/src.db", f"sqlite:///{tmp_path}/dst.db"
    shape.build(src, app="src")
    shape.build(dst, app="dst")
    store = FilesystemStore(tmp_path / "store")
    manifest, _ = create_backup(src, store, environment="e")
    path = _member_path(tmp_path / "store", manifest.id, "uiSchemas")
    damage_file(path, damage)
    _, problems = verify(store, manifest.id)
    assert problems and "uiSchemas" in problems[0] and "corrupted or truncated" in problems[0]
    before = dump(dst)
    with pytest.raises(CheckFailed) as err:
        restore(store, manifest.id, dst)
    assert "damaged" in str(err.value)
    assert dump(dst) == before


def test_unknown_format_version_refused(tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path}/src.db"
    shape.build(src)
    store = FilesystemStore(tmp_path / "store")
    manifest, location = create_backup(src, store, environment="e")
    path = Path(location) / "manifest.json"
    data = json.loads(path.read_text())
    data["version"] = FORMAT_VERSION + 1
    path.write_text(json.dumps(data))
    with pytest.raises(InvalidInput) as err:
        store.manifest(manifest.id)
    assert "unknown backup format version" in str(err.value)


def test_incompatible_targets_refused(tmp_path: Path, make_database: MakeDb) -> None:
    src = f"sqlite:///{tmp_path}/src.db"
    shape.build(src)
    store = FilesystemStore(tmp_path / "store")
    manifest, _ = create_backup(src, store, environment="e")
    newer = f"sqlite:///{tmp_path}/old-app.db"
    shape.build(newer)
    execute(newer, "update applicationVersion set value = '1.9.0'")
    with pytest.raises(CheckFailed) as err:
        restore(store, manifest.id, newer, force=True)
    assert "newer than the target's 1.9.0" in str(err.value)
    pg = make_database("postgresql", "pg")
    with pytest.raises(CheckFailed) as err:
        restore(store, manifest.id, pg, force=True)
    assert "sqlite database" in str(err.value)


def test_interrupted_backup_is_never_listed(tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path}/src.db"
    shape.build(src)
    store = FilesystemStore(tmp_path / "store")

    def fault(step: str) -> None:
        if step == "member:roles":
            raise PermanentError("disk full (injected)")

    with pytest.raises(PermanentError):
        create_backup(src, store, environment="e", fault=fault)
    assert store.manifests() == []
    assert list((tmp_path / "store" / "e").iterdir()) == []  # debris removed


def test_killed_backup_process_leaves_nothing_complete(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    src = make_database(dialect, "big")
    shape.build(src, shape=shape.Shape(pages=3000))  # enough to be killed mid-way
    store_dir = tmp_path / "store"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "controller",
            "backup",
            "create",
            "--database",
            src,
            "--store",
            str(store_dir),
            "--environment",
            "e",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not any(store_dir.rglob("*.arrow")) and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("the backup finished before it could be killed; make it bigger")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    store = FilesystemStore(store_dir)
    assert store.manifests() == []
    assert store.remove_incomplete() != []
    assert not any(store_dir.rglob("*.arrow"))


def test_restore_failing_part_way_reverts(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    db = make_database(dialect, "db")
    shape.build(db)
    store = FilesystemStore(tmp_path / "s")
    manifest, _ = create_backup(db, store, environment="e")
    execute(db, f"update {q(dialect, 'roles')} set title = 'after backup'")
    before = dump(db)

    def fault(step: str) -> None:
        if step == "restore:roles":
            raise PermanentError("connection dropped (injected)")

    with pytest.raises(Reverted) as err:  # failed while writing, target as it was
        restore(store, manifest.id, db, fault=fault)
    assert "restore failed" in str(err.value) and err.value.reason == "RestoreFailed"
    assert dump(db) == before


def test_backup_is_one_point_in_time(make_database: MakeDb, tmp_path: Path) -> None:
    """A writer keeps adding pairs of rows in one transaction each; every backup taken
    meanwhile must hold complete pairs only."""
    db = make_database("postgresql", "busy")
    execute(
        db, "create table a (id integer primary key)", "create table b (id integer primary key)"
    )
    stop = threading.Event()

    def writer() -> None:
        engine = sa.create_engine(db)
        i = 0
        while not stop.is_set():
            i += 1
            with engine.begin() as conn:
                conn.exec_driver_sql(f"insert into a values ({i})")
                time.sleep(0.001)
                conn.exec_driver_sql(f"insert into b values ({i})")
        engine.dispose()

    thread = threading.Thread(target=writer)
    thread.start()
    store = FilesystemStore(tmp_path / "s")
    try:
        manifests = [create_backup(db, store, environment="busy")[0] for _ in range(5)]
    finally:
        stop.set()
        thread.join()
    for manifest in manifests:
        counts = {m.table: m.rows for m in manifest.members}
        assert counts["a"] == counts["b"], counts
    assert manifests[-1].member("a").rows > 0  # type: ignore[union-attr]


def test_round_trip_property_every_type(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    """Generated rows of every supported type survive backup → restore exactly."""
    from hypothesis import given
    from hypothesis import strategies as st

    from tests.db.test_fidelity import _write_source, row

    src, dst = make_database(dialect, "psrc"), make_database(dialect, "pdst")
    store = FilesystemStore(tmp_path / "store")

    @DB_EXAMPLES
    @given(st.lists(row, min_size=0, max_size=6))
    def check(generated: list[dict[str, object]]) -> None:
        _write_source(src, [{"id": i + 1, **r} for i, r in enumerate(generated)])
        manifest, _ = create_backup(src, store, environment="p")
        restore(store, manifest.id, dst, safety=False, force=True)
        assert dump(dst) == dump(src)

    check()


def test_tables_and_exclude_accept_globs(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/app.db"
    shape.build(db)
    store = FilesystemStore(tmp_path / "s")
    manifest, _ = create_backup(
        db, store, environment="e", tables=["ui*", "roles"], exclude=["uiSchemaTreePath"]
    )
    assert manifest.tables == ["roles", "uiSchemas"]
    with pytest.raises(InvalidInput, match="no table matches nope"):
        create_backup(db, store, environment="e", tables=["nope*"])


def test_terminated_backup_process_removes_its_partial_files(tmp_path: Path) -> None:
    """SIGTERM (a pod stopped, ``kill``) unwinds the writer: no debris is left."""
    src = f"sqlite:///{tmp_path}/big.db"
    shape.build(src, shape=shape.Shape(pages=3000))
    store_dir = tmp_path / "store"
    argv = ["backup", "create", "--database", src, "--store", str(store_dir)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller", *argv, "--environment", "e"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not any(store_dir.rglob("*.arrow")) and time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail("the backup finished before it could be stopped; make it bigger")
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=60) == 128 + signal.SIGTERM
    assert [p for p in store_dir.rglob("*") if p.is_file()] == []
