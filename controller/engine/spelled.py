"""Columns of NocoBase tables in either naming style, and IDs read from them.

NocoBase spells its columns in camelCase, or in snake_case with ``DB_UNDERSCORED``;
the pairings by natural key (workflows, routes) read the same columns either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from controller.engine.catalog import underscored
from controller.engine.model import DatabaseSchema, TableSchema
from controller.errors import CheckFailed


def column(table: TableSchema, name: str) -> str | None:
    """``name`` as ``table`` spells it, or None when it has no such column."""
    for spelled in (name, underscored(name)):
        if table.column(spelled) is not None:
            return spelled
    return None


def columns(schema: DatabaseSchema, table: str, names: Sequence[str]) -> list[str] | None:
    """Every one of ``names`` as ``table`` spells it, or None when one is missing."""
    found = schema.table(table)
    if found is None:
        return None
    spelled = [column(found, n) for n in names]
    return None if None in spelled else [c for c in spelled if c is not None]


def int_id(value: Any, table: str) -> int | None:
    """An ID as an integer; a value that is not one is refused, named (a hostile or
    corrupted row must not end the plan with a traceback)."""
    if value is None:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise CheckFailed(
            f"{table}: {str(value)[:40]!r} is not an integer ID", reason="BadKey"
        ) from None
