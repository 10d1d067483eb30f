"""PostgreSQL's fast write path: rows staged with COPY, then applied in a few statements.

Inserts, updates and deletes of one table are copied into temporary tables (``ON
COMMIT DROP``, created from the target's own column types ``WITH NO DATA``) on the
write session's connection, so in its transaction; then one ``DELETE … USING``, one
``INSERT … SELECT`` and one ``UPDATE … FROM`` apply them. Nothing reaches the target
before the writer has checked every planned row against its digest: a failure before
the final statements leaves the target as it was, and after them the transaction
still rolls everything back. Names are quoted identifiers; values travel in COPY.
Statements go to the driver's cursor without parameters, so no character of a name
(``%``, ``:``) is ever taken for a placeholder.

From another PostgreSQL server, a table planned in place is staged whole: the
source's COPY data of the differing buckets goes into one staging table undecoded
(binary when every column has the same built-in type on both sides), and the rows
the target lacks are inserted, the planned updates applied, in one statement each
(:meth:`Staging.copy_rows`, :meth:`Staging.apply_rows`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from controller.db.digests import quote_name
from controller.engine.identifiers import check_name

_INSERT, _UPDATE, _DELETE = "ferry_stage_insert", "ferry_stage_update", "ferry_stage_delete"
_ROWS, _KEYS = "ferry_stage_rows", "ferry_stage_keys"
_WRITE_BYTES = 1 << 20
# Below PostgreSQL's first user OID: built-in types, whose binary form is the same on
# every server of a major version (a user type's OID differs between databases).
_FIRST_USER_OID = 16384
_NATIVE_TYPES = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.atttypid::int
FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""

NativeTypes = dict[str, tuple[str, int]]


def native_types(conn: sa.Connection, table: str) -> NativeTypes:
    """Each column's PostgreSQL type as ``format_type`` spells it, and its OID."""
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cur:
        cur.execute(_NATIVE_TYPES, [quote_name("postgresql", table)])
        return {name: (spelled, oid) for name, spelled, oid in cur.fetchall()}


def binary_copyable(source: NativeTypes, target: NativeTypes, columns: Sequence[str]) -> bool:
    """Whether rows of ``columns`` can travel in binary COPY: every column of one
    built-in type on both sides (binary COPY does not convert, text COPY does)."""
    for name in columns:
        a, b = source.get(name), target.get(name)
        if a is None or a != b or a[1] >= _FIRST_USER_OID:
            return False
    return True


def copy_out(conn: sa.Connection, select: str, *, binary: bool) -> Iterator[bytes]:
    """``COPY (select) TO STDOUT`` on ``conn``'s connection, in its transaction, as
    the server sends it (nothing is decoded), in pieces of up to 1 MiB.

    The server sends a message per row, and psycopg's ``Copy.read`` goes through its
    wait loop for each (about 10 µs: a second for 100k rows). So after each message
    ``read`` waited for, the messages libpq has already received are taken without
    waiting (``PQgetCopyData`` in its non-blocking form); the end of the data found
    that way is finished here as psycopg would: its result read, its error raised."""
    raw: Any = conn.connection.driver_connection
    options = " (FORMAT binary)" if binary else ""
    with raw.cursor() as cur, cur.copy(f"COPY ({select}) TO STDOUT{options}") as copy:
        pgconn, buffer, size = raw.pgconn, bytearray(), 1
        while size >= 0 and (data := copy.read()):
            buffer += data
            size = 1
            while size > 0 and len(buffer) < _WRITE_BYTES:
                size, more = pgconn.get_copy_data(1)  # 0: nothing received yet
                if size > 0:
                    buffer += more
            if size < 0:  # the end of the data (-1), or no COPY (-2: a broken state)
                _end_copy(raw, size)
            if len(buffer) >= _WRITE_BYTES:
                yield bytes(buffer)
                buffer.clear()
        if buffer:
            yield bytes(buffer)


def _end_copy(raw: Any, size: int) -> None:
    """Read the results that follow a COPY's data; raise the server's error."""
    import psycopg

    pgconn = raw.pgconn
    if size != -1:
        raise psycopg.OperationalError(pgconn.error_message.decode(errors="replace"))
    results = []
    while (result := pgconn.get_result()) is not None:
        results.append(result)
    for result in results:
        if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)


