"""Routes of two installations promoted into one, on every dialect, with the shipped
merged-release rules (``upsert``) and with ``merge: threeWay``: NocoBase mints route IDs
per second, so team B's page and tab hold the IDs of the pre-release's (team A's). Pages
and tabs pair by ``schemaUid``; groups that share an ID are refused, never merged blind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from controller.api.rules import Merge, OnConflict, Rule, RulesSpec, TableRule
from controller.backups.store import FilesystemStore
from controller.cli.inputs import load_rules
from controller.commands.backup import create_backup
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions
from controller.errors import CheckFailed
from tests.db.dbhelpers import MERGED_RELEASE, dump, execute, merged_release, q, rows
from tests.fixtures import nocobase_shape as shape

MakeDb = Callable[..., str]
T_A, T_B = "2026-11-01 10:00:00", "2026-11-01 10:00:01"  # two apps, each its own time


def _tables(dialect: str, url: str) -> None:
    """NocoBase's tables that hold route IDs (beside ``desktopRoutes.parentId``)."""
    node, root, route = (q(dialect, c) for c in ("nodePk", "rootPk", "desktopRouteId"))
    execute(
        url,
        f"create table {q(dialect, 'rolesDesktopRoutes')} ({q(dialect, 'roleName')} "
        f"varchar(255) not null, {route} bigint not null, "
        f"primary key ({q(dialect, 'roleName')}, {route}))",
        f"create table {q(dialect, 'main_desktopRoutes_path')} ({node} bigint, "
        f"path varchar(1024), {root} bigint)",
    )


def _route(
    dialect: str, url: str, route: tuple[int, int | None, str, str, str | None], t: str
) -> None:
    """A route (id, parent, type, title, schemaUid), its role row and its path row."""
    id_, parent, kind, title, uid = route
    cols = ("id", "parentId", "type", "title", "schemaUid", "createdAt", "updatedAt")
    values = [str(id_), "null" if parent is None else str(parent), f"'{kind}'", f"'{title}'"]
    values += ["null" if uid is None else f"'{uid}'", f"'{t}'", f"'{t}'"]
    path = f"/{parent}/{id_}" if parent is not None else f"/{id_}"
    role_cols = ", ".join(q(dialect, c) for c in ("roleName", "desktopRouteId"))
    path_cols = ", ".join(q(dialect, c) for c in ("nodePk", "path", "rootPk"))
    execute(
        url,
        f"insert into {q(dialect, 'desktopRoutes')} ({', '.join(q(dialect, c) for c in cols)}) "
        f"values ({', '.join(values)})",
        f"insert into {q(dialect, 'rolesDesktopRoutes')} ({role_cols}) values ('member', {id_})",
        f"insert into {q(dialect, 'main_desktopRoutes_path')} ({path_cols}) "
        f"values ({id_}, '{path}', {parent if parent is not None else id_})",
    )


def _sides(dialect: str, make_database: MakeDb) -> tuple[str, str]:
    team, pre = make_database(dialect, "teamb"), make_database(dialect, "pre")
    for url in (team, pre):
        shape.build(url, app="dev", seed=1)
        _tables(dialect, url)
    return team, pre


def _tree(url: str) -> dict[str, tuple[str | None, str]]:
    """Each route's title → (its parent's title, its path as titles), by what is held."""
    routes = {
        int(r[0]): (r[1], r[2]) for r in rows(url, "desktopRoutes", "id", "parentId", "title")
    }
    paths = {
        int(r[0]): r[1]
        for r in rows(url, "main_desktopRoutes_path", "nodePk", "path", order="nodePk")
    }
    out = {}
    for id_, (parent, title) in routes.items():
        titles = "/".join(routes[int(p)][1] for p in paths.get(id_, "").split("/") if p)
        out[title] = (routes[int(parent)][1] if parent is not None else None, titles)
    return out


def _refused(team: str, pre: str, reason: str) -> CheckFailed:
    """The shipped merged-release rules' plan, refused for ``reason``; nothing written."""
    before = dump(pre)
    with pytest.raises(CheckFailed) as refused:
        plan_only(team, pre, PlanOptions(rules=load_rules(str(MERGED_RELEASE))))
    assert refused.value.reason == reason
    assert dump(pre) == before
    return refused.value


