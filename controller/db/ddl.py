"""Execute schema operations of a plan on the target dialect.

Every piece of DDL text is produced here from checked parts: names quoted by the
dialect (after :func:`check_name` for the target), types re-rendered from their parse
(:func:`controller.db.types.ddl_type`), defaults from :func:`default_clause`. The
readers already refused bad schemas; this is the second fence, so no path can paste
text it was given.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.schema import CreateIndex, CreateTable

from controller.db.types import ddl_type
from controller.engine.identifiers import check_name
from controller.engine.model import Column, Index, Kind, TableSchema
from controller.engine.schema_diff import (
    AddColumn,
    AddIndex,
    AlterColumnType,
    DropColumn,
    SchemaOp,
)
from controller.engine.schema_diff import (
    CreateTable as CreateTableOp,
)
from controller.engine.sqldefaults import parse_default

_UNINDEXABLE_ON_MYSQL = (Kind.TEXT, Kind.JSON, Kind.BINARY)


def default_clause(col: Column, table: str, dialect: str, what: str) -> str | sa.TextClause | None:
    """The server default of ``col`` as SQLAlchemy renders it: a string (quoted as a
    literal by the dialect), or SQL text Ferry produced (numbers, booleans, NULL, the
    allow-listed expressions); never the text that was read."""
    if col.default is None:
        return None
    parsed = parse_default(col.default, dialect, table=table, column=col.name, what=what)
    if parsed.kind == "literal":
        value = parsed.value
        if isinstance(value, str):
            return value
        if value is None:
            sql = "NULL"
        elif isinstance(value, bool):
            sql = "TRUE" if value else "FALSE"
        else:
            sql = str(value)  # an int or a Decimal: digits, sign, point, exponent
    else:
        sql = parsed.sql
    if parsed.on_update:
        sql += " ON UPDATE " + parsed.on_update
    return sa.text(sql)


def _sa_column(
    col: Column, dialect: str, same: bool, pk: tuple[str, ...], table: str
) -> sa.Column[Any]:
    in_pk = col.name in pk
    auto = col.autoincrement and in_pk and len(pk) == 1
    what = f"table {table[:64]!r} column {col.name[:64]!r}"
    check_name(col.name, dialect, f"table {table[:64]!r}: a column name")
    kwargs: dict[str, Any] = {}
    if same and col.default is not None and not auto:
        kwargs["server_default"] = default_clause(col, table, dialect, f"{what} default")
    return sa.Column(
        col.name,
        ddl_type(col.type, dialect, same_dialect=same, autoincrement=auto, what=what),
        primary_key=in_pk,
        nullable=col.nullable or False,
        autoincrement=auto if in_pk else False,
        **kwargs,
    )


def _indexable(table: TableSchema, index: Index, dialect: str) -> bool:
    if dialect != "mysql":
        return True
    for name in index.columns:
        col = table.column(name)
        if col is not None and col.type.kind in _UNINDEXABLE_ON_MYSQL:
            return False
    return True


def build_table(schema: TableSchema, dialect: str, same: bool) -> sa.Table:
    check_name(schema.name, dialect, "table name")
    for ix in (*schema.uniques, *schema.indexes):
        check_name(ix.name, dialect, f"table {schema.name[:64]!r}: an index name")
    md = sa.MetaData()
    cols = [_sa_column(c, dialect, same, schema.primary_key, schema.name) for c in schema.columns]
    table = sa.Table(schema.name, md, *cols)
    for u in schema.uniques:
        if _indexable(schema, u, dialect):
            table.append_constraint(sa.UniqueConstraint(*u.columns, name=u.name))
    for ix in schema.indexes:
        if _indexable(schema, ix, dialect):
            sa.Index(ix.name, *[table.c[c] for c in ix.columns], unique=ix.unique)
    return table


def _quoted(conn: sa.Connection, name: str) -> str:
    check_name(name, conn.dialect.name, "name")
    return str(conn.dialect.identifier_preparer.quote(name))


def _type_sql(conn: sa.Connection, col: Column, same: bool) -> str:
    what = f"column {col.name[:64]!r}"
    satype = ddl_type(col.type, conn.dialect.name, same_dialect=same, what=what)
    return str(satype.compile(dialect=conn.dialect))


def execute_op(
    conn: sa.Connection, op: SchemaOp, *, source_dialect: str, target_schema: TableSchema | None
) -> None:
    dialect = conn.dialect.name
    same = source_dialect == dialect
    if isinstance(op, CreateTableOp):
        table = build_table(op.table, dialect, same)
        conn.execute(CreateTable(table))
        for ix in table.indexes:
            conn.execute(CreateIndex(ix))
        return
    q = _quoted(conn, op.table)
    if isinstance(op, AddColumn):
        null = "" if op.column.nullable else " NOT NULL"
        conn.exec_driver_sql(
            f"ALTER TABLE {q} ADD COLUMN {_quoted(conn, op.column.name)} "
            f"{_type_sql(conn, op.column, same)}{null}"
        )
    elif isinstance(op, DropColumn):
        conn.exec_driver_sql(f"ALTER TABLE {q} DROP COLUMN {_quoted(conn, op.column)}")
    elif isinstance(op, AlterColumnType):
        _alter_type(conn, op, same, target_schema)
    elif isinstance(op, AddIndex):
        schema = target_schema or TableSchema(op.table, ())
        if not _indexable(schema, op.index, dialect):
            return
        check_name(op.index.name, dialect, f"table {op.table[:64]!r}: an index name")
        md = sa.MetaData()
        table = sa.Table(op.table, md, *[sa.Column(c, sa.Integer()) for c in op.index.columns])
        conn.execute(
            CreateIndex(
                sa.Index(
                    op.index.name, *[table.c[c] for c in op.index.columns], unique=op.index.unique
                )
            )
        )


def _alter_type(
    conn: sa.Connection, op: AlterColumnType, same: bool, target_schema: TableSchema | None
) -> None:
    dialect = conn.dialect.name
    q, c = _quoted(conn, op.table), _quoted(conn, op.column.name)
    new = _type_sql(conn, op.column, same)
    if dialect == "postgresql":
        conn.exec_driver_sql(f"ALTER TABLE {q} ALTER COLUMN {c} TYPE {new} USING {c}::{new}")
    elif dialect == "mysql":
        existing = target_schema.column(op.column.name) if target_schema else None
        null = " NULL" if existing is None or existing.nullable else " NOT NULL"
        conn.exec_driver_sql(f"ALTER TABLE {q} MODIFY COLUMN {c} {new}{null}")
    else:
        # SQLite columns are dynamically typed: a declared type change has no effect on
        # what a column can hold, so there is nothing to rewrite.
        return
