"""In-database digests fix PostgreSQL's output settings for their own statements and
give a write session its own back: what a naive time it writes means depends on them."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from controller.db.database import Database
from controller.db.digests import TableDigests
from controller.engine.buckets import Level
from controller.engine.model import Kind

SHOWN = ("TimeZone", "DateStyle", "extra_float_digits")


def _shown(conn: sa.Connection) -> tuple[str, ...]:
    row = conn.execute(sa.text("SELECT " + ", ".join(f"current_setting('{n}')" for n in SHOWN)))
    return tuple(row.one())


def test_each_transaction_gets_its_own_settings_back(make_database: Callable[..., str]) -> None:
    engine = sa.create_engine(make_database("postgresql", "digest_settings"))
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("CREATE TABLE t (id int PRIMARY KEY, at timestamptz)"))
            conn.execute(sa.text("INSERT INTO t VALUES (1, '2026-01-01 00:00+00')"))
            conn.commit()
            sums = []
            # one connection, three transactions, each with other settings of its own
            for zone, style, digits in (
                ("Asia/Kolkata", "SQL, DMY", "0"),
                ("America/Denver", "German, DMY", "3"),
                ("Asia/Kolkata", "Postgres, MDY", "-2"),
            ):
                with conn.begin():
                    conn.execute(
                        sa.text(
                            "SELECT set_config('TimeZone', :z, true), "
                            "set_config('DateStyle', :s, true), "
                            "set_config('extra_float_digits', :d, true)"
                        ),
                        {"z": zone, "s": style, "d": digits},
                    )
                    own = _shown(conn)
                    digests = TableDigests(
                        conn, "t", ["id"], [("id", Kind.INTEGER), ("at", Kind.DATETIMETZ)]
                    )
                    for _ in range(2):
                        sums.append(list(digests.sums(Level(1))))
                        assert _shown(conn) == own
                        sums.append(list(digests.sums(Level(4))))
                        assert _shown(conn) == own
            # the settings never leaked into the digests: one instant, one digest
            assert all(s == sums[0] for s in sums[::2]) and all(s == sums[1] for s in sums[1::2])
    finally:
        engine.dispose()


def test_a_plan_in_a_write_session_fixes_them_once_and_puts_them_back(
    make_database: Callable[..., str],
) -> None:
    """Planning under the write lock reads only: the settings are fixed once for all
    its digest statements, and the session's own are back before anything is written.
    A stretch that failed (its transaction is rolled back) holds them no longer: the
    next digest statement sets and restores them on its own again."""
    url = make_database("postgresql", "digest_settings_plan")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id int PRIMARY KEY, at timestamptz)"))
        conn.execute(sa.text("INSERT INTO t VALUES (1, '2026-01-01 00:00+00')"))
    engine.dispose()
    db = Database(url)
    try:
        with db.writer() as session:
            conn = session.conn
            conn.execute(sa.text("SELECT set_config('TimeZone', 'Asia/Kolkata', true)"))
            own = _shown(conn)
            key, compared = ("id",), ("id", "at")
            with session.reading():
                first = list(session.bucket_sums("t", key, compared, Level(1)))
                assert _shown(conn)[0] == "UTC"  # held for the whole stretch
                assert list(session.bucket_sums("t", key, compared, Level(1))) == first
                assert _shown(conn)[0] == "UTC"
            assert _shown(conn) == own
            with pytest.raises(RuntimeError), session.reading():
                raise RuntimeError("a check refused the plan")
            assert list(session.bucket_sums("t", key, compared, Level(1))) == first
            assert _shown(conn) == own  # each statement sets and restores its own again
    finally:
        db.dispose()


def test_a_write_session_reads_small_tables_at_once_only_while_it_writes_nothing(
    make_database: Callable[..., str],
) -> None:
    url = make_database("postgresql", "write_session_small")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE t (id int PRIMARY KEY)"))
    engine.dispose()
    db = Database(url)
    try:
        with db.writer() as session:
            assert not session.small()
            with session.reading():
                assert session.small()
            assert not session.small()  # it may write now, and grow its tables
            with pytest.raises(RuntimeError), session.reading():
                raise RuntimeError("refused")
            assert not session.small()
    finally:
        db.dispose()
