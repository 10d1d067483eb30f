"""Write a plan's row changes into the target, table by table, in bounded memory.

Source rows are streamed a second time and each one is checked against the digest the
plan recorded: if the source changed between planning and applying, the write stops
(and the transaction rolls back) instead of applying a plan nobody reviewed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from controller.db.staging import Staging
from controller.db.types import bind_type
from controller.engine.model import INTEGER_KINDS, TableSchema
from controller.engine.plan import TablePlan
from controller.engine.rowindex import RowShape
from controller.engine.source import Batch
from controller.errors import PermanentError

WRITE_BATCH = 1000
Fault = Callable[[str], None]


@dataclass(frozen=True)
class RowCopy:
    """One table's source rows as PostgreSQL COPY data, read in the snapshot the plan
    was made in: ``types()`` the source's native column types, ``chunks(columns,
    binary)`` the data."""

    types: Callable[[], dict[str, tuple[str, int]]]
    chunks: Callable[[Sequence[str], bool], Iterator[bytes]]


def _dml_table(schema: TableSchema, dialect: str, columns: Sequence[str]) -> sa.Table:
    cols: list[sa.Column[Any]] = []
    for name in columns:
        col = schema.column(name)
        assert col is not None, f"{schema.name}.{name} missing in the target"
        cols.append(sa.Column(name, bind_type(col.type, dialect)))
    return sa.Table(schema.name, sa.MetaData(), *cols)


def _key_params(key: Sequence[Any]) -> dict[str, Any]:
    return {f"k_{i}": v for i, v in enumerate(key)}


def _where_key(table: sa.Table, key_columns: Sequence[str]) -> Any:
    return sa.and_(
        *[
            table.c[c] == sa.bindparam(f"k_{i}", type_=table.c[c].type)
            for i, c in enumerate(key_columns)
        ]
    )


@dataclass
class _Pending:
    """Rows queued for the next batch, and how many planned rows the source had."""

    inserts: list[dict[str, Any]] = field(default_factory=list)
    remapped: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    seen_inserts: int = 0
    seen_updates: int = 0


class TableWriter:
    def __init__(
        self,
        conn: sa.Connection,
        plan: TablePlan,
        source: TableSchema,
        target: TableSchema,
        *,
        recheck: bool = True,
    ) -> None:
        """``recheck=False`` skips hashing each planned row again: for a table planned
        with in-database digests in the very read snapshot the writer reads (a source
        that cannot have changed since), whose result verification then compares with
        the source in the database. Planned rows are still counted."""
        assert plan.keyspec is not None and plan.changes is not None
        self.recheck = recheck
        self.conn = conn
        self.plan = plan
        self.changes = plan.changes
        self.ks = plan.keyspec
        dialect = conn.dialect.name
        self.columns = [c for c in source.column_names if target.column(c) is not None]
        self.source = source
        self.target = target
        self.table = _dml_table(target, dialect, self.columns)
        key_cols = [c for c in self.ks.key]
        key_table = _dml_table(target, dialect, sorted(set(key_cols) | set(self.columns)))
        self.key_table = key_table
        # An ignored column does not make a row "changed", but a changed row carries it.
        self.update_columns = [
            c
            for c in self.columns
            if (c in self.ks.compared or c in self.ks.ignored) and c not in self.ks.key
        ]
        self.no_pk_columns = [c for c in self.columns if c not in source.primary_key]
        types = [source.column(c).type for c in self.columns]  # type: ignore[union-attr]
        self.shape = RowShape(
            source.name,
            self.columns,
            types,
            key_columns=self.ks.key,
            compared_columns=self.ks.compared,
            pk_columns=self.ks.pk,
            side="source",
        )
        self.staging: Staging | None = None
        if dialect == "postgresql" and self.ks.key:
            self.staging = Staging(
                conn, target.name, self.columns, self.ks.key, self.update_columns
            )

    def delete(self) -> None:
        if self.changes.replace_all:
            self.conn.execute(sa.delete(self.table))
            return
        if not self.changes.deletes:
            return
        if self.staging is not None:
            self.staging.deletes(self.changes.deletes)
            return
        stmt = sa.delete(self.key_table).where(_where_key(self.key_table, self.ks.key))
        for chunk in _chunks(self.changes.deletes, WRITE_BATCH):
            self.conn.execute(stmt, [_key_params(k) for k in chunk])

    def _update_stmt(self) -> Any:
        if not (self.update_columns and self.ks.key):  # keyless tables are replaced
            return None
        return (
            sa.update(self.key_table)
            .where(_where_key(self.key_table, self.ks.key))
            .values(
                {
                    c: sa.bindparam(f"v_{c}", type_=self.key_table.c[c].type)
                    for c in self.update_columns
                }
            )
        )

    def _sort(self, row: tuple[Any, ...], pending: _Pending) -> None:
        """Queue one source row as the plan says: an insert, a re-keyed insert, an
        update, or nothing; a planned row that changed since stops the write."""
        values = dict(zip(self.columns, row, strict=True))
        if self.changes.replace_all:
            pending.inserts.append(values)
            pending.seen_inserts += 1
            return
        canon = self.shape.canon_key(self.shape.raw_key(row))
        planned = self.changes.inserts.get(canon)
        if planned is not None:
            self._same_as_planned(planned, row, canon)
            pending.seen_inserts += 1
            if canon in self.changes.remap:
                pending.remapped.append({c: values[c] for c in self.no_pk_columns})
            else:
                pending.inserts.append(values)
        elif canon in self.changes.updates:
            self._same_as_planned(self.changes.update_digests[canon], row, canon)
            pending.seen_updates += 1
            params = _key_params(self.changes.updates[canon])
            params |= {f"v_{c}": values[c] for c in self.update_columns}
            pending.updates.append(params)

    def _flush(self, pending: _Pending, update_stmt: Any, fault: Fault | None, last: bool) -> None:
        """Write queued rows in batches of WRITE_BATCH (all of them when ``last``).
        Queued updates go first, and whenever inserts go: an update may free a unique
        value an insert takes (a workflow revision retired, ``current`` NULL, before
        another is inserted current), never the reverse in a valid end state."""
        inserts = bool(pending.inserts) and (last or len(pending.inserts) >= WRITE_BATCH)
        full = last or inserts or len(pending.updates) >= WRITE_BATCH
        if update_stmt is not None and pending.updates and full:
            if self.staging is not None:
                self.staging.updates(pending.updates)
            else:
                self.conn.execute(update_stmt, pending.updates)
            pending.updates = []
        if inserts:
            if self.staging is not None:
                self.staging.inserts(pending.inserts)
            else:
                self.conn.execute(sa.insert(self.table), pending.inserts)
            pending.inserts = []
            if fault and not last:
                fault(f"insert:{self.plan.table}")

    def _check_counts(self, pending: _Pending) -> None:
        expected_inserts = len(self.changes.inserts)
        if pending.seen_inserts != expected_inserts or pending.seen_updates != len(
            self.changes.updates
        ):
            raise PermanentError(
                f"table {self.plan.table}: the source changed since the plan "
                f"({pending.seen_inserts}/{expected_inserts} inserts, "
                f"{pending.seen_updates}/{len(self.changes.updates)} updates found)"
            )

    def _insert_remapped(self, remapped: list[dict[str, Any]]) -> None:
        """Rows whose ID is taken in the target: inserted without it, so they get new IDs."""
        if not remapped:
            return
        no_pk = sa.Table(
            self.table.name,
            sa.MetaData(),
            *[
                sa.Column(c.name, c.type)
                for c in self.table.columns
                if c.name in self.no_pk_columns
            ],
        )
        for chunk in _chunks(remapped, WRITE_BATCH):
            self.conn.execute(sa.insert(no_pk), chunk)

    def write(self, batches: Iterator[Batch], fault: Fault | None) -> None:
        pending = _Pending()
        update_stmt = self._update_stmt()
        for batch in batches:
            for row in batch:
                self._sort(row, pending)
            self._flush(pending, update_stmt, fault, last=False)
        self._flush(pending, update_stmt, fault, last=True)
        if fault:
            fault(f"rows:{self.plan.table}")
        self._check_counts(pending)
        if self.staging is not None:
            if fault:  # staged with COPY, not applied yet
                fault(f"staged:{self.plan.table}")
            self.staging.apply()
        fix_sequence(self.conn, self.target)
        self._insert_remapped(pending.remapped)

    def copies(self) -> bool:
        """Whether :meth:`write_copied` can apply this plan: PostgreSQL staging, a plan
        made in the source's snapshot (no recheck), no replaced table and no row that
        needs a fresh ID."""
        return (
            self.staging is not None
            and not self.recheck
            and not self.changes.replace_all
            and not self.changes.remap
        )

    def write_copied(self, chunks: Iterator[bytes], binary: bool, fault: Fault | None) -> None:
        """Stage the source rows of the plan's buckets with COPY, undecoded, then insert
        the staged rows the target lacks and update the planned ones in two statements;
        counts other than the plan's roll the transaction back. Into a table that held
        no rows when planned, every copied row is an insert: the COPY goes straight
        into it (the transaction still rolls it back on any later failure)."""
        assert self.staging is not None
        direct, copied = self._inserts_only(), 0
        if direct:
            copied = self.staging.copy_into_table(chunks, binary=binary)
        else:
            self.staging.copy_rows(chunks, binary=binary)
        if fault:
            fault(f"rows:{self.plan.table}")
            fault(f"staged:{self.plan.table}")  # copied, the final statements not run yet
        if direct:
            done = (copied, 0)
        else:
            done = self.staging.apply_rows(list(self.changes.updates.values()))
        if not self.update_columns:  # nothing to set: the planned updates are no-ops
            done = (done[0], len(self.changes.updates))
        planned = (len(self.changes.inserts), len(self.changes.updates))
        if done != planned:
            raise PermanentError(
                f"table {self.plan.table}: the target or the source changed since the "
                f"plan ({done[0]}/{planned[0]} inserts, {done[1]}/{planned[1]} updates)"
            )
        fix_sequence(self.conn, self.target)

    def _inserts_only(self) -> bool:
        """Whether the target held no row of this table when planned: none matched,
        updated, deleted or kept (every target row is one of those)."""
        c = self.changes
        return not (c.unchanged or c.kept or c.updates or c.deletes)

    def _same_as_planned(self, planned: bytes, row: tuple[Any, ...], canon: Any) -> None:
        if planned and self.recheck and self.shape.digest(row) != planned:
            raise PermanentError(
                f"table {self.plan.table}: row {canon!r} changed in the source "
                "since the plan was made; plan again"
            )


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def fix_sequence(conn: sa.Connection, table: TableSchema) -> None:
    """Move the ID generator past the highest ID after inserts with explicit IDs."""
    if len(table.primary_key) != 1:
        return
    col = table.column(table.primary_key[0])
    if col is None or not col.autoincrement or col.type.kind not in INTEGER_KINDS:
        return
    prep = conn.dialect.identifier_preparer
    qt, qc = prep.quote(table.name), prep.quote(col.name)
    if conn.dialect.name == "postgresql":
        seq = conn.execute(
            sa.text("select pg_get_serial_sequence(:t, :c)"), {"t": qt, "c": col.name}
        ).scalar()
        if seq:
            conn.execute(
                sa.text(f"select setval(:s, coalesce((select max({qc}) from {qt}), 0) + 1, false)"),
                {"s": seq},
            )
    # MySQL/MariaDB (InnoDB) raise AUTO_INCREMENT past any explicit ID by themselves, and
    # SQLite's rowid follows the highest row; an ALTER there would commit implicitly.
