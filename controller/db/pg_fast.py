"""PostgreSQL's fast path for backups and restores: COPY in and out, Arrow end to end.

Backups read each table with ``COPY (SELECT …) TO STDOUT (FORMAT binary)`` through
ADBC (``adbc-driver-postgresql``), which decodes straight into Arrow record batches, on
a second connection that imports the reading transaction's snapshot
(``pg_export_snapshot`` / ``SET TRANSACTION SNAPSHOT``, as ``pg_dump --jobs`` does):
every table is still read at one point in time. The batches are cast to the member's
Arrow schema, so the archive is the one the generic path writes: decimals, JSON, UUIDs
and other types are read as PostgreSQL's own text, ``real`` as the double of its text.

Restores format each record batch for ``COPY … FROM STDIN`` with Arrow compute kernels,
in binary where every column of the restored table allows it (:mod:`pg_binary`: the
server then parses no text), as text otherwise, and send it on the write session's own
connection, so the restore stays in its one transaction; keys and secondary indexes
are created after the rows, as pg_restore does.

Memory stays bounded: one batch (a few MiB) at a time in both directions.
"""

from __future__ import annotations

import contextlib
import queue
import re
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable

from controller.db import digests, inflight, pg_binary
from controller.db.connect import scrub
from controller.db.ddl import build_table
from controller.db.rows import text_only
from controller.db.writer import fix_sequence
from controller.engine.model import ColumnType, Kind, TableSchema
from controller.errors import PermanentError, Unreachable

#: Switch for benchmarks and tests; the generic path is used when False.
ENABLED = True
#: Restores send binary COPY where the types allow (:mod:`controller.db.pg_binary`).
BINARY = True
#: ADBC's hint for the size of one record batch read from COPY.
READ_BATCH_BYTES = 8 << 20
#: Rows are formatted for COPY in slices of about this many bytes of Arrow data.
WRITE_SLICE_BYTES = 4 << 20
#: Formatted slices waiting to be sent.
PIPELINE = 2
#: A backup reads through a second connection only when the tables hold at least this
#: many bytes: opening it and importing the snapshot costs 10 to 20 ms, about what the
#: generic path needs for 1 MiB, so a small configuration is read on the first one.
#: Below it a read snapshot also reads without server-side cursors (``rows.stream_rows``
#: ``buffered``): a result is then at most this size, and two round trips fewer.
SMALL_BYTES = 1 << 20

# Sizing a table opens it (ACCESS SHARE), which would wait behind another session's
# exclusive lock before the backup has begun (no partial yet for a SIGTERM to clean,
# and the wait is not a read's): while such a lock is held (pg_locks takes none), the
# size is not asked and the database is not known to be small (NULL).
_TABLE_BYTES = (
    "with ns as (select oid from pg_namespace where nspname = current_schema())"
    " select case when exists (select 1 from pg_locks l join pg_class c on c.oid = l.relation"
    " join ns on c.relnamespace = ns.oid where l.granted and l.mode = 'AccessExclusiveLock'"
    " and l.pid <> pg_backend_pid()) then null else"
    " (select coalesce(sum(pg_table_size(c.oid)), 0) from pg_class c join ns"
    " on c.relnamespace = ns.oid where c.relkind in ('r', 'p', 'm')) end"
)

_TEXT_CAST = (Kind.DECIMAL, Kind.JSON, Kind.UUID)
_NATIVE_BY_KIND: dict[Kind, tuple[str, ...]] = {
    Kind.SMALLINT: ("SMALLINT",),
    Kind.INTEGER: ("INTEGER",),
    Kind.BIGINT: ("BIGINT",),
    Kind.BOOLEAN: ("BOOLEAN",),
    Kind.FLOAT: ("DOUBLE PRECISION", "REAL", "FLOAT"),
    Kind.STRING: ("VARCHAR", "CHAR", "TEXT"),
    Kind.TEXT: ("TEXT", "VARCHAR", "CHAR"),
    Kind.BINARY: ("BYTEA",),
    Kind.DATE: ("DATE",),
    Kind.TIME: ("TIME WITHOUT TIME ZONE", "TIME"),
    Kind.DATETIME: ("TIMESTAMP WITHOUT TIME ZONE", "TIMESTAMP"),
    Kind.DATETIMETZ: ("TIMESTAMP WITH TIME ZONE",),
}


