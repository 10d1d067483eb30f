"""Pair NocoBase routes by their UI schema, not by generated ID.

``desktopRoutes`` (and ``mobileRoutes``) IDs are snowflakes that count seconds, so two
independent installations that mint a route in the same second mint the same ID: a
shared ID proves nothing between them. Pages and tabs carry a ``schemaUid``, unique
in an installation and the same on every copy of it: a source page or tab whose
``schemaUid`` a target page or tab holds is that route, and takes its ID; any other
keeps its own ID unless the target holds it, and then gets a fresh one
(:mod:`.id_allocation`, the workflows' rule).

Groups and links have no such key (no ``schemaUid``, or one NocoBase does not keep
unique), so they are matched by ID, as before. Where the target holds a group's or
link's ID for another route (another type, a page or tab, or another creation time;
promotions carry ``createdAt`` unchanged, so copies of one route share it), that is a
:class:`Collision`: listed with both titles and refused, never guessed. A route the
base of a three-way merge holds at that ID is the same route. Pure: sides are given as
plain rows, IDs as integers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from controller.engine.id_allocation import allocate, listed, loop_from

UNKEYED_TYPES = frozenset({"group", "link"})


@dataclass(frozen=True)
class Route:
    id: int
    type: str | None
    schema_uid: str | None
    parent: int | None = None
    title: str | None = None
    created: str | None = None  # canonical ``createdAt``; None where the table has none

    @property
    def keyed(self) -> bool:
        """Paired by ``schemaUid`` (a page or tab), not by ID (a group or link)."""
        return bool(self.schema_uid) and self.type not in UNKEYED_TYPES

    def describe(self) -> str:
        return f"{self.type or 'route'} {self.title!r}"


@dataclass(frozen=True)
class Routes:
    name: str  # "source", "target"
    table: str
    routes: Sequence[Route]


@dataclass(frozen=True)
class Collision:
    """A source group or link whose ID the target holds for another route."""

    table: str
    source: Route
    target: Route

    @property
    def same_type(self) -> bool:
        """Both are groups or links of one type: a three-way merge may take them for one
        row through ``onConflict``; anything else cannot be one row."""
        return not self.target.keyed and self.source.type == self.target.type

    def describe(self) -> str:
        return (
            f"{self.table} {self.source.id}: the source's {self.source.describe()} and the "
            f"target's {self.target.describe()} share the ID, and a {self.source.type or 'route'} "
            "has no key to tell whether they are one route (NocoBase mints IDs per second)"
        )


@dataclass
class Problems:
    keys: list[str] = field(default_factory=list)  # routes that cannot be told apart
    tree: list[str] = field(default_factory=list)  # missing parents, loops


@dataclass
class RoutePairing:
    ids: dict[int, int] = field(default_factory=dict)  # source ID → target ID (differ)
    paired: int = 0  # source routes paired by schemaUid
    assigned: int = 0  # fresh IDs given
    collisions: list[Collision] = field(default_factory=list)


def _keys(side: Routes) -> list[str]:
    where = f"in the {side.name}"
    by_id: dict[int, int] = defaultdict(int)
    by_uid: dict[str, list[int]] = defaultdict(list)
    for r in side.routes:
        by_id[r.id] += 1
        if r.keyed and r.schema_uid:
            by_uid[r.schema_uid].append(r.id)
    out = [f"{side.table} ID {i} {where} is held by {n} rows" for i, n in by_id.items() if n > 1]
    out += [
        f"{side.table} schemaUid {uid!r} {where} is held by several routes: {listed(ids)}"
        for uid, ids in sorted(by_uid.items())
        if len(ids) > 1
    ]
    return out


def _tree(side: Routes) -> list[str]:
    where = f"in the {side.name}"
    parents = {r.id: r.parent for r in side.routes}
    out = [
        f"{side.table} {r.id} {where}: its parent {r.parent} is not there"
        for r in side.routes
        if r.parent is not None and r.parent not in parents
    ]
    loops: set[frozenset[int]] = set()
    for start in sorted(parents):
        loop = loop_from(parents, start)
        if loop is not None and frozenset(loop) not in loops:
            loops.add(frozenset(loop))
            chain = " → ".join(map(str, loop))
            out.append(f"{side.table} {where}: parent links loop: {chain} (a cycle)")
    return out


def problems(side: Routes) -> Problems:
    """Routes of one side that cannot be paired (an ID or a page's ``schemaUid`` held
    twice) and a tree that is not one (a parent not there, a loop)."""
    return Problems(_keys(side), _tree(side))


def _same(source: Route, target: Route) -> bool:
    if target.keyed or source.type != target.type:
        return False
    return source.created is None or target.created is None or source.created == target.created


def pair(source: Routes, target: Routes, same_by_base: Collection[int] = ()) -> RoutePairing:
    """Pair the source's routes with the target's (see the module). ``same_by_base``:
    IDs the base of a three-way merge holds (routes this source promoted there)."""
    by_uid = {r.schema_uid: r.id for r in target.routes if r.keyed}
    held = {r.id: r for r in target.routes}
    found = RoutePairing()
    paired: dict[int, int] = {}
    for r in source.routes:
        if r.keyed and r.schema_uid in by_uid:
            paired[r.id] = by_uid[r.schema_uid]
        elif not r.keyed:
            paired[r.id] = r.id  # matched by ID, as before
            other = held.get(r.id)
            if other is not None and r.id not in same_by_base and not _same(r, other):
                found.collisions.append(Collision(source.table, r, other))
    found.paired = sum(1 for r in source.routes if r.keyed and r.id in paired)
    found.ids, found.assigned = allocate((r.id for r in source.routes), paired, held)
    return found


def mapped(side: Routes, ids: Mapping[int, int]) -> Routes:
    """``side`` with its IDs and parent links mapped."""
    return Routes(
        side.name,
        side.table,
        tuple(
            Route(
                ids.get(r.id, r.id),
                r.type,
                r.schema_uid,
                None if r.parent is None else ids.get(r.parent, r.parent),
                r.title,
                r.created,
            )
            for r in side.routes
        ),
    )
