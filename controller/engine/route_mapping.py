"""Remap the IDs of NocoBase routes paired by UI schema (:mod:`.route_pairing`).

When a route table (``desktopRoutes``, ``mobileRoutes``) moves, each source page or tab
takes the ID of the target route with its ``schemaUid``, or a fresh one where its own
is held by another target route; every column that holds a route's ID follows: the
route's ``parentId``, and every reference the profile (or the rules) know to that
table (``desktopRoutesUiLayouts``, ``rolesDesktopRoutes``, ``main_desktopRoutes_path``'s
``nodePk``/``rootPk`` and the IDs inside its ``path``). The map is an :class:`IdMap`,
so it is in the plan's digest. Source rows are read as already translated (a UI schema
paired by position renames their ``schemaUid`` first).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from controller.engine import spelled
from controller.engine.beside import at_once
from controller.engine.catalog import underscored
from controller.engine.idmap import IdMap
from controller.engine.idmapping import IdMapping, PathMap
from controller.engine.model import INTEGER_KINDS, DatabaseSchema
from controller.engine.references import References
from controller.engine.route_pairing import Collision, Route, Routes, pair, problems
from controller.engine.source import SnapshotSource
from controller.engine.values import canonical

ROUTE_TABLES = ("desktopRoutes", "mobileRoutes")
COLUMNS = ("id", "type", "schemaUid", "parentId", "title")
CREATED = "createdAt"


@dataclass
class RouteMapping:
    """What pairing routes gave: the tables paired, warnings, refusals, collisions."""

    tables: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # routes that cannot be told apart
    tree: list[str] = field(default_factory=list)  # missing parents, loops
    collisions: list[Collision] = field(default_factory=list)
    unpaired: set[str] = field(default_factory=set)  # tables refused for keys or tree

    @property
    def problems(self) -> list[str]:
        return [*self.keys, *self.tree]


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def routes_of(table: str, rows: Iterable[Sequence[Any]], created_type: Any = None) -> list[Route]:
    """Rows of (id, type, schemaUid, parentId, title[, createdAt]) as routes."""
    out = []
    for row in rows:
        created = canonical(row[5], created_type) if created_type is not None else None
        route_id = spelled.int_id(row[0], table) or 0
        parent = spelled.int_id(row[3], table)
        out.append(Route(route_id, _text(row[1]), _text(row[2]), parent, _text(row[4]), created))
    return out


def _read(rows: Iterable[Sequence[Any]], table: str, name: str, created_type: Any) -> Routes:
    return Routes(name, table, tuple(routes_of(table, rows, created_type)))


def _unpairable(schemas: tuple[DatabaseSchema, DatabaseSchema], table: str) -> str | None:
    for schema in schemas:
        if spelled.columns(schema, table, COLUMNS) is None:
            return f"it lacks one of the columns {', '.join(COLUMNS)}"
        pk = schema.tables[table].primary_key
        column = schema.tables[table].column(pk[0]) if len(pk) == 1 else None
        if column is None or column.type.kind not in INTEGER_KINDS:
            return "it has no integer ID"
    return None


def _sides(
    sides: tuple[SnapshotSource, SnapshotSource], table: str, ids: IdMapping
) -> tuple[Routes, Routes]:
    """Both sides' routes (the source's as translated so far)."""
    src = sides[0].schema()
    names = spelled.columns(src, table, COLUMNS) or []
    created = spelled.column(src.tables[table], CREATED)
    own = sides[1].schema().table(table)
    created_type = None
    if created is not None and own is not None and own.column(created) is not None:
        names.append(created)
        created_type = src.tables[table].column(created).type  # type: ignore[union-attr]
    source = (row for batch in ids.rows(sides[0], table, names) for row in batch)
    target = (row for batch in sides[1].batches(table, names) for row in batch)
    theirs, ours = at_once(  # the target read beside the source
        partial(_read, target, table, "target", created_type),
        partial(_read, source, table, "source", created_type),
    )
    return ours, theirs


def _follow(
    ids: IdMapping,
    schema: DatabaseSchema,
    table: str,
    id_map: IdMap,
    links: tuple[Collection[str], References, References],
) -> None:
    """Every moved column that holds one of ``table``'s IDs follows ``id_map``."""
    moved, references, paths = links
    pk = schema.tables[table].primary_key[0]
    parent = spelled.column(schema.tables[table], "parentId")
    ids.translate(table, {pk: id_map, **({parent: id_map} if parent else {})})
    for kind, found in ((IdMap, references), (PathMap, paths)):
        for other, columns in found.items():
            wanted = [c for c, p in columns.items() if p == table]
            if other in moved and other != table and wanted:
                made = kind(table, id_map.pk_type, id_map.ids, id_map.matched, id_map.assigned)
                ids.translate(other, dict.fromkeys(wanted, made))


def _pair_one(
    sides: tuple[SnapshotSource, SnapshotSource],
    table: str,
    ids: IdMapping,
    same_by_base: Collection[int],
    found: RouteMapping,
) -> IdMap | None:
    source, target = _sides(sides, table, ids)
    checked = [problems(source), problems(target)]
    found.keys += checked[0].keys + checked[1].keys
    found.tree += checked[0].tree
    if checked[0].keys or checked[1].keys or checked[0].tree:
        found.unpaired.add(table)
        return None
    pairing = pair(source, target, same_by_base)
    found.collisions += pairing.collisions
    schema = sides[0].schema().tables[table]
    pk_type = schema.column(schema.primary_key[0]).type  # type: ignore[union-attr]
    mapped = {canonical(s, pk_type): t for s, t in sorted(pairing.ids.items())}
    matched = len(mapped) - pairing.assigned
    return IdMap(table, pk_type, mapped, matched, pairing.assigned)


def map_routes(
    sides: tuple[SnapshotSource, SnapshotSource],
    moved: Sequence[str],
    ids: IdMapping,
    links: tuple[References, References],
    same_by_base: Mapping[str, Collection[int]] | None = None,
) -> RouteMapping:
    """Pair every moved route table's routes by UI schema and add their ID maps to
    ``ids``; ``links``: the references and the path columns to follow."""
    found = RouteMapping()
    schemas = sides[0].schema(), sides[1].schema()
    for name in ROUTE_TABLES:
        table = next((t for t in (name, underscored(name)) if t in moved), None)
        if table is None or table in ids.maps or schemas[1].table(table) is None:
            continue  # not moved, keyed by the rules, or new in the target
        why = _unpairable(schemas, table)
        if why is not None:
            found.warnings.append(f"{table}: not paired by schemaUid, {why}")
            continue
        id_map = _pair_one(sides, table, ids, (same_by_base or {}).get(table, ()), found)
        if id_map is None:
            continue
        found.tables.append(table)
        if id_map.ids:  # (an empty map would only keep the tables from hashing in place)
            ids.maps[table] = id_map
            _follow(ids, schemas[0], table, id_map, (moved, *links))
    return found
