"""Reading a table's schema from an untrusted document, and checking it whole.

Snapshots (Git) and backup manifests (object stores) are written by people Ferry does
not trust. Their schemas become DDL, so a table is accepted only when every name is
usable, every type parses as an allow-listed type of its dialect
(:mod:`controller.engine.sqltypes`) and every default as a literal or a known
expression (:mod:`controller.engine.sqldefaults`). Checked when read, so a bad input is
refused before any connection is opened; the DDL renderer checks again.
"""

from __future__ import annotations

from typing import Any

from controller.engine.identifiers import check_name
from controller.engine.model import Column, Index, TableSchema, fields
from controller.engine.sqldefaults import parse_default
from controller.engine.sqltypes import DIALECTS, parse_type
from controller.errors import InvalidInput

MAX_COLUMNS = 4096
MAX_INDEXES = 1024


def _list(value: object, what: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidInput(f"{what}: not a list")
    if len(value) > limit:
        raise InvalidInput(f"{what}: more than {limit} entries")
    return value


def _names(value: object, what: str, columns: set[str], *, empty_ok: bool) -> tuple[str, ...]:
    names = _list(value, what, MAX_COLUMNS)
    if not names and not empty_ok:
        raise InvalidInput(f"{what}: no columns")
    for name in names:
        if not isinstance(name, str) or name not in columns:
            raise InvalidInput(f"{what}: names a column the table does not have")
    if len(set(names)) != len(names):
        raise InvalidInput(f"{what}: names a column twice")
    return tuple(names)


def _index(data: object, what: str, columns: set[str]) -> Index:
    data = fields(data, what, {"name", "columns", "unique"})
    unique = data.get("unique", False)
    if not isinstance(unique, bool):
        raise InvalidInput(f"{what}: unique is true or false")
    name = data.get("name")
    if not isinstance(name, str):
        raise InvalidInput(f"{what}: the name is not a string")
    return Index(name, _names(data.get("columns"), what, columns, empty_ok=False), unique)


def table_from_dict(data: object, dialect: str | None, *, spelling: bool = True) -> TableSchema:
    """The :class:`TableSchema` a document describes, checked whole (see module doc);
    ``spelling=False`` checks its structure only (a caller that first proves the document
    unedited checks the rest with :func:`check_table` after that)."""
    data = fields(data, "schema", {"name", "columns", "primaryKey", "uniques", "indexes"})
    name = check_name(data.get("name"), dialect, "table name")
    where = f"table {name[:64]!r}"
    raw = _list(data.get("columns"), f"{where}: columns", MAX_COLUMNS)
    if not raw:
        raise InvalidInput(f"{where}: no columns")
    try:
        columns = tuple(Column.from_dict(c) for c in raw)
    except InvalidInput as err:
        raise InvalidInput(f"{where}: {err}") from None
    names = {c.name for c in columns}
    if len(names) != len(columns):
        raise InvalidInput(f"{where}: two columns have the same name")
    table = TableSchema(
        name=name,
        columns=columns,
        primary_key=_names(
            data.get("primaryKey", []), f"{where}: primaryKey", names, empty_ok=True
        ),
        uniques=tuple(
            _index(u, f"{where}: unique", names)
            for u in _list(data.get("uniques", []), f"{where}: uniques", MAX_INDEXES)
        ),
        indexes=tuple(
            _index(i, f"{where}: index", names)
            for i in _list(data.get("indexes", []), f"{where}: indexes", MAX_INDEXES)
        ),
    )
    if spelling:
        check_table(table, dialect)
    return table


def check_table(table: TableSchema, dialect: str | None) -> None:
    """Every name, type and default of ``table`` is one Ferry can render on ``dialect``
    (None: on at least one supported dialect)."""
    if dialect is not None and dialect not in DIALECTS:
        raise InvalidInput(f"unsupported dialect (one of {', '.join(DIALECTS)})")
    where = f"table {table.name[:64]!r}"
    check_name(table.name, dialect, "table name")
    for col in table.columns:
        check_name(col.name, dialect, f"{where}: a column name")
        what = f"{where} column {col.name!r}"
        if col.type.native:
            _in_some_dialect(
                dialect, what, lambda d, w=what, c=col: parse_type(c.type.native, d, f"{w} type")
            )
        if col.default is not None:
            _in_some_dialect(
                dialect,
                what,
                lambda d, w=what, c=col: parse_default(
                    c.default or "", d, table=table.name, column=c.name, what=f"{w} default"
                ),
            )
    for ix in (*table.uniques, *table.indexes):
        check_name(ix.name, dialect, f"{where}: an index name")


def _in_some_dialect(dialect: str | None, what: str, parse: Any) -> None:
    if dialect is not None:
        parse(dialect)
        return
    first: InvalidInput | None = None
    for candidate in DIALECTS:
        try:
            parse(candidate)
            return
        except InvalidInput as err:
            first = first or err
    assert first is not None
    raise first
