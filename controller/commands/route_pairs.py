"""Routes paired by UI schema on every NocoBase promotion (:mod:`controller.engine.route_mapping`):
what planning refuses, warns about, and hands to a three-way merge.

Pages and tabs pair by ``schemaUid``; groups and links stay matched by ID, and one whose
ID the target holds for another route is a collision: refused by ``upsert`` (naming
both routes), a conflict in a three-way merge that ``onConflict`` resolves (both are
then taken for one row) when both are groups or links of one type, refused otherwise
(a group is never a page). A one-way ``overwrite`` replaces the target's routes by the
source's anyway: it pairs where it can and matches by ID where it cannot.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from controller.api.rules import Rule
from controller.engine import checks, spelled
from controller.engine.catalog import underscored
from controller.engine.idmapping import IdMapping
from controller.engine.merge3 import Conflict, Rows
from controller.engine.model import DatabaseSchema
from controller.engine.plan import MergeInfo
from controller.engine.references import References
from controller.engine.route_mapping import COLUMNS, ROUTE_TABLES, map_routes, routes_of
from controller.engine.route_pairing import Collision, Routes, problems
from controller.engine.rules import Resolved
from controller.engine.source import SnapshotSource
from controller.engine.values import canonical


def base_ids(tables: Mapping[str, Rows] | None) -> dict[str, set[int]]:
    """Per table, the integer IDs the base holds rows under (a one-column key)."""
    out: dict[str, set[int]] = {}
    for table, rows in (tables or {}).items():
        for key in rows:
            body = key[0].partition(":")[2] if len(key) == 1 else ""
            if body.lstrip("-").isdigit():
                out.setdefault(table, set()).add(int(body))
    return out


def pair_routes(
    sides: tuple[SnapshotSource, SnapshotSource],
    moved: Sequence[str],
    resolved: Mapping[str, Resolved],
    ids: IdMapping,
    links: tuple[References, References],
    base: Mapping[str, Collection[int]] | None,
) -> tuple[list[Collision], list[str]]:
    """Pair the routes (their IDs remapped in ``ids``); ``base``: a three-way merge's
    base IDs (None: not a three-way merge). The collisions a three-way merge makes
    conflicts of, and the plan's warnings; refused where nothing may resolve it."""
    found = map_routes(sides, moved, ids, links, base)
    overwrite = {t for t in resolved if resolved[t].rule is Rule.OVERWRITE}
    one_way = base is None
    if found.problems and one_way and not (found.unpaired - overwrite):
        more = f" (and {len(found.problems) - 1} more)" if len(found.problems) > 1 else ""
        why = f"not paired by schemaUid, matched by ID as overwrite allows: {found.problems[0]}"
        return [], [*found.warnings, f"{why}{more}"]
    checks.require(found.keys, reason="BadKey")
    checks.require(found.tree, reason="BrokenTree")
    refused = [
        c.describe()
        for c in found.collisions
        if (c.table not in overwrite if one_way else not c.same_type)
    ]
    checks.require(refused, reason="IdConflict")
    return ([] if one_way else found.collisions), found.warnings


def route_conflicts(
    infos: dict[str, MergeInfo], collisions: Sequence[Collision], schema: DatabaseSchema
) -> None:
    """Each collision of a three-way merge as a conflict on its row's ID, resolved by
    the table's ``onConflict`` (both are then one row, merged as the merge decided)."""
    for c in collisions:
        info = infos.get(c.table)
        table = schema.table(c.table)
        if info is None or table is None:
            continue
        pk = table.column(table.primary_key[0])
        assert pk is not None
        key = (canonical(c.source.id, pk.type),)
        conflict = Conflict(
            c.table,
            key,
            pk.name,
            "(absent)",
            _shown(c.source.describe(), c.source.created),
            _shown(c.target.describe(), c.target.created),
            info.on_conflict,
        )
        infos[c.table] = replace(info, conflicts=(*info.conflicts, conflict))


def _shown(what: str, created: str | None) -> str:
    return what if created is None else f"{what} created {created.partition(':')[2]}"


def merged_route_problems(
    rows: Mapping[str, list[tuple[Any, ...]]],
    sides: Mapping[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]],
    schema: DatabaseSchema,
) -> list[str]:
    """What a three-way merge's routes (``rows``, in the source's column order) would
    break that neither side had broken: a route whose parent the merge drops (a page
    one team added under a group the other deleted), a loop of parents."""
    out: list[str] = []
    for name in ROUTE_TABLES:
        table = next((t for t in (name, underscored(name)) if t in rows and t in sides), None)
        names = spelled.columns(schema, table, COLUMNS) if table is not None else None
        if table is None or names is None:
            continue
        at = [schema.tables[table].column_names.index(c) for c in names]
        before = {p for side in sides[table] for p in _tree(table, at, side)}
        out += [p for p in _tree(table, at, rows[table]) if p not in before]
    return out


def _tree(table: str, at: Sequence[int], held: list[tuple[Any, ...]]) -> list[str]:
    """The tree problems of one side's (or the merge's) route rows."""
    found = routes_of(table, ([row[i] for i in at] for row in held))
    return problems(Routes("merge", table, tuple(found))).tree
