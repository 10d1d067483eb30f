"""NocoBase routes paired by UI schema between two installations, not by generated ID.

The pairing is pure (``engine.route_pairing``); the remapping reads both sides through
``SnapshotSource`` and adds ID maps and translations (``engine.route_mapping``), tested
here with sources held in memory. IDs are drawn from a small range, so the two sides
share many of them: what two installations minting routes in one second do.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.engine.idmapping import IdMapping
from controller.engine.model import Column, ColumnType, DatabaseSchema, Kind, TableSchema
from controller.engine.references import NOCOBASE_PATHS, NOCOBASE_REFERENCES
from controller.engine.route_mapping import map_routes
from controller.engine.route_pairing import Route, Routes, mapped, pair, problems
from controller.engine.source import Batch
from controller.errors import CheckFailed

TABLE = "desktopRoutes"

# --- a generated installation: groups, links, pages with tabs -------------------------


@st.composite
def installations(draw: st.DrawFn, name: str, prefix: str) -> Routes:
    """A route tree: top-level groups and pages, pages and links inside groups, tabs
    under pages; every page and tab has a schemaUid of its own installation."""
    ids = iter(draw(st.permutations(range(1, 60))))
    routes: list[Route] = []

    def add(kind: str, parent: int | None) -> int:
        rid = next(ids)
        uid = f"{prefix}{rid}" if kind in ("page", "tabs") else None
        routes.append(Route(rid, kind, uid, parent, f"{prefix} {kind} {rid}", f"{prefix}{rid}"))
        return rid

    def page(parent: int | None) -> None:
        pid = add("page", parent)
        for _ in range(draw(st.integers(0, 2))):
            add("tabs", pid)

    for _ in range(draw(st.integers(0, 3))):
        gid = add("group", None)
        for kind in draw(st.lists(st.sampled_from(["page", "link"]), max_size=3)):
            page(gid) if kind == "page" else add("link", gid)
    for _ in range(draw(st.integers(0, 3))):
        page(None)
    return Routes(name, TABLE, tuple(routes))


def _identity(side: Routes) -> list[tuple[Any, ...]]:
    """What each route is, with its parent's identity: the tree, IDs aside."""
    by_id = {r.id: r for r in side.routes}

    def who(r: Route | None) -> tuple[Any, ...] | None:
        return None if r is None else (r.type, r.schema_uid, r.title)

    return sorted(
        (who(r), who(by_id.get(r.parent) if r.parent is not None else None)) for r in side.routes
    )


@given(installations("source", "b"), installations("target", "a"))
def test_independent_installations_keep_every_route_of_both_sides_once(
    source: Routes, target: Routes
) -> None:
    held = {r.id: r for r in target.routes}
    pairing = pair(source, target)
    assert pairing.paired == 0  # no schemaUid is shared: no route is the same
    # a group or link whose ID the target holds (for any route of its own) is refused
    colliding = {r.id for r in source.routes if not r.keyed and r.id in held}
    assert {c.source.id for c in pairing.collisions} == colliding
    for c in pairing.collisions:
        assert c.target is held[c.source.id] and c.table == TABLE
        assert repr(c.source.title) in c.describe() and repr(c.target.title) in c.describe()
    moved = mapped(source, pairing.ids)
    assert _identity(moved) == _identity(source)  # the tree arrives intact
    assert problems(moved).tree == []
    # every page and tab lands beside the target's routes, none on another's ID
    keyed = {r.id for r in moved.routes if r.keyed}
    assert not keyed & set(held)
    assert pairing.assigned == len({r.id for r in source.routes if r.keyed} & set(held))
    both = [*target.routes, *(r for r in moved.routes if r.id not in colliding)]
    assert len({r.id for r in both}) == len(both)
    assert problems(Routes("merge", TABLE, tuple(both))) == problems(Routes("x", TABLE, ()))


@given(installations("source", "a"), st.integers(1000, 2000), st.data())
def test_pages_renumbered_in_the_target_pair_by_schema_uid(
    source: Routes, shift: int, data: st.DataObject
) -> None:
    """The target is a copy whose pages and tabs carry other IDs (an earlier merge gave
    them fresh ones, or the target minted its own): each pairs with its own again."""
    moved_ids = {r.id: r.id + shift for r in source.routes if r.keyed}
    target = mapped(replace(source, name="target"), moved_ids)
    pairing = pair(source, target)
    assert pairing.paired == len(moved_ids) and pairing.collisions == []
    assert pairing.ids == moved_ids and pairing.assigned == 0
    assert sorted(mapped(source, pairing.ids).routes, key=lambda r: r.id) == sorted(
        target.routes, key=lambda r: r.id
    )


@given(installations("source", "a"))
def test_copies_of_one_installation_pair_every_route_under_its_own_id(source: Routes) -> None:
    pairing = pair(source, replace(source, name="target"))
    assert (pairing.ids, pairing.assigned, pairing.collisions) == ({}, 0, [])
    assert pairing.paired == sum(r.keyed for r in source.routes)


