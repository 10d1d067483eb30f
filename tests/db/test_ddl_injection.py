"""Injection through a snapshot's or a backup's schema, on the real servers.

Each payload is what a pull request (a snapshot) or someone with store access (a
backup manifest) could write into a column's ``native`` type or ``default``: extra
columns, stacked statements (PostgreSQL runs several per call), a subquery copying
``mysql.user``. Every one is refused with exit 2 and the target is byte for byte as
it was; the DDL renderer refuses the same payloads when handed a schema directly,
without the readers in front of it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup
from controller.commands.export import export
from controller.commands.planning import PlanOptions
from controller.db.ddl import execute_op
from controller.engine.model import Column, ColumnType, Kind, TableSchema
from controller.engine.profiles import Profile
from controller.engine.schema_diff import CreateTable
from controller.errors import InvalidInput
from tests.db.dbhelpers import dump, execute, q
from tests.hostile import assert_refused, run_cli

MakeDb = Callable[..., str]

# (field, payload) per dialect; ``field`` is "native" or "default" of column ``body``.
PAYLOADS: dict[str, list[tuple[str, str]]] = {
    "sqlite": [
        ("native", "TEXT, injected TEXT DEFAULT 'x' CHECK (1=1)"),
        ("native", "TEXT); CREATE TABLE pwned (a INTEGER); --"),
        ("default", "'x', injected TEXT"),
        ("default", "(SELECT group_concat(name) FROM sqlite_master)"),
    ],
    "postgresql": [
        ("native", "TEXT, injected TEXT DEFAULT 'x' CHECK (1=1)"),
        ("native", "TEXT); CREATE TABLE pwned (a int); CREATE TABLE x (b TEXT"),
        ("default", "'x'::text; CREATE TABLE pwned (a int)"),
        ("default", "'x'::text, injected text DEFAULT current_user"),
        ("default", "pg_read_file('/etc/passwd')"),
        ("native", 'TEXT COLLATE "C"'),
    ],
    "mysql": [
        ("native", "TEXT, injected TEXT DEFAULT 'x' CHECK (1=1)"),
        ("native", "LONGTEXT CHARACTER SET utf8mb4, injected LONGTEXT"),
        ("default", "(select group_concat(password) from mysql.user)"),
        ("default", "'x\\' , injected TEXT DEFAULT (select user())"),
        ("native", "ENUM('a\\\\', ' , injected TEXT')"),
    ],
}
CASES = [
    pytest.param(d, field, payload, id=f"{d.replace('mysql', 'mariadb')}-{field}-{i}")
    for d, items in PAYLOADS.items()
    for i, (field, payload) in enumerate(items)
]


def _source(url: str, dialect: str) -> None:
    body = "LONGTEXT" if dialect == "mysql" else "TEXT"
    execute(
        url,
        f"create table {q(dialect, 'notes')} (id integer primary key, "
        f"title varchar(100) default 'untitled', body {body})",
        f"insert into {q(dialect, 'notes')} (id, title, body) values (1, 'a', 'b')",
    )


def _keep(url: str, dialect: str) -> None:
    execute(
        url,
        f"create table {q(dialect, 'keep')} (id integer primary key, v varchar(20))",
        f"insert into {q(dialect, 'keep')} values (1, 'kept')",
    )


def _edit_snapshot(root: Path, field: str, payload: str) -> None:
    path = root / "tables" / "notes.yaml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    body = next(c for c in doc["schema"]["columns"] if c["name"] == "body")
    if field == "native":
        body["type"]["native"] = payload
    else:
        body["default"] = payload
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


@pytest.mark.parametrize(("dialect", "field", "payload"), CASES)
def test_snapshot_payload_is_refused(
    dialect: str, field: str, payload: str, make_database: MakeDb, tmp_path: Path
) -> None:
    source, target = make_database(dialect, "src"), make_database(dialect, "dst")
    _source(source, dialect)
    _keep(target, dialect)
    snapshot = tmp_path / "snap"
    export(source, snapshot, PlanOptions(profile=Profile.GENERIC))
    _edit_snapshot(snapshot, field, payload)
    rules = tmp_path / "rules.yaml"
    rules.write_text("user: overwrite\n", encoding="utf-8")
    argv = ["migrate", "--source", str(snapshot), "--target", target]
    argv += ["--profile", "generic", "--rules", str(rules), "--skip-backup"]
    assert_refused(argv, 2, watched=[target, snapshot], says="'body'")
    assert set(dump(target)) == {"keep"}


def test_the_unedited_snapshot_migrates_with_its_default(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    """The control: the same export, unedited, creates the table with its default."""
    source, target = make_database(dialect, "src"), make_database(dialect, "dst")
    _source(source, dialect)
    snapshot = tmp_path / "snap"
    export(source, snapshot, PlanOptions(profile=Profile.GENERIC))
    rules = tmp_path / "rules.yaml"
    rules.write_text("user: overwrite\n", encoding="utf-8")
    argv = ["migrate", "--source", str(snapshot), "--target", target]
    outcome = run_cli([*argv, "--profile", "generic", "--rules", str(rules), "--skip-backup"])
    assert outcome.code == 0, outcome.stderr
    execute(target, f"insert into {q(dialect, 'notes')} (id) values (2)")
    engine = sa.create_engine(target)
    with engine.connect() as conn:
        title = conn.exec_driver_sql(f"select title from {q(dialect, 'notes')} where id = 2")
        assert title.scalar() == "untitled"
    engine.dispose()


@pytest.mark.parametrize(("dialect", "field", "payload"), CASES)
def test_renderer_refuses_payload_without_the_readers(
    dialect: str, field: str, payload: str, make_database: MakeDb
) -> None:
    """Defence in depth: a TableSchema built in code (no reader checked it) still
    cannot put the payload into DDL."""
    target = make_database(dialect, "dst")
    _keep(target, dialect)
    native = payload if field == "native" else "TEXT"
    default = payload if field == "default" else None
    body = Column("body", ColumnType(Kind.TEXT, native=native), default=default)
    table = TableSchema("notes", (Column("id", ColumnType(Kind.INTEGER)), body), ("id",))
    before = dump(target)
    engine = sa.create_engine(target)
    try:
        with engine.begin() as conn, pytest.raises(InvalidInput, match="'body'"):
            execute_op(conn, CreateTable(table), source_dialect=dialect, target_schema=None)
    finally:
        engine.dispose()
    assert dump(target) == before


def _edit_manifest(store: Path, field: str, payload: str) -> Path:
    path = next(store.rglob("manifest.json"))
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    member = next(m for m in data["members"] if m["table"] == "notes")
    body = next(c for c in member["schema"]["columns"] if c["name"] == "body")
    if field == "native":
        body["type"]["native"] = payload
    else:
        body["default"] = payload
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(("dialect", "field", "payload"), CASES)
def test_backup_manifest_payload_is_refused(
    dialect: str, field: str, payload: str, make_database: MakeDb, tmp_path: Path
) -> None:
    """The same payloads in a backup's manifest: restore refuses before touching the
    database (whichever check of the manifest speaks first)."""
    db = make_database(dialect, "db")
    _source(db, dialect)
    store = tmp_path / "store"
    manifest, _ = create_backup(db, FilesystemStore(store), environment="e")
    _edit_manifest(store, field, payload)
    execute(db, f"update {q(dialect, 'notes')} set body = 'changed since'")
    argv = ["restore", "--store", str(store), "--backup", manifest.id, "--database", db]
    assert_refused(argv, 2, watched=[db, store])