def _roles(url: str) -> list[str]:
    titles = {int(r[0]): r[1] for r in rows(url, "desktopRoutes", "id", "title")}
    return sorted(
        titles[int(r[1])]
        for r in rows(url, "rolesDesktopRoutes", "roleName", "desktopRouteId", order="roleName")
    )


@pytest.mark.parametrize("three_way", [False, True], ids=["upsert", "threeWay"])
def test_pages_and_tabs_minted_in_one_second_land_side_by_side(
    dialect: str, make_database: MakeDb, tmp_path: Path, three_way: bool
) -> None:
    team, pre = _sides(dialect, make_database)
    _route(dialect, pre, (9001, None, "page", "A page", "a_page"), T_A)
    _route(dialect, pre, (9002, 9001, "tabs", "A tab", "a_tab"), T_A)
    _route(dialect, team, (9001, None, "page", "B page", "b_page"), T_B)
    _route(dialect, team, (9002, 9001, "tabs", "B tab", "b_tab"), T_B)
    options, store = merged_release(three_way, tmp_path)
    plan = plan_only(team, pre, options).plan
    counts = {t.table: (t.insert, t.update, t.delete, t.ids_assigned) for t in plan.tables}
    assert counts["desktopRoutes"] == (2, 0, 0, 2)
    assert counts["rolesDesktopRoutes"][:3] == (2, 0, 0)
    assert counts["main_desktopRoutes_path"][:3] == (2, 0, 0)

    result = migrate(MigrationRequest(team, pre, options, migration_id="team-b", store=store))
    assert result.status == "succeeded", result.message
    assert _tree(team)["B tab"] == ("B page", "B page/B tab")
    assert _tree(pre) == _tree(team) | {
        "A page": (None, "A page"),
        "A tab": ("A page", "A page/A tab"),
    }
    assert _roles(pre) == ["A page", "A tab", "B page", "B tab"]
    held = {r[1]: int(r[0]) for r in rows(pre, "desktopRoutes", "id", "title")}
    assert (held["A page"], held["A tab"]) == (9001, 9002)  # the target's keep their IDs
    # promoted again unchanged: B's renumbered page and tab pair by schemaUid
    again = plan_only(team, pre, options).plan
    assert not again.changes_anything, [(t.table, t.insert, t.update) for t in again.tables]


def test_a_group_sharing_an_id_with_another_is_refused_by_upsert(
    dialect: str, make_database: MakeDb
) -> None:
    team, pre = _sides(dialect, make_database)
    _route(dialect, pre, (9100, None, "group", "A group", None), T_A)
    _route(dialect, team, (9100, None, "group", "B group", None), T_B)
    _route(dialect, team, (9101, 9100, "page", "B page", "b_page"), T_B)
    refused = _refused(team, pre, "IdConflict")
    assert refused.problems == [
        "desktopRoutes 9100: the source's group 'B group' and the target's group 'A group' "
        "share the ID, and a group has no key to tell whether they are one route "
        "(NocoBase mints IDs per second)"
    ]