def test_a_group_edited_on_one_side_is_the_same_route_by_creation_time() -> None:
    group = Route(5, "group", None, None, "Sales", "t:1")
    renamed = replace(group, title="Sales & CRM")
    assert pair(Routes("s", TABLE, (renamed,)), Routes("t", TABLE, (group,))).collisions == []


def test_groups_and_links_sharing_an_id_with_another_route_are_collisions() -> None:
    source = (Route(5, "group", None, None, "B sales", "t:2"), Route(6, "link", None, 5, "B"))
    cases = [
        (Route(5, "group", None, None, "A ops", "t:1"), True),  # another creation time
        (Route(5, "link", None, None, "A docs", "t:2"), False),  # another type
        (Route(5, "page", "a_page", None, "A page", "t:2"), False),  # a page
    ]
    for other, same_type in cases:
        found = pair(Routes("s", TABLE, source[:1]), Routes("t", TABLE, (other,)))
        assert [(c.source, c.target, c.same_type) for c in found.collisions] == [
            (source[0], other, same_type)
        ]
        assert "desktopRoutes 5: the source's group 'B sales' and the target's" in (
            found.collisions[0].describe()
        )
    # the base of a three-way merge says it is the route this source promoted there
    base_says = pair(Routes("s", TABLE, source[:1]), Routes("t", TABLE, (cases[0][0],)), {5})
    assert base_says.collisions == []


def test_a_page_whose_id_the_target_holds_gets_a_fresh_one_and_its_tabs_follow() -> None:
    source = Routes(
        "s",
        TABLE,
        (Route(7, "page", "b_page", None, "B"), Route(8, "tabs", "b_tab", 7, "t")),
    )
    target = Routes("t", TABLE, (Route(7, "page", "a_page", None, "A"), Route(3, "group", None)))
    found = pair(source, target)
    assert (found.ids, found.assigned, found.paired) == ({7: 9}, 1, 0)
    assert [(r.id, r.parent) for r in mapped(source, found.ids).routes] == [(9, None), (8, 9)]


@pytest.mark.parametrize(
    ("routes", "keys", "tree"),
    [
        (
            [Route(1, "page", "p", None), Route(2, "page", "p", None)],
            ["desktopRoutes schemaUid 'p' in the source is held by several routes: 1, 2"],
            [],
        ),
        (
            [Route(1, "group", None, None), Route(1, "link", None, None)],
            ["desktopRoutes ID 1 in the source is held by 2 rows"],
            [],
        ),
        (
            [Route(1, "group", None, 3), Route(2, "page", "p", 9)],
            [],
            [
                "desktopRoutes 1 in the source: its parent 3 is not there",
                "desktopRoutes 2 in the source: its parent 9 is not there",
            ],
        ),
        (
            [Route(1, "group", None, 2), Route(2, "group", None, 1), Route(3, "tabs", "t", 3)],
            [],
            [
                "desktopRoutes in the source: parent links loop: 1 → 2 → 1 (a cycle)",
                "desktopRoutes in the source: parent links loop: 3 → 3 (a cycle)",
            ],
        ),
    ],
    ids=["duplicate-schemaUid", "duplicate-id", "missing-parent", "cycle"],
)
def test_hostile_sides_are_named(routes: list[Route], keys: list[str], tree: list[str]) -> None:
    found = problems(Routes("source", TABLE, tuple(routes)))
    assert (found.keys, found.tree) == (keys, tree)


def test_groups_and_links_with_a_schema_uid_are_still_not_keyed() -> None:
    """NocoBase gives groups a schemaUid it does not keep unique: never a key."""
    group = Route(1, "group", "g", None)
    assert not group.keyed and Route(2, "page", "p").keyed and not Route(3, "page", None).keyed
    assert problems(Routes("s", TABLE, (group, replace(group, id=2)))).keys == []


# --- the remapping: every column holding a route's ID follows ------------------------

INT, TEXT = ColumnType(Kind.INTEGER, "bigint"), ColumnType(Kind.TEXT, "text")
COLS = {
    TABLE: ("id", "type", "schemaUid", "parentId", "title", "createdAt"),
    "rolesDesktopRoutes": ("roleName", "desktopRouteId"),
    "desktopRoutesUiLayouts": ("id", "desktopRouteId"),
    "main_desktopRoutes_path": ("nodePk", "rootPk", "path"),
}


def _schema(id_type: ColumnType = INT) -> DatabaseSchema:
    def table(name: str, columns: Sequence[str], pk: tuple[str, ...]) -> TableSchema:
        types = {"type": TEXT, "schemaUid": TEXT, "title": TEXT, "createdAt": TEXT}
        types |= {"roleName": TEXT, "path": TEXT}
        cols = tuple(Column(c, types.get(c, INT)) for c in columns)
        if name == TABLE:
            cols = (Column("id", id_type), *cols[1:])
        return TableSchema(name, cols, pk)

    pks = {TABLE: ("id",), "desktopRoutesUiLayouts": ("id",)}
    pks |= {"rolesDesktopRoutes": ("roleName", "desktopRouteId"), "main_desktopRoutes_path": ()}
    return DatabaseSchema("postgresql", "15", {t: table(t, c, pks[t]) for t, c in COLS.items()})