def small(conn: sa.Connection) -> bool:
    """Whether a PostgreSQL database's tables hold less than ``SMALL_BYTES``."""
    if conn.dialect.name != "postgresql":
        return False
    size = conn.exec_driver_sql(_TABLE_BYTES).scalar_one()
    return size is not None and int(size) < SMALL_BYTES


def available() -> bool:
    """True when the fast path is switched on and its driver is installed."""
    if not ENABLED:
        return False
    try:
        import adbc_driver_postgresql.dbapi  # noqa: F401
    except ImportError:
        return False
    return True


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _base(native: str) -> str:
    """``TIMESTAMP(3) WITH TIME ZONE`` → ``TIMESTAMP WITH TIME ZONE``; ``CHAR(9)`` → ``CHAR``."""
    return " ".join(re.sub(r"\([^)]*\)", " ", native.upper()).split())


def _select_expr(name: str, ctype: ColumnType) -> str | None:
    """The SELECT expression reading one column for its member, or None: no fast path."""
    col, kind = _quote(name), ctype.kind
    if kind in _TEXT_CAST or text_only(ctype):
        return f"{col}::text"
    base = _base(ctype.native)
    if base not in _NATIVE_BY_KIND.get(kind, ()):
        # An unusual type behind a common kind (an enum as a string, …):
        # PostgreSQL's text is what the generic path reads for strings; others wait.
        return f"{col}::text" if kind in (Kind.STRING, Kind.TEXT) else None
    if base == "REAL":
        return f"{col}::text::float8"  # the double the generic path reads, not the float4
    return col


def select_sql(table: TableSchema) -> str | None:
    """``SELECT`` of every column in member order, or None when a column has no fast path."""
    if not table.columns:
        return None
    exprs = []
    for c in table.columns:
        expr = _select_expr(c.name, c.type)
        if expr is None:
            return None
        exprs.append(expr)
    return f"SELECT {', '.join(exprs)} FROM {_quote(table.name)}"


def _error(err: Exception, what: str) -> Exception:
    text = scrub(str(err)).strip().splitlines()[0][:500] if str(err).strip() else repr(err)
    lowered = text.lower()
    if any(
        s in lowered
        for s in (
            "connection refused",
            "could not connect",
            "timeout",
            "terminating connection",
            "server closed",
        )
    ):
        return Unreachable(f"{what}: database unreachable: {text}")
    return PermanentError(f"{what}: {text}")


# ---- backups ----------------------------------------------------------------------


class SnapshotReader:
    """A second connection reading in the snapshot of an open REPEATABLE READ transaction."""

    def __init__(self, adbc_conn: Any) -> None:
        self._conn = adbc_conn

    @staticmethod
    def open(conn: sa.Connection) -> SnapshotReader | None:
        """Attach to ``conn``'s transaction, or None where the fast path cannot be used."""
        if conn.dialect.name != "postgresql" or not available():
            return None
        import adbc_driver_postgresql.dbapi as adbc

        snapshot = str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())
        url = conn.engine.url.set(drivername="postgresql")
        if "connect_timeout" not in url.query:
            url = url.update_query_dict({"connect_timeout": "10"})
        try:
            adbc_conn = adbc.connect(url.render_as_string(hide_password=False), autocommit=True)
        except Exception:
            return None  # e.g. a parameter only psycopg knows: read the generic way
        try:
            with adbc_conn.cursor() as cur:
                cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        except Exception:
            adbc_conn.close()
            return None
        return SnapshotReader(adbc_conn)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing after a failure: nothing to protect
            self._conn.close()

    def batches(self, table: TableSchema, schema: pa.Schema) -> Iterator[pa.RecordBatch]:
        """The table's rows as record batches of exactly ``schema`` (the member's)."""
        sql = select_sql(table)
        assert sql is not None, table.name
        what = f"reading {table.name}"
        try:
            cur = self._conn.cursor()
        except Exception as err:
            raise _error(err, what) from err
        with inflight.cancellable(cur.adbc_cancel):  # a stopping process cancels it
            try:
                yield from _read(cur, sql, schema, what)
            finally:
                cur.close()


