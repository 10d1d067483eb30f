"""A database as Ferry uses it: consistent read snapshots and locked write sessions.

:class:`ReadSnapshot` and :class:`WriteSession` both satisfy the engine's
``SnapshotSource`` protocol, so planning reads a source and a target the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any

import sqlalchemy as sa

from controller.db import digests, ledger, locks, pg_fast, restore_io, revert, staging
from controller.db.connect import classified, create_engine, dialect_of, identity, redact
from controller.db.ddl import execute_op
from controller.db.engines import ENGINES
from controller.db.reflect import SCHEMAS
from controller.db.rows import stream_rows
from controller.db.writer import Fault, RowCopy, TableWriter
from controller.engine.buckets import BucketSum, Level, Selection
from controller.engine.model import DatabaseSchema, Kind, TableSchema
from controller.engine.plan import TablePlan
from controller.engine.source import Batch
from controller.engine.undo import TableRevert


class _Snapshot:
    def __init__(self, conn: sa.Connection, label: str, identity: tuple[str, str]) -> None:
        self.conn = conn
        self._label = label
        self._identity = identity
        self._schema: DatabaseSchema | None = None

    @property
    def label(self) -> str:
        return self._label

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    def schema(self) -> DatabaseSchema:
        if self._schema is None:
            with classified(f"reading the schema of {self._label}"):
                self._schema = SCHEMAS.reflect(self.conn, self._identity)
        return self._schema

    def table(self, name: str) -> TableSchema:
        table = self.schema().table(name)
        assert table is not None, name
        return table

    def batches(self, table: str, columns: Sequence[str]) -> Iterator[Batch]:
        with classified(f"reading {table} from {self._label}"):
            yield from stream_rows(self.conn, self.table(table), columns, buffered=self.small())

    def batches_equal(
        self, table: str, columns: Sequence[str], column: str, value: int
    ) -> Iterator[Batch]:
        """The rows whose ``column`` equals ``value``, kept by the database."""
        where = sa.column(column) == value
        with classified(f"reading {table} from {self._label}"):
            yield from stream_rows(self.conn, self.table(table), columns, where=where)

    def digests_enabled(self) -> bool:
        return digests.enabled() and self.dialect in digests.DIALECTS

    def _digests(
        self,
        table: str,
        key: tuple[str, ...],
        compared: tuple[str, ...],
        env_columns: tuple[str, ...] = (),
    ) -> digests.TableDigests:
        schema = self.table(table)
        kinds: list[tuple[str, Kind]] = []
        for name in compared:
            col = schema.column(name)
            kinds.append((name, col.type.kind if col is not None else Kind.OTHER))
        restore = not isinstance(self, ReadSnapshot)  # a write session keeps its settings
        return digests.TableDigests(
            self.conn, table, key, kinds, restore=restore, env_columns=env_columns
        )

    def bucket_sums(
        self,
        table: str,
        key: tuple[str, ...],
        compared: tuple[str, ...],
        level: Level,
        env_columns: tuple[str, ...] = (),
    ) -> Iterator[BucketSum]:
        """Per-bucket row counts and digest sums, hashed in the database; with
        ``env_columns``, also how many rows may reference a variable."""
        hashes = self._digests(table, key, compared, env_columns)
        with classified(f"hashing {table} in {self._label}"):
            yield from hashes.sums(level, env=bool(env_columns))

    def bucket_digests(
        self,
        table: str,
        key: tuple[str, ...],
        compared: tuple[str, ...],
        selection: Selection,
    ) -> Iterator[tuple[int, int]]:
        """(key hash, row digest) of each row in ``selection``, hashed in the database."""
        hashes = self._digests(table, key, compared)
        with classified(f"hashing {table} in {self._label}"):
            yield from hashes.row_digests(selection)

    def bucket_batches(
        self,
        table: str,
        columns: list[str],
        key: tuple[str, ...],
        compared: tuple[str, ...],
        selection: Selection,
    ) -> Iterator[Batch]:
        """The rows of the buckets in ``selection``, as :meth:`batches` reads them."""
        hashes = self._digests(table, key, compared)
        where = hashes.bucket_filter(selection)
        with classified(f"reading {table} from {self._label}"), hashes.settings():
            yield from stream_rows(
                self.conn, self.table(table), columns, where=where, buffered=self.small()
            )

    def native_types(self, table: str) -> staging.NativeTypes:
        """PostgreSQL: each column's native type (whether binary COPY can carry it)."""
        return staging.native_types(self.conn, table)

    def copy_buckets(
        self,
        table: str,
        columns: Sequence[str],
        key: tuple[str, ...],
        compared: tuple[str, ...],
        selection: Selection,
        *,
        binary: bool,
    ) -> Iterator[bytes]:
        """PostgreSQL: the rows of :meth:`bucket_batches` as COPY data, undecoded."""
        hashes = self._digests(table, key, compared)
        names = ", ".join(digests.quote_name(self.dialect, c) for c in columns)
        select = f"SELECT {names} FROM {digests.quote_name(self.dialect, table)} WHERE "
        select += hashes.bucket_sql(selection)
        with classified(f"reading {table} from {self._label}"), hashes.settings():
            yield from staging.copy_out(self.conn, select, binary=binary)

    def env_batches(self, table: str, columns: list[str]) -> Iterator[Batch]:
        """The rows whose text may reference ``{{$env.NAME}}`` (a superset)."""
        where = digests.env_filter(self.conn, columns)
        with classified(f"reading {table} from {self._label}"):
            yield from stream_rows(
                self.conn, self.table(table), columns, where=where, buffered=self.small()
            )

    def archive_batches(self, table: str, columns: Sequence[str]) -> Iterator[Batch]:
        """Rows for a backup member: as :meth:`batches`, with what only PostgreSQL's
        text carries exactly (arrays, intervals, ``timetz`` …) read as that text."""
        with classified(f"reading {table} from {self._label}"):
            yield from stream_rows(
                self.conn, self.table(table), columns, archive=True, buffered=self.small()
            )

    def small(self) -> bool:
        """Whether every table read here fits in memory at once (a write session: only
        while it writes nothing, see :meth:`WriteSession.reading`)."""
        return False

    def ledger_find(self, migration_id: str) -> ledger.LedgerEntry | None:
        with classified("reading the ledger"):
            return ledger.find(self.conn, migration_id)

    def sqlite_classes(self, table: str) -> dict[str, set[str]]:
        with classified(f"reading {table} from {self._label}"):
            return restore_io.sqlite_classes(self.conn, self.table(table))

    def scalar_rows(self, sql: str) -> list[tuple[object, ...]]:
        with classified(f"querying {self._label}"):
            return [tuple(r) for r in self.conn.exec_driver_sql(sql).all()]


