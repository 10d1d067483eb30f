"""Connection pools kept across a migration's phases (the operator), on real servers:
one server connection serves every phase; a new URL (a changed Secret) or a deleted
Environment closes the old pool on the server; a kept SQLite pool follows its file;
the CLI keeps no connection;
no password in any key, repr or log line."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from controller.db import database
from controller.db.database import Database
from controller.db.engines import Engines
from controller.errors import InvalidInput
from tests.db.dbhelpers import execute

MakeDb = Callable[..., str]
SERVERS = [
    pytest.param("postgresql", marks=pytest.mark.db),
    pytest.param("mysql", id="mariadb", marks=pytest.mark.db),
]
_PID = {"postgresql": "select pg_backend_pid()", "mysql": "select connection_id()"}
_SESSIONS = {
    "postgresql": "select count(*) from pg_stat_activity where pid = {pid}",
    "mysql": "select count(*) from information_schema.processlist where id = {pid}",
}


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[Engines]:
    """The operator's sharing, on a registry of this test's own."""
    shared = Engines(size=4)
    shared.enabled = True
    monkeypatch.setattr(database, "ENGINES", shared)
    yield shared
    shared.dispose_all()


def _backend(url: str, dialect: str) -> int:
    """The server session a phase's :class:`Database` reads through."""
    db = Database(url)
    try:
        with db.reader() as snap:
            return int(str(snap.scalar_rows(_PID[dialect])[0][0]))
    finally:
        db.dispose()  # what every command does at its end


def _alive(admin: str, dialect: str, pid: int) -> bool:
    engine = sa.create_engine(admin)
    try:
        with engine.connect() as conn:
            return bool(conn.exec_driver_sql(_SESSIONS[dialect].format(pid=pid)).scalar())
    finally:
        engine.dispose()


def _other_url(url: str) -> str:
    """The same database through another URL (as after a Secret's rotation)."""
    parsed = make_url(url)
    return parsed.set(query={**parsed.query, "connect_timeout": "9"}).render_as_string(False)


@pytest.mark.parametrize("dialect", SERVERS)
def test_phases_share_one_server_connection_until_the_url_changes(
    engines: Engines, make_database: MakeDb, dialect: str
) -> None:
    url = make_database(dialect, hint="pooled")
    admin = make_database(dialect, hint="admin")
    engines.bind("ns/pre", url)
    first = _backend(url, dialect)
    assert [_backend(url, dialect) for _ in range(3)] == [first] * 3  # plan, backup, apply …
    assert _alive(admin, dialect, first)

    engines.bind("ns/pre", _other_url(url))  # the Secret now says something else
    assert not _alive(admin, dialect, first)
    second = _backend(_other_url(url), dialect)
    assert second != first and _alive(admin, dialect, second)

    engines.bind("ns/copy", _other_url(url))  # another Environment, the same database
    engines.release("ns/pre")
    assert _alive(admin, dialect, second)  # still used by ns/copy
    engines.release("ns/copy")  # deleted too: nothing uses the pool
    assert not _alive(admin, dialect, second)
    assert engines.entries() == []


@pytest.mark.db
def test_without_sharing_a_command_leaves_no_connection(make_database: MakeDb) -> None:
    url = make_database("postgresql", hint="cli")
    admin = make_database("postgresql", hint="admin")
    assert not database.ENGINES.enabled  # the CLI, and every process but the operator
    first = _backend(url, "postgresql")
    assert not _alive(admin, "postgresql", first)
    assert _backend(url, "postgresql") != first


def _tables(url: str) -> list[str]:
    db = Database(url)
    try:
        with db.reader() as snap:
            return sorted(snap.schema().tables)
    finally:
        db.dispose()


def test_a_kept_sqlite_pool_never_reads_a_replaced_or_deleted_file(
    engines: Engines, make_database: MakeDb
) -> None:
    url, other = make_database("sqlite", hint="kept"), make_database("sqlite", hint="other")
    execute(url, "create table first (id integer primary key)")
    execute(other, "create table second (id integer primary key)")
    engines.bind("ns/dev", url)
    assert _tables(url) == ["first"]
    assert Database(url).shared and len(engines.entries()) == 1
    path = make_url(url).database or ""
    os.replace(make_url(other).database or "", path)  # a new file under the same path
    assert _tables(url) == ["second"]
    os.unlink(path)
    with pytest.raises(InvalidInput, match="no SQLite database at"):
        _tables(url)
    assert not os.path.exists(path)  # and none was created


@pytest.mark.db
def test_a_url_no_environment_owns_is_not_kept(engines: Engines, make_database: MakeDb) -> None:
    """A rehearsal's scratch copy: Ferry drops it afterwards, so nothing may stay on it."""
    url = make_database("postgresql", hint="scratch")
    admin = make_database("postgresql", hint="admin")
    pid = _backend(url, "postgresql")
    assert not _alive(admin, "postgresql", pid)
    assert engines.entries() == []


@pytest.mark.db
def test_pools_are_bounded_and_hold_no_password(
    engines: Engines, make_database: MakeDb, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    urls = [make_database("postgresql", hint=f"bounded{n}") for n in range(5)]
    password = make_url(urls[0]).password
    assert password
    for n, url in enumerate(urls):
        engines.bind(f"ns/env{n}", url)
        _backend(url, "postgresql")
    assert len(engines.entries()) == engines.size == 4
    assert [k[0] for k in engines.entries()] == [Database(u).label for u in urls[1:]]
    shown = repr(engines) + repr(engines.entries()) + caplog.text
    shown += "".join(repr(engines.engine(u)) for u in urls[1:])
    assert "bounded4" in shown
    assert password not in shown
