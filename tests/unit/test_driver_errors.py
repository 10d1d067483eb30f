"""A driver's own exception, raised through a raw connection (PostgreSQL's COPY and
staging statements), is classified like one SQLAlchemy wrapped: a one-line Ferry error,
never an internal error; any other exception passes through unchanged."""

from __future__ import annotations

import sqlite3

import pytest

from controller.db.connect import classified
from controller.errors import Busy, PermanentError


def test_a_raw_integrity_error_becomes_a_permanent_error_naming_the_step() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("create table t (id integer primary key)")
    conn.execute("insert into t values (1)")
    with pytest.raises(PermanentError) as err, classified("writing t"):
        conn.execute("insert into t values (1)")
    assert err.value.message == "writing t: UNIQUE constraint failed: t.id"
    assert isinstance(err.value.__cause__, sqlite3.IntegrityError)


def test_a_raw_locked_database_is_busy() -> None:
    with pytest.raises(Busy), classified("writing t"):
        raise sqlite3.OperationalError("database is locked")


def test_other_exceptions_pass_through() -> None:
    with pytest.raises(KeyError), classified("writing t"):
        raise KeyError("x")