class Staging:
    def __init__(
        self,
        conn: sa.Connection,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        update_columns: Sequence[str],
    ) -> None:
        self.conn = conn
        dialect = conn.dialect.name

        def quote(name: str) -> str:
            return quote_name(dialect, check_name(name, dialect, "name"))

        self.quote = quote
        self.table = quote(table)
        self.columns = list(columns)
        self.key = list(key)
        self.update_columns = list(update_columns)
        self.staged: set[str] = set()
        self.raw: Any = conn.connection.driver_connection

    def _run(self, sql: str) -> None:
        with self.raw.cursor() as cur:
            cur.execute(sql)

    def _create(self, name: str, select: str) -> None:
        if name in self.staged:
            return
        self._run(f"DROP TABLE IF EXISTS {name}")
        self._run(
            f"CREATE TEMP TABLE {name} ON COMMIT DROP AS SELECT {select} "
            f"FROM {self.table} WITH NO DATA"
        )
        self.staged.add(name)

    def _keys_as(self) -> list[str]:
        return [f"{self.quote(c)} AS ferry_k{i}" for i, c in enumerate(self.key)]

    def _copy(self, name: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self.raw.cursor() as cur, cur.copy(f"COPY {name} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def inserts(self, rows: Sequence[dict[str, Any]]) -> None:
        self._create(_INSERT, ", ".join(self.quote(c) for c in self.columns))
        self._copy(_INSERT, [[r[c] for c in self.columns] for r in rows])

    def updates(self, params: Sequence[dict[str, Any]]) -> None:
        """``params`` as the row-by-row UPDATE takes them: ``k_i`` (the target's key),
        ``v_<column>``."""
        select = [*self._keys_as(), *(self.quote(c) for c in self.update_columns)]
        self._create(_UPDATE, ", ".join(select))
        keys = [f"k_{i}" for i in range(len(self.key))]
        values = [f"v_{c}" for c in self.update_columns]
        self._copy(_UPDATE, [[p[k] for k in keys + values] for p in params])

    def deletes(self, keys: Sequence[Sequence[Any]]) -> None:
        """Delete the rows with these target keys now (before any insert may need a
        unique value they hold)."""
        self._create(_DELETE, ", ".join(self._keys_as()))
        self._copy(_DELETE, keys)
        self._run(f"DELETE FROM {self.table} AS t USING {_DELETE} AS s WHERE {self._match()}")
        self._drop(_DELETE)

    def _match(self) -> str:
        return " AND ".join(f"t.{self.quote(c)} = s.ferry_k{i}" for i, c in enumerate(self.key))

    def apply(self) -> None:
        """The staged updates and inserts, in one statement each, updates first (an
        update may free a unique value an insert takes)."""
        if _UPDATE in self.staged:
            sets = ", ".join(f"{self.quote(c)} = s.{self.quote(c)}" for c in self.update_columns)
            self._run(
                f"UPDATE {self.table} AS t SET {sets} FROM {_UPDATE} AS s WHERE {self._match()}"
            )
            self._drop(_UPDATE)
        if _INSERT in self.staged:
            cols = ", ".join(self.quote(c) for c in self.columns)
            self._run(f"INSERT INTO {self.table} ({cols}) SELECT {cols} FROM {_INSERT}")
            self._drop(_INSERT)

    def copy_rows(self, chunks: Iterable[bytes], *, binary: bool) -> None:
        """Stage source rows (all of ``columns``) from another server's COPY data."""
        self._create(_ROWS, ", ".join(self.quote(c) for c in self.columns))
        self._copy_in(_ROWS, chunks, binary=binary)

    def copy_into_table(self, chunks: Iterable[bytes], *, binary: bool) -> int:
        """Copy source rows straight into the table (for a table that held no rows when
        planned, where every row is an insert and no statement has to pick them out):
        how many rows the server took. They are in the table at once, uncommitted."""
        return self._copy_in(self.table, chunks, binary=binary)

    def _copy_in(self, name: str, chunks: Iterable[bytes], *, binary: bool) -> int:
        cols = ", ".join(self.quote(c) for c in self.columns)
        options = " (FORMAT binary)" if binary else ""
        with self.raw.cursor() as cur:
            with cur.copy(f"COPY {name} ({cols}) FROM STDIN{options}") as c:
                for chunk in chunks:
                    c.write(chunk)
            return int(cur.rowcount)

    def _count(self, sql: str) -> int:
        with self.raw.cursor() as cur:
            cur.execute(sql)
            return int(cur.rowcount)

    def apply_rows(self, update_keys: Sequence[Sequence[Any]]) -> tuple[int, int]:
        """From the staged rows: insert those whose key the target lacks, update the
        rows with ``update_keys`` (target keys); (inserted, updated) row counts."""
        cols = ", ".join(self.quote(c) for c in self.columns)
        same = " AND ".join(f"t.{self.quote(c)} = s.{self.quote(c)}" for c in self.key)
        # updates first (an update may free a unique value an insert takes); they never
        # change a key, so which rows the insert finds missing is the same after them
        updated = self._update_rows(update_keys, same)
        inserted = self._count(
            f"INSERT INTO {self.table} ({cols}) SELECT {cols} FROM {_ROWS} AS s "
            f"WHERE NOT EXISTS (SELECT 1 FROM {self.table} AS t WHERE {same})"
        )
        self._drop(_ROWS)
        return inserted, updated

    def _update_rows(self, update_keys: Sequence[Sequence[Any]], same: str) -> int:
        """Update the target rows of ``update_keys`` from the staged rows; how many."""
        updated = 0
        if update_keys and self.update_columns:
            self._create(_KEYS, ", ".join(self._keys_as()))
            self._copy(_KEYS, update_keys)
            sets = ", ".join(f"{self.quote(c)} = s.{self.quote(c)}" for c in self.update_columns)
            listed = " AND ".join(
                f"s.{self.quote(c)} = k.ferry_k{i}" for i, c in enumerate(self.key)
            )
            updated = self._count(
                f"UPDATE {self.table} AS t SET {sets} FROM {_ROWS} AS s, {_KEYS} AS k "
                f"WHERE {same} AND {listed}"
            )
            self._drop(_KEYS)
        return updated

    def _drop(self, name: str) -> None:
        self._run(f"DROP TABLE {name}")
        self.staged.discard(name)