def test_a_three_way_merge_makes_a_group_collision_a_conflict_on_conflict_resolves(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    team, pre = _sides(dialect, make_database)
    _route(dialect, pre, (9100, None, "group", "Sales", None), T_A)
    _route(dialect, team, (9100, None, "group", "Sales", None), T_B)  # same title even
    _route(dialect, team, (9101, 9100, "page", "B page", "b_page"), T_B)
    store = FilesystemStore(tmp_path / "store")
    rules = replace(load_rules(str(MERGED_RELEASE)), merge=Merge.THREE_WAY)
    before = dump(pre)
    with pytest.raises(CheckFailed) as refused:
        plan_only(team, pre, PlanOptions(rules=rules, base_store=store))
    assert refused.value.reason == "MergeConflict"
    shown = [p for p in refused.value.problems if "9100" in p]
    assert len(shown) == 1 and "column id: base (absent), source group 'Sales' created" in shown[0]
    assert "target group 'Sales' created" in shown[0]
    assert dump(pre) == before
    keep = TableRule("desktopRoutes", Rule.UPSERT, on_conflict=OnConflict.TARGET)
    options = PlanOptions(rules=replace(rules, tables=(*rules.tables, keep)), base_store=store)
    result = migrate(MigrationRequest(team, pre, options, migration_id="team-b", store=store))
    assert result.status == "succeeded", result.message
    assert _tree(pre)["B page"] == ("Sales", "Sales/B page")
    # with a base, that group is the one this source promoted: no conflict again
    again = plan_only(team, pre, PlanOptions(rules=rules, base_store=store)).plan
    assert not again.changes_anything


def test_a_group_that_is_a_page_in_the_target_cannot_be_merged(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    team, pre = _sides(dialect, make_database)
    _route(dialect, pre, (9100, None, "page", "A page", "a_page"), T_A)
    _route(dialect, team, (9100, None, "group", "B group", None), T_B)
    rules = replace(load_rules(str(MERGED_RELEASE)), merge=Merge.THREE_WAY)
    with pytest.raises(CheckFailed) as refused:
        plan_only(team, pre, PlanOptions(rules=rules, base_store=FilesystemStore(tmp_path)))
    assert refused.value.reason == "IdConflict"
    assert "the source's group 'B group' and the target's page 'A page'" in str(refused.value)


def test_a_hostile_route_tree_is_refused_before_anything_is_written(
    dialect: str, make_database: MakeDb
) -> None:
    team, pre = _sides(dialect, make_database)
    _route(dialect, team, (9001, 9002, "page", "loop 1", "p1"), T_B)
    _route(dialect, team, (9002, 9001, "tabs", "loop 2", "p2"), T_B)
    _route(dialect, team, (9003, None, "page", "twin", "p1"), T_B)
    refused = _refused(team, pre, "BadKey")
    assert refused.problems == [
        "desktopRoutes schemaUid 'p1' in the source is held by several routes: 9001, 9003"
    ]
    execute(
        team,
        f"update {q(dialect, 'desktopRoutes')} set {q(dialect, 'schemaUid')} = 'p3' "
        "where id = 9003",
    )
    assert _refused(team, pre, "BrokenTree").problems == [
        "desktopRoutes in the source: parent links loop: 9001 → 9002 → 9001 (a cycle)"
    ]
    # a one-way overwrite replaces the target's routes anyway: matched by ID, and said
    overwrite = PlanOptions(rules=RulesSpec(system=Rule.OVERWRITE))
    said = [w for w in plan_only(team, pre, overwrite).plan.warnings if "schemaUid" in w]
    assert said == [
        "not paired by schemaUid, matched by ID as overwrite allows: desktopRoutes in the "
        "source: parent links loop: 9001 → 9002 → 9001 (a cycle)"
    ]


def test_a_merge_that_would_orphan_a_route_is_refused(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    """Team B adds a page under a group the pre-release deleted since B's base: the
    merge takes the deletion and the page, and would leave the page without a parent."""
    team, pre = _sides(dialect, make_database)
    for url in (team, pre):
        _route(dialect, url, (9100, None, "group", "Sales", None), T_A)
    options, store = merged_release(True, tmp_path)
    create_backup(pre, store, environment="pre")
    first = MigrationRequest(team, pre, options, migration_id="base", store=store)
    assert migrate(replace(first, environment="pre")).status == "noop"  # B's base
    for table, column in (
        ("desktopRoutes", "id"),
        ("rolesDesktopRoutes", "desktopRouteId"),
        ("main_desktopRoutes_path", "nodePk"),
    ):
        execute(pre, f"delete from {q(dialect, table)} where {q(dialect, column)} = 9100")
    _route(dialect, team, (9101, 9100, "page", "B page", "b_page"), T_B)
    before = dump(pre)
    with pytest.raises(CheckFailed) as refused:
        plan_only(team, pre, options)
    assert refused.value.reason == "BrokenTree"
    assert refused.value.problems == [
        "desktopRoutes 9101 in the merge: its parent 9100 is not there"
    ]
    assert dump(pre) == before
