"""Two independently installed NocoBase applications merge their routes and workflows
into one pre-release, on PostgreSQL: with ``merge: threeWay``, and with the shipped
merged-release file as it is (``upsert``, no merge).

Each team adds a page (a page route and its tab route) and a workflow of five nodes (a
chain with a condition, a node on one of its branches, and a CC node whose config names
another node by ID); team A also keeps a draft revision of its workflow (same key, node
keys copied). Team B's page and tab routes, workflow and nodes are given team A's IDs,
as NocoBase mints them when two installations write in the same second: pairing by
generated ID would take them for team A's rows. Paired by key (workflows) and by UI
schema (routes) instead, both land side by side; NocoBase boots on the merge, serves
both pages with their tabs and both workflows, and each node chain is intact.
Promoted again unchanged, team B's renumbered rows pair with what it promoted before.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from controller.api.rules import Merge, OnConflict, Rule, RulesSpec, TableRule, parse_rules
from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions
from controller.engine.references import NOCOBASE_PATHS, NOCOBASE_REFERENCES
from tests.db.dbhelpers import execute, rows
from tests.harness.cluster import REPO_ROOT
from tests.harness.nocobase import NocoBaseApp
from tests.nocobase import builder as b
from tests.nocobase.conftest import AppFactory

pytestmark = pytest.mark.nocobase

RULES_FILE = REPO_ROOT / "docs" / "examples" / "rules" / "nocobase-merged-release.yaml"
_FILE = parse_rules(yaml.safe_load(RULES_FILE.read_text()))
# With no base, the roots of the install-time profile forms (fixed x-uids, another
# random `name` in each installation) conflict: the pre-release keeps its own.
KEEP_FORMS = TableRule("uiSchemas", Rule.UPSERT, on_conflict=OnConflict.TARGET)
THREE_WAY = replace(_FILE, merge=Merge.THREE_WAY, tables=(*_FILE.tables, KEEP_FORMS))


def _collide(team_b: NocoBaseApp, team_a: NocoBaseApp, workflow_a: object) -> None:
    """Give team B's workflow and its nodes team A's IDs (B is stopped, never booted
    again): what two installations writing in the same second mint."""
    (wf_b,) = rows(team_b.url, "workflows", "id", order="id")
    nodes_a = [
        r[0] for r in rows(team_a.url, "flow_nodes", "id", "workflowId") if r[1] == workflow_a
    ]
    nodes_b = [r[0] for r in rows(team_b.url, "flow_nodes", "id")]
    to = dict(zip(sorted(nodes_b), sorted(nodes_a), strict=True))

    def case(column: str) -> str:
        whens = " ".join(f"WHEN {old} THEN {new}" for old, new in to.items())
        return f'CASE "{column}" {whens} ELSE "{column}" END'

    configs = []  # the CC node's config names a node by the ID it had
    for node_id, config in rows(team_b.url, "flow_nodes", "id", "config"):
        fields = (config or {}).get("tempAssociationFields") or []
        if fields:
            config["tempAssociationFields"] = [{**f, "nodeId": to[f["nodeId"]]} for f in fields]
            text = json.dumps(config).replace("'", "''")
            configs.append(f"UPDATE flow_nodes SET config = '{text}' WHERE id = {node_id}")
    assert configs
    execute(
        team_b.url,
        *configs,
        f"UPDATE workflows SET id = {workflow_a} WHERE id = {wf_b[0]}",
        f'UPDATE flow_nodes SET "workflowId" = {workflow_a}, id = {case("id")}, '
        f'"upstreamId" = {case("upstreamId")}, "downstreamId" = {case("downstreamId")}',
    )


def _collide_routes(team_b: NocoBaseApp, team_a: NocoBaseApp) -> dict[int, int]:
    """Give team B's page and tab routes team A's page's and tab's IDs, in every column
    NocoBase keeps a route's ID in (B is stopped, never booted again): what two
    installations minting routes in the same second mint. Returns the IDs it changed,
    B's → A's: none where B's routes already hold A's IDs (minted in that same second)."""
    a_ids = {uid: int(i) for i, uid in rows(team_a.url, "desktopRoutes", "id", "schemaUid")}
    b_routes = rows(team_b.url, "desktopRoutes", "id", "schemaUid")
    pairs = {int(i): a_ids["a_" + uid[2:]] for i, uid in b_routes if uid in ("b_page", "b_tab")}
    assert len(pairs) == 2, b_routes
    to = {b_id: a_id for b_id, a_id in pairs.items() if b_id != a_id}
    assert not set(to.values()) & {int(r[0]) for r in b_routes}, b_routes
    if not to:
        return to

    def case(column: str) -> str:
        whens = " ".join(f"WHEN {old} THEN {new}" for old, new in to.items())
        return f'"{column}" = CASE "{column}" {whens} ELSE "{column}" END'

    columns = [
        (t, c) for (t, c), parent in NOCOBASE_REFERENCES.items() if parent == "desktopRoutes"
    ]
    engine = sa.create_engine(team_b.url)
    try:
        found = sa.inspect(engine)
        held = {(t, c["name"]) for t in found.get_table_names() for c in found.get_columns(t)}
    finally:
        engine.dispose()
    statements = [f'UPDATE "desktopRoutes" SET {case("id")}']
    statements += [f'UPDATE "{t}" SET {case(c)}' for t, c in columns if (t, c) in held]
    for (table, column), parent in NOCOBASE_PATHS.items():
        if parent != "desktopRoutes" or (table, column) not in held:
            continue
        for (path,) in {(r[0],) for r in rows(team_b.url, table, column, order=column)}:
            new = "/".join(str(to.get(int(p), p)) if p else p for p in str(path).split("/"))
            statements.append(
                f'UPDATE "{table}" SET "{column}" = \'{new}\' WHERE "{column}" = \'{path}\''
            )
    execute(team_b.url, *statements)
    return to


def _routes(app: NocoBaseApp) -> dict[str, tuple[str, str | None]]:
    """Each route's schemaUid → (its title, its parent's schemaUid), as NocoBase serves
    them."""
    served = {r["id"]: r for r in app.list_all("desktopRoutes")}
    return {
        r["schemaUid"]: (
            r["title"],
            served[r["parentId"]]["schemaUid"] if r.get("parentId") else None,
        )
        for r in served.values()
    }


def _workflows(app: NocoBaseApp) -> dict[tuple[str, bool], Any]:
    """(title, current) → the workflow's node chain, as NocoBase serves it."""
    return {
        (w["title"], bool(w["current"])): b.workflow_chain(app, w["id"])
        for w in app.list_all("workflows")
    }


