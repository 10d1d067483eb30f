"""The migration bench's data on MariaDB: the same generated rows, edits and deletions.

``migration_bench.py --mariadb`` runs the 100k scenario MariaDB → MariaDB after the
PostgreSQL one, in the same run, so its times are ratios to the same `pg_dump | psql`.
Rows go in with multi-row INSERTs (PyMySQL's ``executemany``), edits with ``JSON_SET``.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from bench.migration_bench import MOVED_TABLES, T0, generate_rows, table_counts

BATCH = 2000
# Columns that an "edit" changes (JSON where the table has one), as in EDIT.
EDIT = {
    "uiSchemas": ("x-uid", "`schema` = JSON_SET(`schema`, '$.title', CONCAT('edited ', {k}))"),
    "fields": ("key", "`options` = JSON_SET(`options`, '$.benchEdited', 'Edited')"),
    "desktopRoutes": ("id", "`options` = JSON_SET(`options`, '$.documentTitle', 'Edited')"),
    "collections": ("key", "`options` = JSON_SET(`options`, '$.logging', false)"),
    "roles": ("name", '`strategy` = \'{"actions": ["view"]}\''),
    "workflows": ("id", "`config` = JSON_SET(`config`, '$.mode', 2)"),
    "flow_nodes": ("id", "`config` = JSON_SET(`config`, '$.edited', true)"),
    "uiSchemaTreePath": ("descendant", "`sort` = `sort` + 1000000"),
    "rolesResources": ("id", "`usingActionsConfig` = 0"),
}


def _value(value: Any) -> Any:
    return T0[:-3] if value == T0 else value  # MariaDB DATETIME takes no UTC offset


def _insert(conn: sa.Connection, table: str, columns: list[str], rows: Any) -> int:
    names = ", ".join(f"`{c}`" for c in columns)
    marks = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO `{table}` ({names}) VALUES ({marks})"
    raw: Any = conn.connection.driver_connection
    n, batch = 0, []
    with raw.cursor() as cur:
        for row in rows:
            batch.append(tuple(_value(v) for v in row))
            if len(batch) >= BATCH:
                cur.executemany(sql, batch)
                n, batch = n + len(batch), []
        if batch:
            cur.executemany(sql, batch)
            n += len(batch)
    return n


def empty_tables(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for table in MOVED_TABLES:
                conn.exec_driver_sql(f"DELETE FROM `{table}`")
    finally:
        engine.dispose()


def fill_source(url: str, total: int) -> dict[str, int]:
    written: dict[str, int] = {}
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for table, count in table_counts(total).items():
                cols, rows = generate_rows(table, count, seed=1, prefix="", id_start=1000)
                written[table] = _insert(conn, table, cols, rows)
    finally:
        engine.dispose()
    return written


def change_source(url: str, total: int) -> dict[str, int]:
    """~1% of rows edited, ~0.5% added, ~0.5% deleted, chosen by a hash of the key."""
    made = {"update": 0, "insert": 0, "delete": 0}
    counts = table_counts(total)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for table, (key, assignment) in EDIT.items():
                k = f"CAST(`{key}` AS CHAR)"
                by_key = f"CONV(SUBSTR(MD5(CONCAT({k}, 'bench')), 1, 6), 16, 10) % 200"
                # text(): SQLAlchemy escapes the % for PyMySQL's placeholders
                made["delete"] += conn.execute(
                    sa.text(f"DELETE FROM `{table}` WHERE {by_key} = 1")
                ).rowcount
                set_ = assignment.replace("{k}", k)
                made["update"] += conn.execute(
                    sa.text(f"UPDATE `{table}` SET {set_} WHERE {by_key} IN (2, 3)")
                ).rowcount
                extra = max(1, counts[table] // 200)
                cols, rows = generate_rows(table, extra, seed=2, prefix="new-", id_start=10_000_000)
                made["insert"] += _insert(conn, table, cols, rows)
    finally:
        engine.dispose()
    return made