class ReadSnapshot(_Snapshot):
    """All reads in one transaction: a single point in time where the database allows."""

    _fast: pg_fast.SnapshotReader | bool | None = False  # False: not attached yet
    _small: bool | None = None

    def small(self) -> bool:
        """PostgreSQL: the tables hold less than ``pg_fast.SMALL_BYTES`` (dead rows
        included, so at least what this snapshot sees): rows are then read without a
        server-side cursor, two round trips fewer per read, in bounded memory."""
        if self._small is None:
            with classified(f"reading {self._label}"):
                self._small = pg_fast.small(self.conn)
        return self._small

    def arrow_batches(self, table: str, schema: Any) -> Iterator[Any] | None:
        """Record batches of the Arrow ``schema`` read with PostgreSQL's COPY, in this
        snapshot; None where there is no fast path (then use :meth:`batches`)."""
        if pg_fast.select_sql(self.table(table)) is None or self.small():
            return None  # a small database: a second connection costs more than it saves
        if self._fast is False:
            with classified(f"reading {self._label}"):
                self._fast = pg_fast.SnapshotReader.open(self.conn)
        if not isinstance(self._fast, pg_fast.SnapshotReader):
            return None
        return self._fast.batches(self.table(table), schema)

    def close(self) -> None:
        if isinstance(self._fast, pg_fast.SnapshotReader):
            self._fast.close()
        self._fast = None


