"""Restore drills (``ferry backup drill``) on real SQLite, PostgreSQL and MariaDB.

A good backup, plain or encrypted, drills green and leaves the scratch database as it
found it (a SQLite file the drill created is removed); a damaged backup or one whose
manifest does not match its members fails the drill (exit 1) naming the table; rows
that come back from the database different from the archive fail it too; a scratch
database that is not empty or is the backup's own source is refused (exit 2, one line,
nothing changed), as is an encrypted backup without its key.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from controller.backups.keyring import load_keyring_file
from controller.backups.manifest import Manifest
from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup, restore
from controller.commands.drill import _read_back
from controller.db.database import Database
from controller.flows.schedule import reconcile_schedule
from tests.db.dbhelpers import dump, execute, q
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_refused, run_cli
from tests.unit.fake_cluster import FakeCluster, merge
from tests.unit.test_flows_restore import environment

pytestmark = pytest.mark.db
MakeDb = Callable[..., str]


def _ring(path: Path) -> Path:
    key = base64.b64encode(hashlib.sha256(b"drill").digest()).decode()
    path.write_text(json.dumps({"current": "k1", "encrypt": True, "keys": {"k1": key}}))
    return path


def _drill(store: Path, backup_id: str, scratch: str, *extra: str) -> tuple[int, str, str]:
    out = run_cli(
        ["backup", "drill", backup_id, "--store", str(store), "--scratch", scratch, *extra]
    )
    return out.code, out.stdout, out.stderr


def _member_file(store: Path, m: Manifest, table: str) -> Path:
    member = m.member(table)
    assert member is not None
    return store / m.environment / m.id / member.key


@pytest.fixture
def source(dialect: str, make_database: MakeDb) -> str:
    db = make_database(dialect, "src")
    shape.build(db, app="drill")
    return db


def test_a_good_backup_drills_green_and_the_scratch_is_cleared(
    dialect: str, source: str, make_database: MakeDb, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    manifest, _ = create_backup(source, FilesystemStore(store), environment="prod")
    scratch = make_database(dialect, "scratch")
    before = dump(source)

    code, out, err = _drill(store, manifest.id, scratch, "--format", "json")
    assert code == 0, out + err
    result = json.loads(out)
    assert result["outcome"] == "Passed" and result["rows"] == manifest.rows > 50
    assert [t["table"] for t in result["tables"]] == manifest.tables
    assert all(
        t["outcome"] == "Passed" and t["rows"] == t["expectedRows"] for t in result["tables"]
    )
    assert dump(scratch) == dump(make_database(dialect, "empty"))  # nothing left behind
    assert dump(source) == before

    code, out, err = _drill(store, manifest.id, scratch)
    assert code == 0, out + err
    lines = out.splitlines()
    assert len(lines) == len(manifest.members) + 1
    assert all(line.startswith("ok ") for line in lines[:-1])
    assert f"drill of backup {manifest.id}" in lines[-1] and "passed" in lines[-1]


def test_a_sqlite_scratch_file_the_drill_creates_is_removed(
    make_database: MakeDb, tmp_path: Path
) -> None:
    source = make_database("sqlite", "src")
    shape.build(source, app="drill")
    store = tmp_path / "store"
    manifest, _ = create_backup(source, FilesystemStore(store), environment="prod")
    path = tmp_path / "scratch.db"
    code, out, err = _drill(store, manifest.id, f"sqlite:///{path}")
    assert code == 0, out + err
    assert "passed" in out.splitlines()[-1]
    assert list(tmp_path.glob("scratch.db*")) == []


@pytest.fixture
def two(source: str, tmp_path: Path) -> tuple[Path, Manifest, Manifest]:
    """Two good backups of one database, the second after builder changes."""
    store = tmp_path / "store"
    a, _ = create_backup(source, FilesystemStore(store), environment="prod")
    shape.builder_changes(source)
    b, _ = create_backup(source, FilesystemStore(store), environment="prod")
    return store, a, b


def _fails_naming(store: Path, backup: Manifest, scratch: str, table: str, says: str) -> list[str]:
    before = dump(scratch)
    code, out, err = _drill(store, backup.id, scratch)
    assert code == 1, out + err
    failed = [line for line in out.splitlines() if line.startswith("FAILED ")]
    assert any(table in line and says in line for line in failed), out
    assert "FAILED:" in out.splitlines()[-1]
    assert dump(scratch) == before  # cleared after the failure too
    return failed


def test_a_tampered_member_fails_the_drill_by_name(
    dialect: str, two: tuple[Path, Manifest, Manifest], make_database: MakeDb
) -> None:
    store, a, _ = two
    path = _member_file(store, a, "roles")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    member = a.member("roles")
    assert member is not None
    failed = _fails_naming(store, a, make_database(dialect, "scratch"), "roles", member.key)
    assert len(failed) == 1  # the other tables are sound


def test_a_member_from_another_backup_fails_the_drill(
    dialect: str, two: tuple[Path, Manifest, Manifest], make_database: MakeDb
) -> None:
    store, a, b = two
    changed = next(m.table for m in a.members if m.sha256 != (b.member(m.table) or m).sha256)
    _member_file(store, a, changed).write_bytes(_member_file(store, b, changed).read_bytes())
    _fails_naming(store, a, make_database(dialect, "scratch"), changed, "corrupted")


def test_an_edited_row_count_fails_the_drill(
    dialect: str, two: tuple[Path, Manifest, Manifest], make_database: MakeDb
) -> None:
    """An unsigned manifest rewritten whole (its checksum recomputed) claiming one more
    row than the member holds."""
    store, a, _ = two
    edited = replace(
        a,
        members=tuple(replace(m, rows=m.rows + 1) if m.table == "roles" else m for m in a.members),
    )
    FilesystemStore(store).replace_manifest(edited)
    roles, original = FilesystemStore(store).manifest(a.id).member("roles"), a.member("roles")
    assert roles is not None and original is not None and roles.rows == original.rows + 1
    _fails_naming(store, a, make_database(dialect, "scratch"), "roles", "the manifest says")


def test_rows_that_come_back_different_fail_the_read_back(
    dialect: str, source: str, make_database: MakeDb, tmp_path: Path
) -> None:
    """The comparison after the restore, on its own: a row changed or removed in the
    scratch database after a sound restore is found, by table and row."""
    store = FilesystemStore(tmp_path / "store")
    manifest, _ = create_backup(source, store, environment="prod")
    scratch = make_database(dialect, "scratch")
    restore(store, manifest.id, scratch, safety=False, force=True)
    db = Database(scratch)
    try:
        assert all(c.ok for c in _read_back(store, manifest, db))
        execute(scratch, f"update {q(dialect, 'roles')} set title = 'edited' where name = 'member'")
        execute(scratch, f"delete from {q(dialect, 'users')} where id = 2")
        checks = {c.table: c for c in _read_back(store, manifest, db)}
    finally:
        db.dispose()
    assert "differs from the archive" in (checks["roles"].problem or "")
    users = checks["users"]
    assert users.rows == users.expected_rows - 1 and "rows restored" in (users.problem or "")
    assert [t for t, c in checks.items() if not c.ok] == ["roles", "users"]


def test_an_encrypted_backup_drills_with_its_key_and_is_refused_without(
    dialect: str, source: str, make_database: MakeDb, tmp_path: Path
) -> None:
    store, ring = tmp_path / "store", _ring(tmp_path / "ring.json")
    manifest, _ = create_backup(
        source, FilesystemStore(store, load_keyring_file(str(ring))), environment="prod"
    )
    assert manifest.encryption is not None
    scratch = make_database(dialect, "scratch")
    code, out, err = _drill(store, manifest.id, scratch, "--store-key-file", str(ring))
    assert code == 0, out + err
    assert "encrypted (key k1)" in out.splitlines()[-1]
    argv = ["backup", "drill", manifest.id, "--store", str(store), "--scratch", scratch]
    assert_refused(argv, 2, [scratch, source, store], says="encrypted with store key 'k1'")


def test_hostile_scratch_databases_are_refused(
    dialect: str, source: str, make_database: MakeDb, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    manifest, _ = create_backup(source, FilesystemStore(store), environment="prod")
    busy = make_database(dialect, "busy")
    execute(busy, "create table keepme (id integer primary key)")
    empty = make_database(dialect, "empty")  # an empty database that was the source
    taken, _ = create_backup(empty, FilesystemStore(store), environment="empty")
    cases = [
        (source, manifest.id, "was taken from"),
        (empty, taken.id, "was taken from"),
        (busy, manifest.id, "not empty"),
        ("sqlite://", manifest.id, "in-memory"),
        (f"sqlite:///{tmp_path}/no/such/dir/x.db", manifest.id, "no directory"),
        ("oracle://u:p@h/db", manifest.id, "unsupported database"),
    ]
    for scratch, backup_id, says in cases:
        argv = ["backup", "drill", backup_id, "--store", str(store), "--scratch", scratch]
        assert_refused(argv, 2, [source, busy, empty, store, tmp_path / "no"], says=says)


# --- the operator: a BackupSchedule's spec.drill ------------------------------------

SCHEDULE_CREATED = "2026-11-20T12:00:00Z"


def _schedule_cluster(dialect: str, source: str, store: Path, backup_id: str, scratch: str) -> Any:
    env = environment("prod", source, store)
    env["spec"]["database"]["dialect"] = dialect
    schedule = {
        "kind": "BackupSchedule",
        "metadata": {"name": "nightly", "generation": 1, "creationTimestamp": SCHEDULE_CREATED},
        "spec": {
            "environment": "prod",
            "schedule": "0 2 * * *",
            "drill": {
                "schedule": "0 4 * * 0",
                "scratch": {"urlFrom": {"secretKeyRef": {"name": "scratch", "key": "url"}}},
            },
        },
        "status": {
            "lastScheduleTime": "2026-11-29T02:00:00Z",
            "lastDrillTime": "2026-11-22T04:00:00Z",
        },
    }
    backup = {
        "kind": "Backup",
        "metadata": {
            "name": "nightly-20261129020000",
            "labels": {"ferry.dev/schedule": "nightly"},
            "creationTimestamp": "2026-11-29T02:00:00Z",
        },
        "spec": {"environment": "prod"},
        "status": {
            "phase": "Completed",
            "id": backup_id,
            "completionTime": "2026-11-29T02:00:05Z",
        },
    }
    return FakeCluster(env, schedule, backup, secrets={"scratch": {"url": scratch}})


def _tick(cluster: Any, now: dt.datetime) -> dict[str, Any]:
    body = cluster.get("BackupSchedule", "ns", "nightly")
    out = reconcile_schedule(body, cluster, now=now)
    cluster.events.extend((e.type, e.reason, e.message) for e in out.events)
    cluster.objects[("BackupSchedule", "ns", "nightly")] = merge(body, {"status": out.status})
    return dict(out.status)


def _condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == type_)


def test_a_schedule_drills_its_newest_backup_and_records_it(
    dialect: str, source: str, make_database: MakeDb, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    manifest, _ = create_backup(source, FilesystemStore(store), environment="prod")
    scratch = make_database(dialect, "scratch")
    cluster = _schedule_cluster(dialect, source, store, manifest.id, scratch)

    status = _tick(cluster, dt.datetime(2026, 11, 29, 3, 59, tzinfo=dt.UTC))
    assert "lastDrill" not in status  # not due before Sunday 04:00
    status = _tick(cluster, dt.datetime(2026, 11, 29, 4, 0, 1, tzinfo=dt.UTC))
    assert status["lastDrillTime"] == "2026-11-29T04:00:00Z"
    drilled = cluster.get("Backup", "ns", "nightly-20261129020000")["status"]["lastDrill"]
    assert drilled == status["lastDrill"]
    assert (drilled["outcome"], drilled["backupId"]) == ("Passed", manifest.id)
    assert drilled["durationSeconds"] > 0 and drilled["time"] == "2026-11-29T04:00:01Z"
    cond = _condition(status, "DrillFailed")
    assert (cond["status"], cond["reason"]) == ("False", "DrillPassed")
    assert dump(scratch) == dump(make_database(dialect, "empty"))
    assert "lastDrill" not in _tick(cluster, dt.datetime(2026, 11, 29, 4, 5, tzinfo=dt.UTC))

    # the next Sunday, the backup's member has been damaged at rest
    path = _member_file(store, manifest, "roles")
    path.write_bytes(path.read_bytes()[:-10])
    status = _tick(cluster, dt.datetime(2026, 12, 6, 4, 0, 1, tzinfo=dt.UTC))
    cond = _condition(status, "DrillFailed")
    assert (cond["status"], cond["reason"]) == ("True", "BackupNotRestorable")
    assert "roles" in cond["message"] and status["lastDrill"]["outcome"] == "Failed"
    assert _condition(status, "Ready")["status"] == "True"  # the schedule itself still runs


def test_a_schedule_whose_scratch_is_its_own_database_records_a_drill_not_run(
    dialect: str, source: str, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    manifest, _ = create_backup(source, FilesystemStore(store), environment="prod")
    cluster = _schedule_cluster(dialect, source, store, manifest.id, source)
    before = dump(source)
    status = _tick(cluster, dt.datetime(2026, 11, 29, 4, 0, 1, tzinfo=dt.UTC))
    cond = _condition(status, "DrillFailed")
    assert (cond["status"], cond["reason"]) == ("True", "DrillNotRun")
    assert "was taken from" in cond["message"]
    assert ("Warning", "DrillNotRun", cond["message"]) in cluster.events
    password = make_url(source).password
    said = [cond["message"], status["lastDrill"]["message"], *(m for _, _, m in cluster.events)]
    assert not password or not any(str(password) in m for m in said)
    assert dump(source) == before