@pytest.mark.parametrize("rules", [THREE_WAY, _FILE], ids=["threeWay", "upsert"])
def test_two_installations_merge_routes_and_workflows(
    make_app: AppFactory, nocobase_template_b: str, tmp_path: Path, rules: RulesSpec
) -> None:
    """With ``merge: threeWay``, and with the shipped file as it is (``upsert``)."""
    merge = "m3" if rules.merge is Merge.THREE_WAY else "up"
    team_a = make_app(f"wf_a_{merge}")  # the pre-release's lineage
    team_b = make_app(f"wf_b_{merge}", nocobase_template_b)  # installed on its own
    pre = make_app(f"wf_pre_{merge}")
    b.start_all(team_a, team_b)
    made: dict[str, dict[str, Any]] = {}
    for app, p in ((team_a, "a_"), (team_b, "b_")):
        b.create_page(app, p)
        made[p] = b.create_chain_workflow(app, p)
    wf_a = made["a_"]
    team_a.post(f"workflows:revision?filterByTk={wf_a['id']}&filter[key]={wf_a['key']}", {})
    expected = {**_workflows(team_a), **_workflows(team_b)}
    assert len(expected) == 3 and all(len(chain) == 5 for chain in expected.values())
    team_a.stop()
    team_b.stop()
    _collide(team_b, team_a, wf_a["id"])
    _collide_routes(team_b, team_a)  # what NocoBase mints in one second, every run

    store = FilesystemStore(tmp_path / "store")
    create_backup(pre.url, store, environment="pre")
    options = PlanOptions(rules=rules)
    for team, name in ((team_a, "wf-a"), (team_b, "wf-b")):
        if team is team_b:  # paired by key, not by the IDs both teams hold
            plan = plan_only(team_b.url, pre.url, options).plan
            by_table = {t.table: t for t in plan.tables}
            assert by_table["workflows"].ids_assigned == 1
            assert by_table["flow_nodes"].ids_assigned == 5
            assert by_table["desktopRoutes"].ids_assigned == 2  # its page and tab
            assert not [w for w in plan.warnings if "generated ID" in w and "workflows" in w]
        request = MigrationRequest(team.url, pre.url, options, name, store=store)
        result = migrate(replace(request, environment="pre"))
        assert result.status == "succeeded", result.message
    # Again, unchanged: team B's renumbered rows pair by key and creation time, so
    # nothing is added twice.
    again = migrate(
        replace(
            MigrationRequest(team_b.url, pre.url, options, "wf-b2", store=store), environment="pre"
        )
    )
    assert again.status == "noop", again.message

    pre.start()
    pre.sign_in()
    b.assert_boots_cleanly(pre)
    routes = _routes(pre)
    held = {
        app.name: rows(app.url, "desktopRoutes", "id", "title", "schemaUid", order="id")
        for app in (team_a, team_b, pre)
    }
    for p in ("a_", "b_"):  # each page with its own tab, which holds its table block
        assert routes[f"{p}page"] == (f"{p} orders page", None), held
        assert routes[f"{p}tab"][1] == f"{p}page", held
        tab = json.dumps(pre.get(f"uiSchemas:getJsonSchema/{p}tab"))
        assert all(f'"{p}{n}"' in tab for n in ("block", "table")), tab[:400]
    assert _workflows(pre) == expected
    pre.stop()
