"""Read and write NocoBase's ``environmentVariables`` table (name, type, value)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from controller.db.reflect import reflect_table

TABLES = ("environmentVariables", "environment_variables")


def table_name(conn: sa.Connection) -> str | None:
    names = set(sa.inspect(conn).get_table_names())
    return next((t for t in TABLES if t in names), None)


def _table(conn: sa.Connection, name: str) -> sa.Table:
    schema = reflect_table(conn, name, set())
    cols = [
        sa.Column(
            c.name,
            sa.String() if c.name in ("name", "type", "value") else sa.DateTime(timezone=True),
        )
        for c in schema.columns
    ]
    return sa.Table(name, sa.MetaData(), *cols)


def read(conn: sa.Connection, name: str) -> dict[str, tuple[str | None, str | None]]:
    table = _table(conn, name)
    rows = conn.execute(sa.select(table.c.name, table.c.type, table.c.value)).all()
    return {str(r[0]): (r[1], r[2]) for r in rows}


def upsert(
    conn: sa.Connection, name: str, rows: list[tuple[str, str, str]], existing: set[str]
) -> None:
    table = _table(conn, name)
    now = dt.datetime.now(dt.UTC)
    stamps = {
        c: now for c in ("createdAt", "updatedAt", "created_at", "updated_at") if c in table.c
    }
    for var, kind, value in rows:
        if var in existing:
            changes: dict[str, object] = {"type": kind, "value": value}
            changes |= {c: now for c in ("updatedAt", "updated_at") if c in table.c}
            conn.execute(sa.update(table).where(table.c.name == var).values(changes))
        else:
            conn.execute(sa.insert(table).values(name=var, type=kind, value=value, **stamps))
