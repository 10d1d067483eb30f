"""UI schemas promoted as a tree on every dialect: an install-time schema whose child
x-uids are random per installation is matched by position, not duplicated."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from controller.api.rules import Merge, OnConflict, Rule, TableRule
from controller.backups.store import FilesystemStore
from controller.cli.inputs import load_rules
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions
from controller.db.database import Database
from controller.engine import uischema_mapping
from controller.engine.merge3_tree import tree_problems
from controller.engine.source import FilteredSource
from controller.engine.uischema_tree import Tree
from controller.errors import CheckFailed
from tests.db.dbhelpers import execute, q, rows
from tests.fixtures import nocobase_shape as shape

MakeDb = Callable[..., str]
MERGED = Path(__file__).parents[2] / "docs/examples/rules/nocobase-merged-release.yaml"
ROOT = "nocobase-admin-profile-form"
FORM = {"grid": None, "nickname": "grid", "email": "grid"}  # name → parent's name


def _install(dialect: str, url: str, prefix: str, extra: dict[str, str] | None = None) -> None:
    """One installation's profile form: a fixed root, children with random x-uids."""
    form = {**FORM, **(extra or {})}
    uid = {name: f"{prefix}-{name}" for name in form} | {None: ROOT}
    nodes = ", ".join(f"('{u}', '{n or 'profile'}')" for n, u in uid.items())
    paths = [(ROOT, ROOT, 0)]
    for name, parent in form.items():
        paths.append((uid[name], uid[name], 0))
        depth, up = 1, parent
        while True:
            paths.append((uid[up], uid[name], depth))
            if up is None:
                break
            depth, up = depth + 1, form[up]
    table = q(dialect, "uiSchemaTreePath")
    execute(
        url,
        f"insert into {q(dialect, 'uiSchemas')} ({q(dialect, 'x-uid')}, name) values {nodes}",
        f"insert into {table} (ancestor, descendant, depth) values "
        + ", ".join(f"('{a}', '{d}', {n})" for a, d, n in paths),
    )


def _ui(url: str) -> tuple[set[str], list[tuple[str, str, int]]]:
    nodes = {str(u) for (u,) in rows(url, "uiSchemas", "x-uid", order="x-uid")}
    paths = rows(url, "uiSchemaTreePath", "ancestor", "descendant", "depth", order="ancestor")
    return nodes, [(str(a), str(d), int(n)) for a, d, n in paths]


@pytest.mark.parametrize("three_way", [False, True], ids=["upsert", "threeWay"])
def test_an_install_time_form_is_matched_by_position(
    dialect: str, make_database: MakeDb, tmp_path: Path, three_way: bool
) -> None:
    team, pre = make_database(dialect, "teamb"), make_database(dialect, "pre")
    for url in (team, pre):
        shape.build(url, app="dev", seed=1)
    _install(dialect, pre, "t")
    _install(dialect, team, "s", {"phone": "grid"})  # team B adds a field to the form
    routes = q(dialect, "desktopRoutes")
    execute(
        team,
        f"update {q(dialect, 'uiSchemas')} set {q(dialect, 'schema')} = "
        f"'{{\"title\": \"Nick\"}}' where {q(dialect, 'x-uid')} = 's-nickname'",
        f"insert into {routes} (id, title, {q(dialect, 'schemaUid')}, type) "
        "values (9000, 'Mail', 's-email', 'page')",
    )
    rules = load_rules(str(MERGED))
    store = FilesystemStore(tmp_path / "store")
    if three_way:
        # independent installations have no base: the form's changed title conflicts,
        # named by the target's x-uid, until a rule resolves it
        rules = replace(rules, merge=Merge.THREE_WAY)
        with pytest.raises(CheckFailed) as refused:
            plan_only(team, pre, PlanOptions(rules=rules, base_store=store))
        assert refused.value.reason == "MergeConflict"
        assert "table uiSchemas, key ('t-nickname'), column schema" in str(refused.value)
        resolve = TableRule("uiSchemas", Rule.UPSERT, on_conflict=OnConflict.SOURCE)
        rules = replace(rules, tables=(*rules.tables, resolve))
    options = PlanOptions(rules=rules, base_store=store if three_way else None)
    first = plan_only(team, pre, options).plan
    ui = first.table("uiSchemas")
    assert ui is not None and (ui.insert, ui.update) == (1, 1)  # phone; nickname's title
    assert any("uiSchemas" in w for w in first.warnings) is False

    result = migrate(MigrationRequest(team, pre, options, migration_id="team-b", store=store))
    assert result.status == "succeeded", result.message
    nodes, paths = _ui(pre)
    form = {u for u in nodes if u == ROOT or u.startswith(("t-", "s-"))}
    assert form == {ROOT, "t-grid", "t-nickname", "t-email", "s-phone"}  # no second form
    assert tree_problems("uiSchemaTreePath", "uiSchemas", nodes, paths) == []
    assert ("t-grid", "s-phone", 1) in paths and (ROOT, "s-phone", 2) in paths
    assert not any(a.startswith("s-") and a != "s-phone" for a, _, _ in paths)
    by_id = dict(rows(pre, "desktopRoutes", "id", "schemaUid"))
    assert by_id[9000] == "t-email"  # the route follows the node it names
    schema = rows(pre, "uiSchemas", "schema", order="x-uid")
    assert any("Nick" in str(s) for (s,) in schema)
    # promoted consistently: nothing is left to promote
    assert not plan_only(team, pre, options).plan.changes_anything


