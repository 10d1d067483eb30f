"""Read what a database says about the NocoBase that owns it, for the pre-checks.

The evaluation is pure (:mod:`controller.engine.nocobase_checks`); this module only
reads the few rows it needs from either side, which may be a live database, a backup
or a Git snapshot. A table or column a side does not have leaves that fact unknown and
its check is not made: a snapshot without ``applicationVersion`` is not refused.
"""

from __future__ import annotations

import json

from controller.engine import nocobase_checks
from controller.engine.model import DatabaseSchema
from controller.engine.nocobase_checks import Installation, Naming
from controller.engine.source import SnapshotSource


def _rows(
    source: SnapshotSource, schema: DatabaseSchema, table: str, columns: list[str]
) -> list[tuple[object, ...]] | None:
    found = schema.table(table)
    if found is None or any(found.column(c) is None for c in columns):
        return None
    return [row for batch in source.batches(table, columns) for row in batch]


def _enabled(value: object) -> bool:
    # Booleans come back as bool (PostgreSQL), 0/1 (MariaDB, SQLite) or text (a snapshot).
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "t", "yes")
    return bool(value)


def _options(value: object) -> dict[str, object]:
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _collection_schemas(
    source: SnapshotSource, schema: DatabaseSchema, naming: Naming
) -> frozenset[str]:
    """Schemas recorded in ``collections.options.schema`` (NocoBase sets them on
    PostgreSQL only; elsewhere it ignores them)."""
    if schema.dialect != "postgresql":
        return frozenset()
    rows = _rows(source, schema, naming.table("collections"), ["options"]) or []
    found = (_options(row[0]).get("schema") for row in rows)
    return frozenset(s for s in found if isinstance(s, str) and s)


def read_installation(source: SnapshotSource) -> Installation:
    schema = source.schema()
    naming = nocobase_checks.detect_naming(schema.tables)
    if naming is None:
        return Installation()
    versions = _rows(source, schema, naming.table("applicationVersion"), ["value"]) or []
    values = {str(r[0]) for r in versions if r[0] not in (None, "")}
    plugins = _rows(source, schema, naming.table("applicationPlugins"), ["name", "enabled"])
    return Installation(
        naming=naming,
        collection_schemas=_collection_schemas(source, schema, naming),
        # NocoBase keeps one row; several values would make any comparison a guess.
        version=next(iter(values)) if len(values) == 1 else None,
        plugins=None if plugins is None else {str(n): _enabled(e) for n, e in plugins},
    )


def check(source: SnapshotSource, target: SnapshotSource, *, strict: bool) -> list[str]:
    """Refuse (CheckFailed) what NocoBase itself would not run; return the warnings."""
    result = nocobase_checks.precheck(
        read_installation(source), read_installation(target), strict=strict
    )
    return nocobase_checks.require(result)
