"""Merged release on real NocoBase: two independently installed development apps
promote into one pre-release with the documented merged-release rules (``upsert`` on
natural keys, references rewritten, audit timestamps ignored).

What natural keys cannot express (install-time random uids in UI schema trees, tables
with no natural key) is recorded in docs/nocobase-testing.md, not worked around here.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml

from controller.api.rules import parse_rules
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions
from tests.db.dbhelpers import dump
from tests.harness.cluster import REPO_ROOT
from tests.nocobase import builder as b
from tests.nocobase.conftest import AppFactory

pytestmark = pytest.mark.nocobase

# The merged-release rules users are given: tested here exactly as documented.
RULES_FILE = REPO_ROOT / "docs" / "examples" / "rules" / "nocobase-merged-release.yaml"
MERGE_RULES = parse_rules(yaml.safe_load(RULES_FILE.read_text()))


MEMBER_USERS_ACTIONS = {"a_": ["view"], "b_": ["update", "view"]}


def team_rows(url: str, prefix: str) -> dict[str, Any]:
    """The rows of one team's configuration, as stored (ids included)."""
    data = dump(url)

    def pick(table: str, column: str) -> list[Any]:
        cols = [c for c, _ in data[table]["columns"]]
        i = cols.index(column)
        return [r for r in data[table]["rows"] if str(r[i]).startswith(prefix)]

    return {
        "collections": pick("collections", "name"),
        "fields": pick("fields", "collectionName"),
        "roles": pick("roles", "name"),
        "dataSourcesRolesResources": pick("dataSourcesRolesResources", "roleName"),
        "desktopRoutes": pick("desktopRoutes", "title"),
    }


def _next_second() -> None:
    """Wait for the next whole second of the wall clock (at most one second)."""
    time.sleep(1.05 - time.time() % 1.0)


def test_two_teams_merge_into_one_pre_release(
    make_app: AppFactory, nocobase_template_b: str
) -> None:
    team_a = make_app("team_a")  # same lineage as pre-release
    team_b = make_app("team_b", nocobase_template_b)  # installed independently
    pre = make_app("merged")
    b.start_all(team_a, team_b)
    for app, p in ((team_a, "a_"), (team_b, "b_")):
        # NocoBase's snowflake IDs count seconds, with a sequence that restarts every
        # second and the same worker ID in every installation: two apps writing in the
        # same second mint the same IDs. Real teams do not build in the same second;
        # this loop can, so team B starts in a second of its own. (Colliding IDs that
        # cannot be re-assigned are refused, IdConflict: see test_id_mapping.)
        _next_second()
        b.create_parent_collection(app, p)
        b.create_child_collection(app, p)
        route = b.create_page(app, p)
        b.create_role(app, p, route["id"], add_root_user=False)
        # Both teams give the built-in role "member" rights on the built-in "users": the
        # same resource by natural key, with another snowflake ID in each application.
        app.post(
            "roles/member/dataSourceResources:create",
            {
                "dataSourceKey": "main",
                "name": "users",
                "usingActionsConfig": True,
                "actions": [{"name": n} for n in MEMBER_USERS_ACTIONS[p]],
            },
        )
    team_a.stop()
    team_b.stop()

    options = PlanOptions(rules=MERGE_RULES)
    first = migrate(MigrationRequest(team_a.url, pre.url, options, migration_id="team-a"))
    assert first.status == "succeeded", first.message
    a_rows = team_rows(pre.url, "a_")
    assert a_rows == team_rows(team_a.url, "a_")

    plan = plan_only(team_b.url, pre.url, options).plan
    assert plan.totals["delete"] == 0  # upsert never deletes
    by_table = {t.table: t for t in plan.tables}
    # team B's own rows are new by natural key; team A's are kept, not matched
    assert (by_table["collections"].insert, by_table["collections"].kept) == (2, 2)
    assert by_table["roles"].insert == 1 and by_table["roles"].kept == 1
    assert by_table["fields"].insert == by_table["fields"].kept == len(a_rows["fields"])
    # the built-in scopes ("all", "own") are team A's rows, not duplicated
    assert by_table["dataSourcesRolesResourcesScopes"].insert == 0
    assert by_table["dataSourcesRolesResourcesScopes"].ids_matched == 2
    # member's "users" resource is team A's row in pre-release: team B's actions on it
    # are rewritten to that row's ID (B's "view" is A's, B's "update" is new).
    assert by_table["dataSourcesRolesResources"].ids_matched >= 1
    assert by_table["dataSourcesRolesResourcesActions"].insert >= 1
    # Built-in rows both installations wrote alike differ only in their timestamps
    # (123 "updates" in 15 tables without ignoreColumns). What is left are the roots of
    # the install-time profile forms (docs/nocobase-testing.md).
    updated = {t.table: t.update for t in plan.tables if t.update}
    assert set(updated) <= {"uiSchemas"}, updated
    second = migrate(MigrationRequest(team_b.url, pre.url, options, migration_id="team-b"))
    assert second.status == "succeeded", second.message

    assert team_rows(pre.url, "a_") == a_rows  # nothing of team A was overwritten
    assert team_rows(pre.url, "b_") == team_rows(team_b.url, "b_")

    pre.start()
    pre.sign_in()
    b.assert_boots_cleanly(pre)
    names = {c["name"] for c in pre.list_all("collections")}
    assert {"a_customers", "a_orders", "b_customers", "b_orders"} <= names
    for p in ("a_", "b_"):
        fields = {f["name"] for f in pre.list_all(f"collections/{p}orders/fields")}
        assert {"title", "quantity", "meta", "status", "customer", "customerId"} <= fields
        resources = pre.list_all(
            "dataSourcesRolesResources", **{"filter[roleName]": f"{p}sales", "appends[]": "actions"}
        )
        assert [(r["name"], sorted(a["name"] for a in r["actions"])) for r in resources] == [
            (f"{p}orders", ["update", "view"])
        ]
        routes = pre.list_all(f"roles/{p}sales/desktopRoutes")
        assert f"{p} orders page" in {r["title"] for r in routes}
        # the merged relations work: a business row in each team's collections
        customer = pre.post(f"{p}customers:create", {"name": "c", "email": f"{p}c@pre.test"})
        pre.post(f"{p}orders:create", {"title": "o", "customerId": customer["id"]})
        got = pre.get(f"{p}customers:get?filterByTk={customer['id']}&appends[]=orders")
        assert [o["title"] for o in got["orders"]] == ["o"]
    member = pre.list_all(
        "dataSourcesRolesResources",
        **{"filter[roleName]": "member", "filter[name]": "users", "appends[]": "actions"},
    )
    assert [sorted(a["name"] for a in r["actions"]) for r in member] == [["update", "view"]]
    pre.stop()