def test_nodes_of_one_name_under_one_parent_are_not_guessed(
    dialect: str, make_database: MakeDb
) -> None:
    team, pre = make_database(dialect, "teamb"), make_database(dialect, "pre")
    for url in (team, pre):
        shape.build(url, app="dev", seed=1)
    _install(dialect, pre, "t")
    _install(dialect, team, "s")
    execute(
        pre,
        f"insert into {q(dialect, 'uiSchemas')} ({q(dialect, 'x-uid')}, name) "
        "values ('t-email2', 'email')",
        f"insert into {q(dialect, 'uiSchemaTreePath')} (ancestor, descendant, depth) values "
        f"('t-email2', 't-email2', 0), ('t-grid', 't-email2', 1), ('{ROOT}', 't-email2', 2)",
    )
    plan = plan_only(team, pre, PlanOptions(rules=load_rules(str(MERGED)))).plan
    assert "uiSchemas: not paired by position, 'email' under t-grid: the target has " in "".join(
        plan.warnings
    )
    ui = plan.table("uiSchemas")
    assert ui is not None and ui.insert == 1  # s-email arrives as its own node, as before


@pytest.mark.parametrize("case", ["same nodes", "empty target", "new nodes"])
def test_pairing_is_skipped_only_where_it_would_pair_nothing(
    dialect: str, make_database: MakeDb, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """With in-database digests, one key aggregate per side spares reading both trees
    when every source node is the target's (or a side has none); the plan is the one
    the full pairing gives, and new nodes are still paired by position."""
    team, pre = make_database(dialect, "teamb"), make_database(dialect, "pre")
    for url in (team, pre):
        shape.build(url, app="dev", seed=1)
    _install(dialect, team, "s", {"phone": "grid"})
    if case == "same nodes":
        _install(dialect, pre, "s", {"phone": "grid"})
    elif case == "new nodes":
        _install(dialect, pre, "t")
    else:
        execute(pre, f"delete from {q(dialect, 'uiSchemaTreePath')}")
        execute(pre, f"delete from {q(dialect, 'uiSchemas')}")
    read: list[int] = []
    tree = uischema_mapping._tree
    monkeypatch.setattr(uischema_mapping, "_tree", lambda side: read.append(1) or tree(side))
    options = PlanOptions(rules=load_rules(str(MERGED)))
    plans = {}
    for fast in ("1", "0"):
        monkeypatch.setenv("FERRY_FAST_PATH", fast)
        read.clear()
        plans[fast] = plan_only(team, pre, options).plan
        assert len(read) == (0 if fast == "1" and case != "new nodes" else 2)
    assert plans["1"].digest == plans["0"].digest
    assert plans["1"].warnings == plans["0"].warnings
    ui = plans["1"].table("uiSchemas")
    assert ui is not None and ui.ids_matched == (3 if case == "new nodes" else 0)


def test_a_tree_read_in_place_is_the_tree_of_every_closure_row(
    dialect: str, make_database: MakeDb
) -> None:
    """A database keeps only the closure rows of depth 1 when a tree is read; the tree
    is the one every closure row gives (deeper rows and self-rows add nothing)."""
    url = make_database(dialect, "tree")
    shape.build(url, app="dev", seed=1)
    _install(dialect, url, "s", {"phone": "grid"})
    nodes = rows(url, "uiSchemas", "x-uid", "name", order="x-uid")
    paths = rows(url, "uiSchemaTreePath", "ancestor", "descendant", "depth", order="ancestor")
    assert any(int(n) > 1 for _, _, n in paths)
    target = Database(url)
    try:
        with target.reader() as snap:
            assert isinstance(snap, FilteredSource)
            read = uischema_mapping._tree(snap)
    finally:
        target.dispose()
    assert read == Tree.of(nodes, paths)
    assert read.parents["s-phone"] == "s-grid" and read.parents["s-grid"] == ROOT