@dataclass
class Memory:
    rows: dict[str, list[tuple[Any, ...]]]
    label: str = "memory"
    id_type: ColumnType = INT

    def schema(self) -> DatabaseSchema:
        return _schema(self.id_type)

    def batches(self, table: str, columns: Sequence[str]) -> Iterator[Batch]:
        at = [COLS[table].index(c) for c in columns]
        yield [tuple(row[i] for i in at) for row in self.rows.get(table, [])]


def _links() -> tuple[dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    def by_table(known: Any) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for (table, column), parent in known.items():
            if table in COLS:
                out.setdefault(table, {})[column] = parent
        return out

    return by_table(NOCOBASE_REFERENCES), by_table(NOCOBASE_PATHS)


def _translated(source: Memory, ids: IdMapping, table: str) -> list[tuple[Any, ...]]:
    return [row for batch in ids.rows(source, table, COLS[table]) for row in batch]


def test_every_column_holding_a_route_id_follows_the_map() -> None:
    """Team B's page 10 (tab 11) and group 12 carry IDs team A's page and tab hold; B's
    page pairs with nothing, A's shared page (schemaUid 'shared') has ID 20 in A, 30 in B."""
    source = Memory(
        {
            TABLE: [
                (10, "page", "b_page", None, "B page", "t:b1"),
                (11, "tabs", "b_tab", 10, "tab", "t:b2"),
                (30, "page", "shared", None, "Shared", "t:s"),
                (31, "tabs", "shared_tab", 30, "tab", "t:s2"),
            ],
            "rolesDesktopRoutes": [("member", 10), ("member", 11), ("member", 30)],
            "desktopRoutesUiLayouts": [(1, 11)],
            "main_desktopRoutes_path": [(10, 10, "/10"), (11, 10, "/10/11"), (31, 30, "/30/31")],
        }
    )
    target = Memory(
        {
            TABLE: [
                (10, "page", "a_page", None, "A page", "t:a1"),
                (11, "tabs", "a_tab", 10, "tab", "t:a2"),
                (20, "page", "shared", None, "Shared", "t:s"),
                (21, "tabs", "shared_tab", 20, "tab", "t:s2"),
            ]
        }
    )
    ids, moved = IdMapping(), sorted(COLS)
    found = map_routes((source, target), moved, ids, _links())
    assert (found.tables, found.problems, found.collisions) == ([TABLE], [], [])
    id_map = ids.maps[TABLE]
    assert dict(id_map.ids) == {"i:10": 32, "i:11": 33, "i:30": 20, "i:31": 21}
    assert (id_map.matched, id_map.assigned) == (2, 2)
    assert [r[:4] for r in _translated(source, ids, TABLE)] == [
        (32, "page", "b_page", None),
        (33, "tabs", "b_tab", 32),
        (20, "page", "shared", None),
        (21, "tabs", "shared_tab", 20),
    ]
    assert _translated(source, ids, "rolesDesktopRoutes") == [
        ("member", 32),
        ("member", 33),
        ("member", 20),
    ]
    assert _translated(source, ids, "desktopRoutesUiLayouts") == [(1, 33)]
    assert _translated(source, ids, "main_desktopRoutes_path") == [
        (32, 32, "/32"),
        (33, 32, "/32/33"),
        (21, 20, "/20/21"),
    ]


def test_a_source_that_cannot_be_paired_adds_no_map_and_says_why() -> None:
    dup = Memory({TABLE: [(1, "page", "p", None, "a", "t"), (2, "page", "p", None, "b", "t")]})
    ids = IdMapping()
    found = map_routes((dup, Memory({TABLE: []})), sorted(COLS), ids, _links())
    assert found.keys == [
        "desktopRoutes schemaUid 'p' in the source is held by several routes: 1, 2"
    ]
    assert found.unpaired == {TABLE} and ids.maps == {} and ids.translations == {}


def test_hostile_ids_are_refused_named() -> None:
    bad = Memory({TABLE: [("1; DROP TABLE x", "page", "p", None, "a", "t")]})
    with pytest.raises(CheckFailed) as err:
        map_routes((bad, Memory({TABLE: []})), sorted(COLS), IdMapping(), _links())
    assert err.value.problems == ["desktopRoutes: '1; DROP TABLE x' is not an integer ID"]


def test_routes_without_integer_ids_are_not_paired_and_the_plan_says_so() -> None:
    found = map_routes((Memory({}, id_type=TEXT), Memory({})), sorted(COLS), IdMapping(), _links())
    assert found.warnings == ["desktopRoutes: not paired by schemaUid, it has no integer ID"]


def test_nothing_is_mapped_when_routes_do_not_move_or_nothing_changes() -> None:
    same = Memory({TABLE: [(1, "page", "p", None, "a", "t")]})
    ids = IdMapping()
    assert map_routes((same, same), ["rolesDesktopRoutes"], ids, _links()).tables == []
    found = map_routes((same, same), sorted(COLS), ids, _links())
    assert found.tables == [TABLE] and ids.maps == {} and ids.translations == {}
