"""Stream a table's rows in batches as raw values, in bounded memory.

Values come back as the driver returns them, with only lossless normalisation
(``memoryview`` → ``bytes``, MySQL ``TIME`` as ``timedelta`` → ``time``, UUID → text,
PostgreSQL JSON read as its stored text). JSON is never parsed, so what is written
elsewhere is the exact text that was read.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from controller.engine.model import Column, ColumnType, Kind, TableSchema

BATCH = 2000


def _normalise(value: Any) -> Any:
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, bytearray):
        return bytes(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def _mysql_time(value: Any) -> Any:
    """PyMySQL returns a ``TIME`` as a ``timedelta``; Ferry carries a ``time``."""
    if isinstance(value, dt.timedelta):
        seconds = int(value.total_seconds())
        return dt.time(seconds // 3600 % 24, seconds // 60 % 60, seconds % 60, value.microseconds)
    return _normalise(value)


# Kinds whose values every driver returns as plain Python values (JSON and UUID are read
# as text on PostgreSQL, see select_columns): no per-value normalisation needed.
_PLAIN = frozenset(Kind) - {Kind.BINARY, Kind.UUID, Kind.TIME, Kind.OTHER}


def _normalisers(
    conn: sa.Connection, table: TableSchema, columns: Sequence[str]
) -> list[tuple[int, Callable[[Any], Any]]]:
    """(position, function) of the columns whose values need normalising. Only MySQL
    TIME columns turn a ``timedelta`` into a ``time`` (a PostgreSQL ``interval`` is
    also a ``timedelta`` and must stay one)."""
    out: list[tuple[int, Callable[[Any], Any]]] = []
    for i, name in enumerate(columns):
        col = table.column(name)
        kind = col.type.kind if col is not None else Kind.OTHER
        if kind in _PLAIN:
            continue
        mysql_time = conn.dialect.name == "mysql" and kind is Kind.TIME
        out.append((i, _mysql_time if mysql_time else _normalise))
    return out


def _normalised(
    part: Sequence[Sequence[Any]], normalisers: list[tuple[int, Callable[[Any], Any]]]
) -> list[tuple[Any, ...]]:
    if not normalisers:
        return [tuple(row) for row in part]
    rows = []
    for row in part:
        values = list(row)
        for i, normalise in normalisers:
            values[i] = normalise(values[i])
        rows.append(tuple(values))
    return rows


def text_only(ctype: ColumnType) -> bool:
    """No Python value carries it exactly, PostgreSQL's text does: arrays, intervals,
    ranges (kind other) and a time with its UTC offset. Backups read it as that text on
    both paths (here and ``pg_fast``)."""
    return ctype.kind is Kind.OTHER or ctype.zoned_time


def _as_text(col: Column | None, archive: bool) -> bool:
    """Whether PostgreSQL should send this column as its own text: JSON and UUID always;
    for archives also what only that text carries (:func:`text_only`), and numerics,
    so that a small backup (read here) holds the texts ``pg_fast`` reads (``0.0000001``,
    not Python's ``1E-7``) and its restore can send them in binary COPY."""
    if col is None:
        return False
    if col.type.kind in (Kind.JSON, Kind.UUID):
        return True
    return archive and (text_only(col.type) or col.type.kind is Kind.DECIMAL)


def select_columns(
    conn: sa.Connection, table: TableSchema, columns: Sequence[str], *, archive: bool = False
) -> Any:
    exprs: list[Any] = []
    for name in columns:
        col = table.column(name)
        expr: Any = sa.column(name)
        if conn.dialect.name == "postgresql" and _as_text(col, archive):
            expr = sa.cast(expr, sa.Text()).label(name)
        exprs.append(expr)
    return sa.select(*exprs).select_from(sa.table(table.name))


def stream_rows(
    conn: sa.Connection,
    table: TableSchema,
    columns: Sequence[str],
    *,
    batch: int = BATCH,
    order_by: Sequence[str] = (),
    archive: bool = False,
    where: Any = None,
    buffered: bool = False,
) -> Iterator[list[tuple[Any, ...]]]:
    """Yield lists of at most ``batch`` rows (tuples in ``columns`` order); ``archive``:
    for a backup member (see :func:`_as_text`); ``where``: only the rows it keeps;
    ``buffered``: the result is known to be small, so read it in one round trip
    instead of through a server-side cursor (declare, fetch, close)."""
    stmt = select_columns(conn, table, columns, archive=archive)
    if where is not None:
        stmt = stmt.where(where)
    if order_by:
        stmt = stmt.order_by(*[sa.column(c) for c in order_by])
    # Options on the statement, not the connection: Connection.execution_options() changes
    # the connection in place, and later DDL would then run through a server-side cursor.
    options: dict[str, Any] = {} if buffered else {"stream_results": True, "yield_per": batch}
    result = conn.execute(stmt.execution_options(**options))
    normalisers = _normalisers(conn, table, columns)
    try:
        for part in result.partitions(batch):
            yield _normalised(part, normalisers)
    finally:
        result.close()
