"""Database side of backups: SQLite storage classes, and rewriting whole tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable

from controller.db.ddl import build_table
from controller.db.types import Bind
from controller.db.writer import WRITE_BATCH, _dml_table, fix_sequence
from controller.engine.model import TableSchema
from controller.engine.source import Batch


def sqlite_classes(conn: sa.Connection, table: TableSchema) -> dict[str, set[str]]:
    """The storage classes each column of a SQLite table holds (one scan)."""
    if not table.columns:
        return {}
    prep = conn.dialect.identifier_preparer
    exprs = ", ".join(f"group_concat(DISTINCT typeof({prep.quote(c.name)}))" for c in table.columns)
    row = conn.exec_driver_sql(f"select {exprs} from {prep.quote(table.name)}").one()
    return {
        c.name: set((v or "").split(",")) - {""} for c, v in zip(table.columns, row, strict=True)
    }


def drop_table(conn: sa.Connection, name: str) -> None:
    conn.exec_driver_sql(f"DROP TABLE IF EXISTS {conn.dialect.identifier_preparer.quote(name)}")


def create_table(conn: sa.Connection, schema: TableSchema, source_dialect: str) -> None:
    table = build_table(schema, conn.dialect.name, same=source_dialect == conn.dialect.name)
    conn.execute(CreateTable(table))
    for ix in table.indexes:
        conn.execute(CreateIndex(ix))


def _raw_table(schema: TableSchema) -> sa.Table:
    # SQLite: write back exactly the storage classes that were read.
    return sa.Table(
        schema.name, sa.MetaData(), *[sa.Column(c.name, Bind(lambda v: v)) for c in schema.columns]
    )


def insert_rows(conn: sa.Connection, schema: TableSchema, batches: Iterable[Batch]) -> int:
    dialect = conn.dialect.name
    table = (
        _raw_table(schema)
        if dialect == "sqlite"
        else _dml_table(schema, dialect, schema.column_names)
    )
    stmt = sa.insert(table)
    names = schema.column_names
    count = 0
    pending: list[dict[str, Any]] = []
    for batch in batches:
        pending += [dict(zip(names, row, strict=True)) for row in batch]
        if len(pending) >= WRITE_BATCH:
            conn.execute(stmt, pending)
            count += len(pending)
            pending = []
    if pending:
        conn.execute(stmt, pending)
        count += len(pending)
    fix_sequence(conn, schema)
    return count
