"""Merged releases as a three-way merge on real NocoBase: two teams start from one
production, each changes the same page its own way and adds a page of its own; both
promote into one pre-release with ``merge: threeWay``, each against its own base.

The second team's promotion conflicts on the page both changed (listed by table, key
and column, with both values) and changes nothing; resolved by ``onConflict``, the
merge is written, NocoBase boots on it and serves both teams' pages.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from controller.api.rules import Merge, OnConflict, Rule, TableRule, parse_rules
from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup
from controller.commands.migrate import MigrationRequest, MigrationResult, migrate
from controller.commands.planning import PlanOptions
from controller.errors import CheckFailed
from tests.db.dbhelpers import dump
from tests.harness.cluster import REPO_ROOT
from tests.harness.nocobase import NocoBaseApp
from tests.nocobase import builder as b
from tests.nocobase.conftest import AppFactory

pytestmark = pytest.mark.nocobase

RULES_FILE = REPO_ROOT / "docs" / "examples" / "rules" / "nocobase-merged-release.yaml"
THREE_WAY = replace(parse_rules(yaml.safe_load(RULES_FILE.read_text())), merge=Merge.THREE_WAY)


def _next_second() -> None:
    """Apps of one lineage mint the same snowflake IDs within one second (see
    test_merged_release): each team writes in a second of its own."""
    time.sleep(1.05 - time.time() % 1.0)


def _change_shared_page(app: NocoBaseApp, route_id: object, team: str) -> None:
    """The same page, changed by each team its own way: its menu title and its table."""
    app.post(f"desktopRoutes:update?filterByTk={route_id}", {"title": f"Orders by {team}"})
    app.post("uiSchemas:patch", {"x-uid": "s_table", "title": f"Orders table of {team}"})


class Release:
    def __init__(self, make_app: AppFactory, store: Path) -> None:
        production = make_app("prod")
        production.start()
        production.sign_in()
        b.create_parent_collection(production, "s_")
        b.create_child_collection(production, "s_")
        self.shared = b.create_page(production, "s_")["id"]
        production.stop()
        self.pre = make_app("pre3", production.database)
        self.team_a = make_app("team3_a", production.database)
        self.team_b = make_app("team3_b", production.database)
        self.store = FilesystemStore(store)
        create_backup(self.pre.url, self.store, environment="pre")
        self.runs = 0

    def promote(self, team: NocoBaseApp, rules: object = THREE_WAY) -> MigrationResult:
        self.runs += 1
        options = PlanOptions(rules=rules)  # type: ignore[arg-type]
        request = MigrationRequest(
            team.url, self.pre.url, options, f"merge3-{self.runs}", store=self.store
        )
        return migrate(replace(request, environment="pre"))


def test_two_teams_change_one_page_conflict_then_merge(
    make_app: AppFactory, tmp_path: Path
) -> None:
    rel = Release(make_app, tmp_path / "store")
    # each team's first promotion changes nothing and records its base
    for team in (rel.team_a, rel.team_b):
        first = rel.promote(team)
        assert first.status == "noop", first.message

    b.start_all(rel.team_a, rel.team_b)
    for team, p in ((rel.team_a, "a_"), (rel.team_b, "b_")):
        _next_second()
        _change_shared_page(team, rel.shared, p.upper()[0])
        b.create_page(team, p)
    rel.team_a.stop()
    rel.team_b.stop()

    a = rel.promote(rel.team_a)
    assert a.status == "succeeded", a.message
    before = dump(rel.pre.url)
    with pytest.raises(CheckFailed) as refused:
        rel.promote(rel.team_b)
    assert refused.value.reason == "MergeConflict"
    conflicts = refused.value.problems
    assert any(
        c.startswith(f"table desktopRoutes, key ('{rel.shared}'), column title:")
        and '"Orders by A"' in c
        and '"Orders by B"' in c
        for c in conflicts
    ), conflicts
    assert any(
        c.startswith("table uiSchemas, key ('s_table'), column schema:") for c in conflicts
    ), conflicts
    # only the page both teams changed conflicts: each team's new page merges cleanly
    assert {c.split(",")[0] for c in conflicts} == {"table desktopRoutes", "table uiSchemas"}
    assert dump(rel.pre.url) == before  # refused before any change

    resolve = tuple(
        TableRule(t, Rule.UPSERT, on_conflict=OnConflict.SOURCE)
        for t in ("desktopRoutes", "uiSchemas")
    )
    resolved = replace(THREE_WAY, tables=(*THREE_WAY.tables, *resolve))
    merged = rel.promote(rel.team_b, resolved)
    assert merged.status == "succeeded", merged.message

    pre = rel.pre
    pre.start()
    pre.sign_in()
    b.assert_boots_cleanly(pre)
    titles = {r["title"] for r in pre.list_all("desktopRoutes")}
    assert {"Orders by B", "a_ orders page", "b_ orders page"} <= titles
    assert "Orders by A" not in titles and "s_ orders page" not in titles
    for p in ("a_", "b_", "s_"):  # every page's tab holds its table block and column
        tab = json.dumps(pre.get(f"uiSchemas:getJsonSchema/{p}tab"))
        assert all(f'"{p}{n}"' in tab for n in ("block", "table", "coltf")), tab[:400]
    table = pre.get("uiSchemas:getJsonSchema/s_table")
    assert table["title"] == "Orders table of B"
    pre.stop()


def _tree(url: str) -> tuple[set[str], set[tuple[str, str, int]]]:
    data = dump(url)
    nodes = {str(r[0]) for r in data["uiSchemas"]["rows"]}
    cols = [c for c, _ in data["uiSchemaTreePath"]["columns"]]
    at = [cols.index(c) for c in ("ancestor", "descendant", "depth")]
    paths = {
        (str(r[at[0]]), str(r[at[1]]), int(r[at[2]])) for r in data["uiSchemaTreePath"]["rows"]
    }
    return nodes, paths


PAGE_NODES = ("page", "tab", "row", "col", "block", "table", "colt", "coltf")


def test_independent_installations_merge_pages_without_a_second_profile_form(
    make_app: AppFactory, nocobase_template_b: str
) -> None:
    """Team B installed NocoBase on its own: its install-time profile forms have other
    random x-uids below the same fixed roots. Only team B's page arrives."""
    team_b = make_app("tree_b", nocobase_template_b)
    pre = make_app("tree_pre")
    b.start_all(team_b)
    b.create_page(team_b, "b_")
    team_b.stop()
    options = PlanOptions(rules=parse_rules(yaml.safe_load(RULES_FILE.read_text())))
    nodes, paths = _tree(pre.url)
    roots = {n for n in nodes if n.startswith("nocobase-admin-profile")}
    assert roots  # the install-time forms this is about
    result = migrate(MigrationRequest(team_b.url, pre.url, options, migration_id="tree-b"))
    assert result.status == "succeeded", result.message
    after_nodes, after_paths = _tree(pre.url)
    assert after_nodes - nodes == {f"b_{n}" for n in PAGE_NODES}  # 63 strays before
    under_roots = {p for p in after_paths - paths if p[0] in roots}
    assert under_roots == set(), sorted(under_roots)[:5]
    assert all(a.startswith("b_") or (a, d, n) in paths for a, d, n in after_paths - paths)
    pre.start()
    pre.sign_in()
    b.assert_boots_cleanly(pre)
    for root in sorted(roots):  # each form served with one set of children
        form = json.dumps(pre.get(f"uiSchemas:getJsonSchema/{root}"))
        assert '"x-uid"' in form
    tab = json.dumps(pre.get("uiSchemas:getJsonSchema/b_tab"))
    assert all(f'"b_{n}"' in tab for n in ("block", "table", "coltf")), tab[:400]
    assert "b_ orders page" in {r["title"] for r in pre.list_all("desktopRoutes")}
    pre.stop()
