"""The reflection cache on the real servers: any DDL between two reflections is seen,
by Ferry's own sessions or by anyone; a rolled-back DDL is never served; entries never
cross databases or credentials, hold no password, and are bounded."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from controller.db.connect import identity
from controller.db.database import Database
from controller.db.reflect import SCHEMAS, SchemaCache
from controller.engine.model import DatabaseSchema
from controller.errors import PermanentError
from tests.db.dbhelpers import execute

MakeDb = Callable[..., str]


def _schema(db: Database) -> DatabaseSchema:
    with db.reader() as snap:
        return snap.schema()


def _columns(schema: DatabaseSchema, table: str) -> list[str]:
    found = schema.table(table)
    assert found is not None, (table, sorted(schema.tables))
    return [c.name for c in found.columns]


def _drop_index(dialect: str) -> str:
    return "DROP INDEX ix_a ON t" if dialect == "mysql" else "DROP INDEX ix_a"


@pytest.fixture
def url(db_url: str) -> str:
    execute(
        db_url,
        "CREATE TABLE t (id INTEGER PRIMARY KEY, a VARCHAR(20))",
        "CREATE INDEX ix_a ON t (a)",
    )
    return db_url


def test_ddl_by_anyone_between_two_reflections_is_seen(url: str, dialect: str) -> None:
    db = Database(url)
    try:
        first = _schema(db)
        hits = SCHEMAS.hits
        assert _schema(db) == first
        assert SCHEMAS.hits == hits + 1  # the second reflection came from the cache
        assert [i.name for i in first.tables["t"].indexes] == ["ix_a"]

        execute(url, "ALTER TABLE t ADD COLUMN b INTEGER")
        assert _columns(_schema(db), "t") == ["id", "a", "b"]
        execute(url, _drop_index(dialect))
        assert _schema(db).tables["t"].indexes == ()
        execute(url, "ALTER TABLE t RENAME TO t2")
        renamed = _schema(db)
        assert sorted(renamed.tables) == ["t2"]
        assert _columns(renamed, "t2") == ["id", "a", "b"]
        # back to a state seen before: served again, and exactly that state
        execute(url, "ALTER TABLE t2 RENAME TO t")
        assert sorted(_schema(db).tables) == ["t"]
    finally:
        db.dispose()


def test_ferry_own_ddl_is_seen_in_its_session_and_a_rollback_is_never_served(
    url: str, dialect: str
) -> None:
    db = Database(url)
    try:
        _schema(db)
        with pytest.raises(PermanentError), db.writer() as session:
            assert "c" not in _columns(session.schema(), "t")
            session.conn.exec_driver_sql("ALTER TABLE t ADD COLUMN c INTEGER")
            session.refresh()
            assert _columns(session.schema(), "t") == ["id", "a", "c"]
            raise PermanentError("the migration failed")
        if dialect != "mysql":  # MariaDB commits DDL at once: nothing to roll back
            assert _columns(_schema(db), "t") == ["id", "a"]
        execute(url, "ALTER TABLE t ADD COLUMN d INTEGER")
        expected = ["id", "a", "d"] if dialect != "mysql" else ["id", "a", "c", "d"]
        assert _columns(_schema(db), "t") == expected
    finally:
        db.dispose()


def test_the_cache_never_crosses_databases(make_database: MakeDb, dialect: str) -> None:
    urls = [make_database(dialect, hint=f"twin{n}") for n in range(2)]
    for url in urls:
        execute(url, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    one, two = (Database(u) for u in urls)
    try:
        _schema(one)
        misses = SCHEMAS.misses
        execute(urls[1], "ALTER TABLE t ADD COLUMN twin INTEGER")
        assert _columns(_schema(two), "t") == ["id", "twin"]
        assert SCHEMAS.misses == misses + 1
        assert _columns(_schema(one), "t") == ["id"]
    finally:
        one.dispose()
        two.dispose()


@pytest.mark.db
def test_keys_tell_credentials_apart_and_hold_no_password(make_database: MakeDb) -> None:
    url = make_database("postgresql", hint="creds")
    password = make_url(url).password
    assert password
    other = make_url(url).set(password="another-" + password).render_as_string(False)
    mine, theirs = identity(url), identity(other)
    assert mine[0] == theirs[0] and mine != theirs
    db = Database(url)
    try:
        _schema(db)
        assert db.identity == mine
        for key in SCHEMAS.entries():
            assert password not in repr(key)
        assert password not in repr(db.identity)
    finally:
        db.dispose()


def test_the_cache_is_bounded(make_database: MakeDb) -> None:
    cache = SchemaCache(size=2)
    urls = [make_database("sqlite", hint=f"bounded{n}") for n in range(3)]
    for n, url in enumerate(urls):
        execute(url, f"CREATE TABLE t{n} (id INTEGER PRIMARY KEY)")
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                assert sorted(cache.reflect(conn, (url, url)).tables) == [f"t{n}"]
        finally:
            engine.dispose()
    assert [k[0] for k in cache.entries()] == urls[1:]  # the least recently used went
