"""Reflect a live database into a dialect-neutral :class:`DatabaseSchema`.

What a database says about itself is kept only where Ferry can render it again from a
parse: a type spelling outside the dialect's allow-list (a PostgreSQL enum, a SQLite
declared type of arbitrary words) is reduced to its kind, and a default that is not a
literal or a known expression is left out (the column is then created without it).
Names are checked as the snapshot reader checks them.

Reflecting is the largest part of a small migration's time (the inspector asks per
table), and a migration reflects the same database several times (plan, apply, backup,
baseline). :class:`SchemaCache` keeps each database's reflection per *schema version*:
a fingerprint of the catalog read in the caller's own transaction (SQLite: every
``sqlite_master`` row; PostgreSQL: the catalog rows of the tables, columns, defaults,
constraints, indexes and types of the current schema, their definitions and ``xmin``;
MariaDB: ``information_schema``'s rows for the database). Any DDL, by Ferry or anyone,
changes the fingerprint; an uncommitted DDL's state is content like any other, so a
rolled-back change cannot be served to anyone. Entries are keyed by the database's
identity without its password (:func:`controller.db.connect.identity`).
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from dataclasses import replace
from typing import Any

import sqlalchemy as sa

from controller.db.types import column_type
from controller.engine import sqldefaults, sqltypes
from controller.engine.identifiers import check_name
from controller.engine.model import Column, ColumnType, DatabaseSchema, Index, Kind, TableSchema

_JSON_CHECK = re.compile(r"json_valid\(`?([^`)]+)`?\)", re.IGNORECASE)


def server_version(conn: sa.Connection) -> str:
    dialect = conn.dialect.name
    if dialect == "sqlite":
        return str(conn.exec_driver_sql("select sqlite_version()").scalar())
    if dialect == "postgresql":
        return str(conn.exec_driver_sql("show server_version").scalar())
    return str(conn.exec_driver_sql("select version()").scalar())


def _mariadb_json_columns(conn: sa.Connection) -> set[tuple[str, str]]:
    """MariaDB spells JSON as LONGTEXT plus a ``json_valid`` check; find those columns."""
    try:
        rows = conn.exec_driver_sql(
            "select TABLE_NAME, CHECK_CLAUSE from information_schema.CHECK_CONSTRAINTS "
            "where CONSTRAINT_SCHEMA = database()"
        ).all()
    except sa.exc.DBAPIError:
        return set()
    found = set()
    for table, clause in rows:
        for match in _JSON_CHECK.finditer(str(clause)):
            found.add((str(table), match.group(1)))
    return found


def _sqlite_declared(conn: sa.Connection, table: str) -> dict[str, str]:
    quoted = table.replace('"', '""')
    rows = conn.exec_driver_sql(f'pragma table_info("{quoted}")').all()
    return {str(r[1]): str(r[2] or "") for r in rows}


def _autoincrement(col: Any, dialect: str, pk: list[str], kind: Kind) -> bool:
    if dialect == "postgresql":
        default = str(col.get("default") or "")
        return default.startswith("nextval(") or bool(col.get("identity"))
    if dialect == "mysql":
        return col.get("autoincrement") is True
    # SQLite: an INTEGER PRIMARY KEY is the rowid, which the database assigns.
    return pk == [col["name"]] and kind in (Kind.INTEGER, Kind.BIGINT, Kind.SMALLINT)


class _Reflected:
    """What the inspector says about some tables: one query per kind where the dialect
    can (PostgreSQL reflects every table's columns at once), else per table."""

    def __init__(self, conn: sa.Connection, names: list[str]) -> None:
        insp = sa.inspect(conn)
        if conn.dialect.name == "postgresql" and len(names) > 1:
            pks = insp.get_multi_pk_constraint(filter_names=names)
            columns = insp.get_multi_columns(filter_names=names)
            uniques = insp.get_multi_unique_constraints(filter_names=names)
            indexes = insp.get_multi_indexes(filter_names=names)
            self.pks: dict[str, Any] = {k[1]: v for k, v in pks.items()}
            self.columns: dict[str, Any] = {k[1]: v for k, v in columns.items()}
            self.uniques: dict[str, Any] = {k[1]: v for k, v in uniques.items()}
            self.indexes: dict[str, Any] = {k[1]: v for k, v in indexes.items()}
            return
        self.pks = {n: insp.get_pk_constraint(n) for n in names}
        self.columns = {n: insp.get_columns(n) for n in names}
        self.uniques = {n: insp.get_unique_constraints(n) for n in names}
        self.indexes = {n: insp.get_indexes(n) for n in names}


def reflect_table(
    conn: sa.Connection,
    name: str,
    json_cols: set[tuple[str, str]],
    reflected: _Reflected | None = None,
) -> TableSchema:
    check_name(name, None, "table name")
    info = reflected or _Reflected(conn, [name])
    dialect = conn.dialect.name
    declared = _sqlite_declared(conn, name) if dialect == "sqlite" else {}
    pk = list((info.pks.get(name) or {}).get("constrained_columns") or [])
    columns = []
    for col in info.columns.get(name, []):
        check_name(col["name"], None, f"table {name[:64]!r}: a column name")
        ct = column_type(col["type"], conn.dialect, declared.get(col["name"], ""))
        if (name, col["name"]) in json_cols:
            ct = ColumnType(Kind.JSON, native="JSON")
        if ct.native and not sqltypes.parses(ct.native, dialect):
            ct = replace(ct, native="")
        default = None if col.get("default") is None else str(col["default"])
        if default is not None and not sqldefaults.accepts(default, dialect, name, col["name"]):
            default = None
        columns.append(
            Column(
                name=col["name"],
                type=ct,
                nullable=bool(col.get("nullable", True)),
                autoincrement=_autoincrement(col, dialect, pk, ct.kind),
                default=default,
            )
        )
    uniques = tuple(
        Index(
            u.get("name") or f"uq_{name}_{'_'.join(u['column_names'])}",
            tuple(u["column_names"]),
            True,
        )
        for u in info.uniques.get(name, [])
        if u.get("column_names")
    )
    unique_sets = {u.columns for u in uniques}
    indexes = []
    for ix in info.indexes.get(name, []):
        cols = [c for c in ix.get("column_names") or [] if c]
        if not cols or len(cols) != len(ix.get("column_names") or []):
            continue  # expression index: not portable
        if ix.get("dialect_options", {}).get("postgresql_where") is not None:
            continue  # partial index: not portable
        if tuple(cols) in unique_sets and ix.get("unique"):
            continue  # the index that backs a unique constraint
        indexes.append(Index(str(ix["name"]), tuple(cols), bool(ix.get("unique"))))
    return TableSchema(
        name=name,
        columns=tuple(columns),
        primary_key=tuple(pk),
        uniques=uniques,
        indexes=tuple(sorted(indexes, key=lambda i: i.name)),
    )


def reflect(conn: sa.Connection, only: set[str] | None = None) -> DatabaseSchema:
    insp = sa.inspect(conn)
    dialect = conn.dialect.name
    json_cols = _mariadb_json_columns(conn) if dialect == "mysql" else set()
    names = [
        name
        for name in insp.get_table_names()
        if not (dialect == "sqlite" and name.startswith("sqlite_"))
        and (only is None or name in only)
    ]
    for name in names:
        check_name(name, None, "table name")  # before any name reaches a query
    reflected = _Reflected(conn, names)
    tables = {name: reflect_table(conn, name, json_cols, reflected) for name in names}
    return DatabaseSchema(dialect=dialect, server_version=server_version(conn), tables=tables)


# Every catalog row reflection depends on, with its raw definition and ``xmin`` (a
# new row version for any DDL), for the tables of the current schema only. Raw catalog
# columns, never pg_get_expr / pg_get_constraintdef / pg_get_indexdef: those open the
# table, and would wait behind another session's exclusive lock before the work began.
_PG_FINGERPRINT = """
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = current_schema()),
rel AS (SELECT c.oid, c.relname, c.relkind, c.xmin FROM pg_class c JOIN ns
        ON c.relnamespace = ns.oid)
SELECT md5(coalesce(string_agg(t, E'\\n' ORDER BY t), '')) || ':' || count(*) FROM (
  SELECT concat_ws(' ', 'c', oid, quote_ident(relname), relkind, xmin) AS t FROM rel
  UNION ALL
  SELECT concat_ws(' ', 'a', a.attrelid, a.attnum, quote_ident(a.attname),
                   quote_nullable(format_type(a.atttypid, a.atttypmod)), a.attnotnull,
                   a.attisdropped, a.attidentity, a.attgenerated, a.xmin)
  FROM pg_attribute a JOIN rel ON a.attrelid = rel.oid WHERE a.attnum > 0
  UNION ALL
  SELECT concat_ws(' ', 'd', d.adrelid, d.adnum, md5(d.adbin::text), d.xmin)
  FROM pg_attrdef d JOIN rel ON d.adrelid = rel.oid
  UNION ALL
  SELECT concat_ws(' ', 'k', k.oid, k.conrelid, quote_ident(k.conname), k.contype,
                   k.conkey::text, k.confrelid, k.confkey::text,
                   md5(coalesce(k.conbin::text, '')), k.xmin)
  FROM pg_constraint k JOIN rel ON k.conrelid = rel.oid
  UNION ALL
  SELECT concat_ws(' ', 'i', i.indexrelid, i.indrelid, i.indkey::text, i.indisunique,
                   i.indclass::text, md5(coalesce(i.indexprs::text, '')),
                   md5(coalesce(i.indpred::text, '')), i.xmin)
  FROM pg_index i JOIN rel ON i.indrelid = rel.oid
  UNION ALL
  SELECT concat_ws(' ', 't', t.oid, quote_ident(t.typname), t.typtype, t.xmin)
  FROM pg_type t JOIN ns ON t.typnamespace = ns.oid
  UNION ALL
  SELECT concat_ws(' ', 'e', e.oid, e.enumtypid, quote_literal(e.enumlabel), e.xmin)
  FROM pg_enum e JOIN pg_type t ON e.enumtypid = t.oid JOIN ns ON t.typnamespace = ns.oid
) rows
"""
_MYSQL_FINGERPRINT: tuple[str, ...] = (
    "select 'r', TABLE_NAME, TABLE_TYPE, null, null, null, null, null"
    " from information_schema.TABLES where TABLE_SCHEMA = database()",
    "select 'c', TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, COLUMN_TYPE, IS_NULLABLE,"
    " COLUMN_DEFAULT, concat_ws(' ', EXTRA, GENERATION_EXPRESSION)"
    " from information_schema.COLUMNS where TABLE_SCHEMA = database()",
    "select 's', TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX, COLUMN_NAME, NON_UNIQUE, SUB_PART,"
    " INDEX_TYPE from information_schema.STATISTICS where TABLE_SCHEMA = database()",
    "select 'k', TABLE_NAME, CONSTRAINT_NAME, CONSTRAINT_TYPE, null, null, null, null"
    " from information_schema.TABLE_CONSTRAINTS where TABLE_SCHEMA = database()",
    "select 'j', TABLE_NAME, CONSTRAINT_NAME, CHECK_CLAUSE, null, null, null, null"
    " from information_schema.CHECK_CONSTRAINTS where CONSTRAINT_SCHEMA = database()",
)


def _rows_digest(rows: list[Any]) -> str:
    digest = hashlib.sha256()
    for row in sorted(repr(tuple(row)) for row in rows):
        digest.update(row.encode() + b"\n")
    return digest.hexdigest()


def schema_fingerprint(conn: sa.Connection) -> str:
    """A value that changes with any DDL that could change :func:`reflect`'s answer,
    read in ``conn``'s transaction (so it describes what that transaction sees)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return str(conn.exec_driver_sql(_PG_FINGERPRINT).scalar())
    queries = _MYSQL_FINGERPRINT
    if dialect == "sqlite":
        queries = ("select type, name, tbl_name, sql from sqlite_master",)
    return _rows_digest([row for sql in queries for row in conn.exec_driver_sql(sql).all()])


class SchemaCache:
    """Reflections by (database identity, schema fingerprint), the ``size`` most
    recently used kept. ``identity`` is :func:`controller.db.connect.identity`: the
    URL as shown and a keyed hash telling credentials apart, never a password.
    Thread-safe: the operator reconciles on several threads."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[str, str, str], dict[str, TableSchema]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def reflect(self, conn: sa.Connection, identity: tuple[str, str]) -> DatabaseSchema:
        key = (*identity, schema_fingerprint(conn))
        with self._lock:
            tables = self._entries.get(key)
            if tables is not None:
                self._entries.move_to_end(key)
                self.hits += 1
        if tables is None:
            schema = reflect(conn)
            with self._lock:
                self.misses += 1
                self._entries[key] = dict(schema.tables)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
            return schema
        return DatabaseSchema(conn.dialect.name, server_version(conn), dict(tables))

    def entries(self) -> list[tuple[str, str, str]]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


SCHEMAS = SchemaCache()
