"""Execute a scoped rollback of one table: rows back from the backup, schema reversed.

Rows are updated in place where they exist (never deleted and re-inserted, so no
foreign key cascades), deleted where the migration inserted them, and inserted where
it deleted them. Schema operations are reversed as schema operations: an added index
or column is dropped; an altered column gets its type back and a dropped one is added
again, and both take their values from the backup by primary key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import DropIndex

from controller.db.ddl import execute_op
from controller.db.types import Bind
from controller.db.writer import WRITE_BATCH, _dml_table, _key_params, _where_key, fix_sequence
from controller.engine.model import Column, TableSchema
from controller.engine.schema_diff import AddColumn, AlterColumnType
from controller.engine.source import Batch
from controller.engine.undo import ADD_COLUMN, ADD_INDEX, ALTER_COLUMN, DROP_COLUMN


def _dml(conn: sa.Connection, table: TableSchema, columns: Sequence[str]) -> sa.Table:
    # SQLite: write back exactly the storage classes the backup holds.
    if conn.dialect.name == "sqlite":
        raw: list[sa.Column[Any]] = [sa.Column(c, Bind(lambda v: v)) for c in columns]
        return sa.Table(table.name, sa.MetaData(), *raw)
    return _dml_table(table, conn.dialect.name, columns)


def _batched(stmt: Any, conn: sa.Connection, params: Iterable[dict[str, Any]]) -> int:
    count, pending = 0, []
    for p in params:
        pending.append(p)
        if len(pending) >= WRITE_BATCH:
            conn.execute(stmt, pending)
            count, pending = count + len(pending), []
    if pending:
        conn.execute(stmt, pending)
        count += len(pending)
    return count


def delete_rows(
    conn: sa.Connection, table: TableSchema, key: Sequence[str], keys: Sequence[tuple[Any, ...]]
) -> int:
    if not keys:
        return 0
    t = _dml(conn, table, key)
    return _batched(sa.delete(t).where(_where_key(t, key)), conn, map(_key_params, keys))


def update_rows(
    conn: sa.Connection,
    table: TableSchema,
    key: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> int:
    """Set every column but the key and primary key to the backup's values."""
    skip = set(key) | set(table.primary_key)
    values = [c for c in columns if c not in skip]
    if not rows or not values:
        return len(rows)
    t = _dml(conn, table, sorted(set(key) | set(values)))
    stmt = (
        sa.update(t)
        .where(_where_key(t, key))
        .values({c: sa.bindparam(f"v_{c}", type_=t.c[c].type) for c in values})
    )
    pos = {c: i for i, c in enumerate(columns)}

    def params(row: tuple[Any, ...]) -> dict[str, Any]:
        out = _key_params([row[pos[c]] for c in key])
        return out | {f"v_{c}": row[pos[c]] for c in values}

    return _batched(stmt, conn, map(params, rows))


def insert_rows(
    conn: sa.Connection, table: TableSchema, columns: Sequence[str], rows: Iterable[Batch]
) -> int:
    t = _dml(conn, table, columns)
    count = _batched(
        sa.insert(t), conn, (dict(zip(columns, row, strict=True)) for b in rows for row in b)
    )
    if count:
        fix_sequence(conn, table)
    return count


def delete_all(conn: sa.Connection, table: TableSchema) -> None:
    conn.execute(sa.delete(sa.table(table.name)))


def reverse_op(
    conn: sa.Connection, table: TableSchema, op: str, name: str, before: TableSchema
) -> Column | None:
    """Reverse one schema operation; returns the column whose values must come back."""
    quoted = conn.dialect.identifier_preparer.quote
    if op == ADD_INDEX:
        md = sa.MetaData()
        t = sa.Table(table.name, md, sa.Column("_", sa.Integer()))
        conn.execute(DropIndex(sa.Index(name, t.c["_"])))
        return None
    if op == ADD_COLUMN:
        conn.exec_driver_sql(f"ALTER TABLE {quoted(table.name)} DROP COLUMN {quoted(name)}")
        return None
    col = before.column(name)
    assert col is not None, f"{before.name}.{name} is not in the backup"
    dialect = conn.dialect.name
    if op == ALTER_COLUMN:
        now = table.column(name)
        assert now is not None
        back = AlterColumnType(table.name, col, now.type, destructive=True)
        execute_op(conn, back, source_dialect=dialect, target_schema=table)
        return col
    assert op == DROP_COLUMN, op
    nullable = Column(col.name, col.type, nullable=True)
    execute_op(conn, AddColumn(table.name, nullable), source_dialect=dialect, target_schema=table)
    return col


def set_values(
    conn: sa.Connection,
    table: TableSchema,
    columns: Sequence[str],
    rows: Iterable[Batch],
) -> int:
    """``rows`` are (primary key…, value…) of ``columns`` as the backup holds them."""
    pk = table.primary_key
    t = _dml(conn, table, [*pk, *columns])
    stmt = (
        sa.update(t)
        .where(_where_key(t, pk))
        .values({c: sa.bindparam(f"v_{c}", type_=t.c[c].type) for c in columns})
    )
    n = len(pk)

    def params(row: tuple[Any, ...]) -> dict[str, Any]:
        return _key_params(row[:n]) | {f"v_{c}": v for c, v in zip(columns, row[n:], strict=True)}

    return _batched(stmt, conn, (params(row) for b in rows for row in b))