class WriteSession(_Snapshot):
    """A locked write transaction on a target."""

    def refresh(self) -> None:
        self._schema = None

    _reading = False  # inside reading(): nothing is written
    _small: bool | None = None

    def small(self) -> bool:
        """Inside :meth:`reading` as a read snapshot's (the tables cannot grow while
        nothing is written); never elsewhere: the session may grow its tables."""
        if not self._reading:
            return False
        if self._small is None:
            with classified(f"reading {self._label}"):
                self._small = pg_fast.small(self.conn)
        return self._small

    @contextmanager
    def reading(self) -> Iterator[None]:
        """A stretch of reads only (the plan): the digests' output settings are fixed
        once for all of it, and the session's own are back before anything is written;
        small tables are read without server-side cursors."""
        with classified(f"reading {self._label}"):
            before = digests.hold_settings(self.conn)
        self._reading, self._small = True, None
        try:
            yield
        except BaseException:
            digests.release_settings(self.conn, before, put_back=False)
            raise
        finally:
            self._reading = False
        with classified(f"reading {self._label}"):
            digests.release_settings(self.conn, before, put_back=True)

    def execute_schema(self, plan: TablePlan, source_dialect: str) -> None:
        target = self.schema().table(plan.table)
        with classified(f"changing the schema of {plan.table}"):
            for op in plan.schema:
                execute_op(self.conn, op, source_dialect=source_dialect, target_schema=target)

    def write_rows(
        self,
        plan: TablePlan,
        source: TableSchema,
        fetch: Callable[[Sequence[str]], Iterator[Batch]],
        fault: Fault | None = None,
        *,
        recheck: bool = True,
        copy: RowCopy | None = None,
    ) -> None:
        """Apply one table's row changes; ``fetch(columns)`` streams the source rows.
        ``recheck``: hash each planned row again (see :class:`TableWriter`); ``copy``:
        the source's rows as COPY data, staged without decoding where the plan allows."""
        writer = TableWriter(self.conn, plan, source, self.table(plan.table), recheck=recheck)
        with classified(f"writing {plan.table}"):
            writer.delete()
            if copy is not None and writer.copies():
                mine = staging.native_types(self.conn, plan.table)
                binary = staging.binary_copyable(copy.types(), mine, writer.columns)
                writer.write_copied(copy.chunks(writer.columns, binary), binary, fault)
            else:
                writer.write(fetch(writer.columns), fault)

    def replace_table(
        self, schema: TableSchema, source_dialect: str, batches: Iterator[Batch]
    ) -> int:
        """Drop the table if it exists, create it as ``schema`` and fill it."""
        with classified(f"restoring {schema.name}"):
            restore_io.drop_table(self.conn, schema.name)
            restore_io.create_table(self.conn, schema, source_dialect)
            return restore_io.insert_rows(self.conn, schema, batches)

    def copies_arrow(self, schema: TableSchema, arrow_schema: Any) -> bool:
        """Whether :meth:`replace_table_arrow` can restore ``schema`` from such batches."""
        return pg_fast.writable(self.conn, schema, arrow_schema)

    def replace_table_arrow(
        self, schema: TableSchema, source_dialect: str, batches: Iterator[Any]
    ) -> int:
        """:meth:`replace_table` from Arrow record batches, with PostgreSQL's COPY."""
        with classified(f"restoring {schema.name}"):
            return pg_fast.replace_table(self.conn, schema, source_dialect, batches)

    def revert_table(
        self, steps: TableRevert, values: Callable[[Sequence[str]], Iterator[Batch]]
    ) -> int:
        """Put one table back as :class:`TableRevert` says; ``values(columns)`` streams
        the backup's (primary key…, columns…) for the columns whose values come back.
        Returns the number of rows written."""
        conn = self.conn
        with classified(f"rolling back {steps.table}"):
            table = self.table(steps.table)
            if steps.replace_all:
                revert.delete_all(conn, table)
            count = revert.delete_rows(conn, table, steps.key, steps.delete)
            count += revert.update_rows(conn, table, steps.key, steps.columns, steps.update)
            count += revert.insert_rows(conn, table, steps.columns, [steps.insert])
            restored = []
            for op, name in steps.ops:
                column = revert.reverse_op(conn, self.table(steps.table), op, name, steps.before)
                self.refresh()
                if column is not None:
                    restored.append(column.name)
            if restored:
                count += revert.set_values(
                    conn, self.table(steps.table), restored, values(restored)
                )
            return count

    def drop_table(self, name: str) -> None:
        with classified(f"dropping {name}"):
            restore_io.drop_table(self.conn, name)

    def prepare_ledger(self) -> None:
        """Create the ledger table if needed. Call it only once the checks passed: on
        MySQL/MariaDB creating a table commits, so it must precede the row changes."""
        with classified("preparing the ledger"):
            ledger.ensure(self.conn)

    def ledger_mark_undone(
        self, backup_id: str, taken_at: str, tables: set[str] | None
    ) -> list[str]:
        """Record which migrations a restore of ``backup_id`` undid; returns their IDs."""
        with classified("writing the ledger"):
            return ledger.mark_undone(self.conn, backup_id, taken_at, tables, ledger.now())

    def ledger_record(self, entry: ledger.LedgerEntry) -> None:
        with classified("writing the ledger"):
            ledger.ensure(self.conn)
            ledger.record(self.conn, entry)


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        self.dialect = dialect_of(url)
        self.label = redact(url)
        self.identity = identity(url)
        self.shared = ENGINES.shares(url)  # the operator's pool, kept across phases

    @cached_property
    def engine(self) -> sa.Engine:
        return ENGINES.engine(self.url) if self.shared else create_engine(self.url)

    def dispose(self) -> None:
        """Close this object's connections; a shared pool stays for the next phase."""
        if "engine" in self.__dict__ and not self.shared:
            self.engine.dispose()

    @contextmanager
    def reader(self) -> Iterator[ReadSnapshot]:
        with classified(f"connecting to {self.label}"):
            conn = self.engine.connect()
        try:
            if self.dialect in ("postgresql", "mysql"):
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with classified(f"reading {self.label}"):
                conn.begin()
                if self.dialect == "mysql":
                    conn.exec_driver_sql("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            snap = ReadSnapshot(conn, self.label, self.identity)
            try:
                yield snap
            finally:
                snap.close()
        finally:
            conn.close()

    @contextmanager
    def writer(self) -> Iterator[WriteSession]:
        """A write transaction holding the target's write lock; commits on success."""
        with classified(f"connecting to {self.label}"):
            conn = self.engine.connect()
        try:
            if self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            with classified(f"locking {self.label}"):
                tx = conn.begin()
                locks.acquire(conn)
            session = WriteSession(conn, self.label, self.identity)
            try:
                yield session
            except BaseException:
                tx.rollback()
                raise
            with classified(f"committing to {self.label}"):
                tx.commit()
        finally:
            try:
                if self.dialect == "mysql":
                    locks.release(conn)
            finally:
                conn.close()