def _read(cur: Any, sql: str, schema: pa.Schema, what: str) -> Iterator[pa.RecordBatch]:
    try:
        cur.adbc_statement.set_options(
            **{"adbc.postgresql.batch_size_hint_bytes": str(READ_BATCH_BYTES)}
        )
        cur.execute(sql)
        reader = cur.fetch_record_batch()
    except Exception as err:
        raise _error(err, what) from err
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except Exception as err:
                raise _error(err, what) from err
            if batch.num_rows:
                yield _conform(batch, schema, what)
    finally:
        reader.close()


def _conform(batch: pa.RecordBatch, schema: pa.Schema, what: str) -> pa.RecordBatch:
    arrays = []
    for field, column in zip(schema, batch.columns, strict=True):
        if isinstance(column.type, pa.ExtensionType):
            column = column.storage
        try:
            arrays.append(column if column.type == field.type else column.cast(field.type))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            raise PermanentError(f"{what}: column {field.name}: {err}") from err
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


# ---- restores ---------------------------------------------------------------------

_NULL = pa.scalar("\\N", pa.large_string())
_TAB = pa.scalar("\t", pa.large_string())
_NEWLINE = pa.scalar("\n", pa.large_string())
_EMPTY = pa.scalar("", pa.large_string())
_UTC = pa.scalar("+00", pa.large_string())
_HEX_PREFIX = pa.scalar("\\\\x", pa.large_string())  # \\x: bytea's \x, its backslash escaped
_NULL_TEXT = pa.scalar(None, pa.large_string())
_ESCAPES = (("\\", "\\\\"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t"))
# byte → its two hex digits, as one little-endian uint16 (first digit in the low byte)
_HEX_PAIRS = pa.array(
    [ord("0123456789abcdef"[b >> 4]) | ord("0123456789abcdef"[b & 15]) << 8 for b in range(256)],
    type=pa.uint16(),
)


def writable(conn: sa.Connection, table: TableSchema, schema: pa.Schema) -> bool:
    """Whether ``table`` can be restored with COPY on ``conn`` from batches of ``schema``."""
    if conn.dialect.name != "postgresql" or not ENABLED or not table.columns:
        return False
    if not all(_copyable(field.type) for field in schema):
        return False
    driver = conn.connection.driver_connection
    return str(getattr(getattr(driver, "info", None), "encoding", "")).lower() in (
        "utf-8",
        "utf8",
    )


def _copyable(t: pa.DataType) -> bool:
    return bool(
        pa.types.is_boolean(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_integer(t)
        or pa.types.is_floating(t)
        or pa.types.is_date(t)
        or pa.types.is_time(t)
        or pa.types.is_timestamp(t)
    )


def _escaped(text: pa.Array) -> pa.Array:
    text = text.cast(pa.large_string())
    offsets = _offsets(text)
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    if end == start:
        return text
    # One memchr-speed scan of the whole buffer per character; most columns need none.
    data = memoryview(text.buffers()[2])[start:end].tobytes()
    for plain, escaped in _ESCAPES:
        if plain.encode() in data:
            text = pc.replace_substring(text, plain, escaped)
    return text


def _timestamp_text(column: pa.Array) -> pa.Array:
    """ISO text; with a time zone, the UTC value with ``+00`` (Arrow's own zone-aware
    formatting is some fifty times slower)."""
    if column.type.tz is None:
        return column.cast(pa.large_string())
    naive = column.view(pa.timestamp(column.type.unit))
    return pc.binary_join_element_wise(naive.cast(pa.large_string()), _UTC, _EMPTY)


def _offsets(array: pa.Array) -> pa.Array:
    """The n + 1 int64 offsets of a large_string / large_binary array (slices included)."""
    return pa.Array.from_buffers(
        pa.int64(), len(array) + 1, [None, array.buffers()[1]], offset=array.offset
    )


def _hex(binary: pa.Array) -> pa.Array:
    """bytea → ``\\x…`` in COPY text (the backslash escaped), without a per-value loop."""
    binary = binary.cast(pa.large_binary())
    offsets = _offsets(binary)
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    if end == start:  # only empty values and NULLs
        return pc.if_else(pc.is_valid(binary), _HEX_PREFIX, _NULL_TEXT)
    data = binary.buffers()[2]
    octets = pa.Array.from_buffers(pa.uint8(), end - start, [None, data], offset=start)
    pairs = pc.take(_HEX_PAIRS, octets)
    hex_offsets = pc.multiply(pc.subtract(offsets, start), 2)
    digits = pa.Array.from_buffers(
        pa.large_string(),
        len(binary),
        [None, hex_offsets.buffers()[1], pairs.buffers()[1]],
    )
    text = pc.binary_join_element_wise(_HEX_PREFIX, digits, _EMPTY)
    if binary.null_count:
        text = pc.if_else(pc.is_valid(binary), text, _NULL_TEXT)
    return text


def _text_column(column: pa.Array, kind: Kind) -> pa.Array:
    """One column as COPY text values (NULLs kept as nulls)."""
    t = column.type
    if pa.types.is_boolean(t):
        out = pc.if_else(column, "t", "f")
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t):
        out = _hex(column)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        out = column if kind in (Kind.DECIMAL, Kind.UUID) else _escaped(column)
    elif pa.types.is_timestamp(t):
        out = _timestamp_text(column)
    elif _copyable(t):  # integers, floats (shortest round trip), ISO dates and times
        out = column.cast(pa.large_string())
    else:
        raise PermanentError(f"cannot restore a column of Arrow type {t} with COPY")
    return out.cast(pa.large_string())


def copy_text(batch: pa.RecordBatch, table: TableSchema) -> pa.Buffer:
    """Rows of ``batch`` in COPY's text format, one line per row."""
    columns = []
    for col, column in zip(table.columns, batch.columns, strict=True):
        text = _text_column(column, col.type.kind)
        columns.append(pc.fill_null(text, _NULL) if text.null_count else text)
    lines = pc.binary_join_element_wise(*columns, _TAB) if len(columns) > 1 else columns[0]
    lines = pc.binary_join_element_wise(lines, _EMPTY, _NEWLINE)
    offsets = _offsets(lines)
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    buf: pa.Buffer = lines.buffers()[2]
    return buf.slice(start, end - start)


def _slices(batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    rows = batch.num_rows
    step = rows
    if batch.nbytes > WRITE_SLICE_BYTES:
        step = max(256, rows * WRITE_SLICE_BYTES // batch.nbytes)
    for offset in range(0, rows, step):
        yield batch.slice(offset, step)


def _formatted(
    batches: Iterable[pa.RecordBatch],
    table: TableSchema,
    types: list[str] | None,
    stop: threading.Event,
    out: Any,
) -> None:
    """Producer thread: read and format batches (Arrow releases the GIL meanwhile), as
    binary COPY tuples where :mod:`pg_binary` can, as text otherwise."""
    try:
        for batch in batches:
            encode = pg_binary.encoders(types, batch.schema) if types else None
            for part in _slices(batch):
                data = pg_binary.tuples(part, encode) if encode else None
                item: Any = (
                    (True, data, part.num_rows)
                    if data is not None
                    else (False, copy_text(part, table), part.num_rows)
                )
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        out.put(None)
    except BaseException as err:  # handed to the consumer, raised there
        out.put(err)


def column_types(conn: sa.Connection, table: TableSchema) -> list[str]:
    """The type names (``pg_type.typname``) of ``table``'s columns as created, in member
    order; a name the table lacks is "" (no binary form)."""
    rows = conn.execute(
        sa.text(
            "SELECT a.attname, t.typname FROM pg_attribute a "
            "JOIN pg_type t ON t.oid = a.atttypid "
            "WHERE a.attrelid = CAST(:t AS regclass) AND a.attnum > 0 "
            "AND NOT a.attisdropped AND t.oid < 16384"  # built-in types only
        ),
        {"t": _quote(table.name)},
    ).all()
    found = {str(name): str(typname) for name, typname in rows}
    return [found.get(c.name, "") for c in table.columns]


def binary_enabled() -> bool:
    """Binary COPY for restores: on unless switched off here or by ``FERRY_FAST_PATH=0``."""
    return BINARY and digests.enabled()


class _Copies:
    """One ``COPY … FROM STDIN`` at a time on ``cur``, in text or binary format; a change
    of format ends the current one and starts the other (same transaction)."""

    def __init__(self, cur: Any, sql: str) -> None:
        self._cur, self._sql = cur, sql
        self._open: Any = None
        self._copy: Any = None
        self._binary = False

    def write(self, binary: bool, data: pa.Buffer) -> None:
        if self._open is None or binary != self._binary:
            self.close()
            self._open = self._cur.copy(self._sql + (" (FORMAT binary)" if binary else ""))
            self._copy, self._binary = self._open.__enter__(), binary
            if binary:
                self._copy.write(pg_binary.HEADER)
        self._copy.write(memoryview(data))

    def close(self) -> None:
        if self._open is not None:
            if self._binary:
                self._copy.write(pg_binary.TRAILER)
            opened, self._open = self._open, None
            opened.__exit__(None, None, None)

    def abort(self, err: BaseException) -> None:
        if self._open is not None:
            opened, self._open = self._open, None
            opened.__exit__(type(err), err, err.__traceback__)


def copy_rows(
    conn: sa.Connection,
    table: TableSchema,
    batches: Iterable[pa.RecordBatch],
    types: list[str] | None = None,
) -> int:
    """``COPY table FROM STDIN`` on the session's own connection (same transaction);
    binary where ``types`` (:func:`column_types`) and the values allow.

    A thread reads and formats the next slices while this one sends, so formatting
    overlaps with the server parsing; at most ``PIPELINE`` slices wait in between.
    """
    import psycopg

    driver = conn.connection.driver_connection
    assert isinstance(driver, psycopg.Connection)
    cols = ", ".join(_quote(c.name) for c in table.columns)
    count = 0
    pending: queue.Queue[Any] = queue.Queue(maxsize=PIPELINE)
    stop = threading.Event()
    producer = threading.Thread(
        target=_formatted,
        args=(batches, table, types if binary_enabled() else None, stop, pending),
        name="ferry-copy",
        daemon=True,
    )
    try:
        with driver.cursor() as cur:
            copies = _Copies(cur, f"COPY {_quote(table.name)} ({cols}) FROM STDIN")
            producer.start()
            try:
                while (item := pending.get()) is not None:
                    if isinstance(item, BaseException):
                        raise item
                    binary, data, rows = item
                    copies.write(binary, data)
                    count += rows
            except BaseException as err:
                copies.abort(err)
                raise
            copies.close()
    except psycopg.Error as err:
        raise _error(err, f"restoring {table.name}") from err
    finally:
        stop.set()
        if producer.is_alive():
            producer.join()
    return count


def replace_table(
    conn: sa.Connection,
    schema: TableSchema,
    source_dialect: str,
    batches: Iterable[pa.RecordBatch],
) -> int:
    """Drop, create and fill a table; keys and indexes are built after the rows."""
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {_quote(schema.name)}")
    table = build_table(schema, "postgresql", same=source_dialect == "postgresql")
    conn.execute(CreateTable(table))
    name = _quote(schema.name)
    # Keys too are built after the rows (one sort instead of a B-tree insert per row).
    keys = conn.execute(
        sa.text(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = CAST(:t AS regclass) AND contype IN ('p', 'u') "
            "ORDER BY contype, conname"
        ),
        {"t": name},
    ).all()
    for key, _definition in keys:
        conn.exec_driver_sql(f"ALTER TABLE {name} DROP CONSTRAINT {_quote(key)}")
    count = copy_rows(conn, schema, batches, column_types(conn, schema))
    for key, definition in keys:
        conn.exec_driver_sql(f"ALTER TABLE {name} ADD CONSTRAINT {_quote(key)} {definition}")
    for ix in table.indexes:
        conn.execute(CreateIndex(ix))
    fix_sequence(conn, schema)
    return count
