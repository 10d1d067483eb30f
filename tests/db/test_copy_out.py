"""PostgreSQL ``COPY … TO STDOUT`` read in pieces (controller/db/staging.copy_out): the
same bytes psycopg's message-by-message reading gives, in text and binary, and the
server's error when the COPY fails part-way (never a silently shortened copy)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from controller.db import staging
from tests.db.dbhelpers import execute

MakeDb = Callable[..., str]
# Rows of a few hundred bytes, about 3 MiB in all: several 1 MiB pieces and a last one.
ROWS = 12_000
SELECT = (
    "SELECT i, repeat(md5(i::text), 1 + i % 13) AS t, jsonb_build_object('i', i) AS j "
    "FROM numbers ORDER BY i"
)


def _per_message(conn: sa.Connection, select: str, binary: bool) -> bytes:
    raw: Any = conn.connection.driver_connection
    options = " (FORMAT binary)" if binary else ""
    with raw.cursor() as cur, cur.copy(f"COPY ({select}) TO STDOUT{options}") as copy:
        return b"".join(bytes(chunk) for chunk in copy)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_pieces_hold_the_bytes_the_server_sent(make_database: MakeDb, binary: bool) -> None:
    url = make_database("postgresql", "copy")
    execute(url, f"create table numbers as select i from generate_series(1, {ROWS}) i")
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            pieces = list(staging.copy_out(conn, SELECT, binary=binary))
            expected = _per_message(conn, SELECT, binary)
            # the connection is left as psycopg expects it: the next statement runs
            assert conn.execute(sa.text("select count(*) from numbers")).scalar() == ROWS
    finally:
        engine.dispose()
    assert b"".join(pieces) == expected
    assert len(pieces) > 2
    assert all(len(p) >= 1 << 20 for p in pieces[:-1])
    assert all(len(p) < (1 << 20) + 4096 for p in pieces)


def test_a_copy_failing_part_way_raises_the_servers_error(make_database: MakeDb) -> None:
    url = make_database("postgresql", "copy")
    execute(url, f"create table numbers as select i from generate_series(1, {ROWS}) i")
    # no ORDER BY: a sort would evaluate every row before sending the first
    failing = f"SELECT i, repeat(md5(i::text), 30), 1 / (i - {ROWS - 5}) FROM numbers"
    engine = sa.create_engine(url)
    got: list[bytes] = []
    try:
        with engine.connect() as conn, pytest.raises(psycopg.errors.DivisionByZero):
            for piece in staging.copy_out(conn, failing, binary=False):
                got.append(piece)
    finally:
        engine.dispose()
    rows = sum(p.count(b"\n") for p in got)
    assert 0 < rows < ROWS - 5  # pieces came before the error; never the whole table
