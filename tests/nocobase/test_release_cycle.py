"""A release cycle on real NocoBase 2.2.15: develop, plan, promote, boot, roll back, restore.

Development and pre-release are copies of one NocoBase-installed template (the same
lineage, as environments cloned from one project are), each with its own storage
directory and therefore its own AES key for secrets. Every configuration change is
made through NocoBase's HTTP API; business records are written in pre-release only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup, restore
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions
from controller.commands.rollback import rollback
from controller.errors import CheckFailed
from tests.db.dbhelpers import dump, rows
from tests.harness.nocobase import NocoBaseApp
from tests.nocobase import builder as b
from tests.nocobase.conftest import AppFactory

# The release cycle and the restore run on both databases NocoBase supports in
# production; on MariaDB every DDL statement commits implicitly.
pytestmark = [
    pytest.mark.nocobase,
    pytest.mark.parametrize(
        "nocobase_dialect", ["postgresql", "mariadb", "sqlite"], indirect=True, scope="module"
    ),
]

DEV_VARS = {"ERP_BASE": ("default", "https://erp.dev.test"), "ERP_TOKEN": ("secret", "dev-tok")}
PRE_VARS = {"ERP_BASE": ("default", "https://erp.pre.test"), "ERP_TOKEN": ("secret", "pre-tok")}
# The promoted workflow runs in pre-release and calls {{$env.ERP_BASE}}: the request
# fails (no such host) and NocoBase logs it at level error. Expected, and proof that
# the variable resolved to pre-release's value.
WORKFLOW_CALL = r"ENOTFOUND erp\.pre\.test"
SETTINGS_TITLE = "Ferry on real NocoBase"


@dataclass
class Envs:
    dev: NocoBaseApp
    pre: NocoBaseApp
    phase: int = 0  # builder phases applied to dev


@pytest.fixture(scope="module")
def envs(make_app: AppFactory) -> Envs:
    dev, pre = make_app("dev"), make_app("pre")
    b.start_all(dev, pre)
    return Envs(dev, pre)


def build_phase1(dev: NocoBaseApp) -> None:
    """A collection business rows can go into."""
    b.create_parent_collection(dev, "")


def build_phase2(dev: NocoBaseApp) -> None:
    """Relation collection, page, role, variables, workflow using them, settings."""
    b.create_child_collection(dev, "")
    route = b.create_page(dev, "")
    b.create_role(dev, "", route["id"], add_root_user=True)
    b.declare_variables(dev, DEV_VARS)
    b.create_workflow(dev, "", "ERP_BASE", "ERP_TOKEN")
    b.change_settings(dev, SETTINGS_TITLE)


def config_view(app: NocoBaseApp) -> dict[str, Any]:
    """What NocoBase's own API says about the configuration this tier changes."""
    collections = {
        c["name"]: sorted(f["name"] for f in app.list_all(f"collections/{c['name']}/fields"))
        for c in app.list_all("collections")
    }
    roles = {
        r["name"]: sorted(
            (res["name"], tuple(sorted(a["name"] for a in res.get("actions") or [])))
            for res in app.list_all(
                "dataSourcesRolesResources",
                **{"filter[roleName]": r["name"], "appends[]": "actions"},
            )
        )
        for r in app.list_all("roles")
    }
    workflows = {
        w["title"]: (
            w["enabled"],
            sorted(n["type"] for n in app.list_all(f"workflows/{w['id']}/nodes")),
        )
        for w in app.list_all("workflows")
    }
    return {
        "collections": collections,
        "routes": sorted((r["type"], r["title"]) for r in app.list_all("desktopRoutes")),
        "roles": roles,
        "workflows": workflows,
        "settings": app.get("systemSettings:get?filterByTk=1")["title"],
    }


def business_view(app: NocoBaseApp) -> dict[str, Any]:
    return {
        "customers": sorted((c["id"], c["name"], c["email"]) for c in app.list_all("customers")),
        "users": sorted((u["id"], u["username"]) for u in app.list_all("users")),
    }


def changed(plan: Any) -> dict[str, tuple[int, int, int, int]]:
    """table → (insert, update, delete, schema operations) of the tables that change."""
    return {
        t.table: (t.insert, t.update, t.delete, len(t.schema))
        for t in plan.tables
        if t.changes_anything
    }


def wait_for_log(app: NocoBaseApp, pattern: str, timeout: float = 30) -> None:
    import re

    deadline = time.monotonic() + timeout
    while not re.search(pattern, app.log_text()):
        assert time.monotonic() < deadline, f"{app.name} never logged {pattern!r}"
        time.sleep(0.5)


def test_release_cycle(envs: Envs, tmp_path: Path) -> None:
    dev, pre = envs.dev, envs.pre

    # -- 1. the collection first, so pre-release can hold business records ----------
    build_phase1(dev)
    envs.phase = 1
    dev.stop()
    pre.stop()  # NocoBase caches collections/ACL in memory: promote while it is down
    first = plan_only(dev.url, pre.url, PlanOptions()).plan
    # collections row + its 7 fields rows (id, 4 audit fields, name, email); the table
    # itself is created empty (user collections default to schema-only).
    assert changed(first) == {
        "collections": (1, 0, 0, 0),
        "fields": (7, 0, 0, 0),
        "customers": (0, 0, 0, 1),
    }
    assert migrate(MigrationRequest(dev.url, pre.url, migration_id="p1")).status == "succeeded"

    b.start_all(pre, dev)
    b.assert_boots_cleanly(pre)
    acme = pre.post("customers:create", {"name": "ACME", "email": "ops@acme.test"})
    pre.post(
        "users:create", {"username": "alice", "email": "alice@pre.test", "password": "a1ice-pw"}
    )

    # -- 2. the rest of the builders' work, in development only -----------------------
    build_phase2(dev)
    envs.phase = 2
    dev_fields = {f["name"] for f in dev.list_all("collections/orders/fields")}
    dev_config = config_view(dev)
    dev.stop()
    pre.stop()

    # -- 3. variables: refused while pre-release lacks them, nothing changed ---------
    before = dump(pre.url)
    for attempt in (
        lambda: plan_only(dev.url, pre.url, PlanOptions()),
        lambda: migrate(MigrationRequest(dev.url, pre.url, migration_id="p2")),
    ):
        with pytest.raises(CheckFailed) as err:
            attempt()
        assert err.value.problems == ["variables missing in the target: ERP_BASE, ERP_TOKEN"]
    assert dump(pre.url) == before
    assert rows(pre.url, "ferry_migrations", "id", "result") == [("p1", "succeeded")]

    pre.start()
    pre.sign_in()
    b.declare_variables(pre, PRE_VARS)  # NocoBase encrypts ERP_TOKEN with pre's own key
    pre_config = config_view(pre)
    pre_business = business_view(pre)
    pre.stop()

    # -- 4. the plan lists exactly the development changes ----------------------------
    plan = plan_only(dev.url, pre.url, PlanOptions()).plan
    got = changed(plan)
    expected = {
        # the new user collection: created empty (schema-only), never its rows
        "orders": (0, 0, 0, 1),
        # its collections row, and fields: every orders field + customers.orders (o2m)
        "collections": (1, 0, 0, 0),
        "fields": (len(dev_fields) + 1, 0, 0, 0),
        # the page: a page route + its tab route, their ui-layout links, their
        # materialised tree paths, the page's 8 uiSchemas nodes and 36 closure rows,
        # and the two RouteModel flowModels (+ tree rows) NocoBase adds per route
        "desktopRoutes": (2, 0, 0, 0),
        "desktopRoutesUiLayouts": (2, 0, 0, 0),
        "main_desktopRoutes_path": (2, 0, 0, 0),
        "uiSchemas": (8, 0, 0, 0),
        "uiSchemaTreePath": (36, 0, 0, 0),
        "flowModels": (2, 0, 0, 0),
        "flowModelTreePath": (2, 0, 0, 0),
        # route visibility: admin + member (allowNewMenu) get both routes, the new
        # role gets the page and its tab
        "rolesDesktopRoutes": (6, 0, 0, 0),
        # the role, its main data-source strategy, one resource with two actions,
        # and the AI employees NocoBase grants every new role
        "roles": (1, 0, 0, 0),
        "dataSourcesRoles": (1, 0, 0, 0),
        "dataSourcesRolesResources": (1, 0, 0, 0),
        "dataSourcesRolesResourcesActions": (2, 0, 0, 0),
        "rolesAiEmployees": (6, 0, 0, 0),
        # the workflow and its two nodes
        "workflows": (1, 0, 0, 0),
        "flow_nodes": (2, 0, 0, 0),
        # the one settings row
        "systemSettings": (0, 1, 0, 0),
    }
    assert got == expected
    for table in plan.tables:  # business data and variables never move
        if table.category.value in ("business", "user") or table.table == "environmentVariables":
            assert (table.insert, table.update, table.delete) == (0, 0, 0), table.table
    assert {"rolesUsers", "users", "customers", "environmentVariables"}.isdisjoint(got)

    # -- 5. promote with a pre-migration backup; NocoBase boots on the result --------
    store = FilesystemStore(tmp_path / "store")
    result = migrate(
        MigrationRequest(dev.url, pre.url, migration_id="p2", store=store, environment="pre")
    )
    assert result.status == "succeeded", result.message
    assert result.plan is not None and result.plan.digest == plan.digest and result.backup_id

    pre.start()
    pre.sign_in()
    b.assert_boots_cleanly(pre)
    promoted = config_view(pre)
    assert set(promoted["collections"]["orders"]) == dev_fields
    assert "orders" in promoted["collections"]["customers"]
    assert ("page", " orders page") in promoted["routes"]
    assert promoted["roles"]["sales"] == [("orders", ("update", "view"))]
    assert promoted["workflows"][" on new order"] == (True, ["calculation", "request"])
    assert promoted["settings"] == SETTINGS_TITLE
    assert promoted == dev_config  # the whole view: nothing more, nothing less
    assert business_view(pre) == pre_business  # every business record is still there

    # the promoted workflow runs in pre-release with pre-release's variable values
    later_order = pre.post(
        "orders:create", {"title": "after", "quantity": 2, "customerId": acme["id"]}
    )
    wait_for_log(pre, WORKFLOW_CALL)
    b.assert_boots_cleanly(pre, allowed=(WORKFLOW_CALL,))
    later_customer = pre.post("customers:create", {"name": "Later", "email": "later@pre.test"})
    pre.post("users:create", {"username": "bob", "email": "bob@pre.test", "password": "b0b-pw"})
    after_business = business_view(pre)
    pre.stop()

    # -- 6. roll the migration back: configuration as before, later records kept ------
    # The order written since lives in a table the migration created: dropping it would
    # lose that row, so the rollback first refuses, naming it; forced, it proceeds.
    with pytest.raises(CheckFailed) as refused:
        rollback(store, "p2", pre.url)
    assert [p for p in refused.value.problems if p.startswith("orders:")] == [
        f"orders: row ({later_order['id']}) was added after the migration"
    ], refused.value.problems
    done = rollback(store, "p2", pre.url, force=True)
    assert done.dropped == ("orders",)
    assert set(done.tables) == set(expected) - {"orders"}
    pre.start()
    pre.sign_in()
    b.assert_boots_cleanly(pre)
    assert config_view(pre) == pre_config
    assert business_view(pre) == after_business
    assert later_customer["id"] in {c[0] for c in business_view(pre)["customers"]}
    assert rows(pre.url, "ferry_migrations", "id", "result") == [
        ("p1", "succeeded"),
        ("p2", "rolled-back"),
    ]
    pre.stop()


def test_backup_of_dev_restores_to_an_identical_app(
    envs: Envs, make_app: AppFactory, tmp_path: Path
) -> None:
    dev = envs.dev
    if dev.process is None:
        dev.start()
        dev.sign_in()
    if envs.phase < 2:  # run alone: make the same changes the release cycle makes
        if envs.phase < 1:
            build_phase1(dev)
        build_phase2(dev)
        envs.phase = 2
    store = FilesystemStore(tmp_path / "store")
    manifest, _ = create_backup(dev.url, store, environment="dev")
    assert manifest.app_version == "2.2.15"

    copy = make_app("restored", empty=True)
    restored = restore(store, manifest.id, copy.url)
    assert set(restored.tables) == set(manifest.tables) and not restored.dropped
    # The backup holds the database, not the storage directory: the app needs dev's
    # APP_KEY (issued tokens) and AES key (secret variables) to be the same app.
    copy.app_key, copy.aes_key = dev.app_key, dev.storage_aes_key()
    copy.start()
    copy.sign_in()
    b.assert_boots_cleanly(copy)  # a wrong AES key would log "bad decrypt"

    assert config_view(copy) == config_view(dev)
    for path in (
        "app:getInfo",
        "collections:list?paginate=false&appends[]=fields&sort=name",
        "desktopRoutes:list?paginate=false&sort=id",
        "roles:list?paginate=false&sort=name",
        "workflows:list?paginate=false&sort=id&appends[]=nodes",
        "environmentVariables:list?paginate=false&sort=name",
        "systemSettings:get?filterByTk=1",
        "uiSchemas:getJsonSchema/page",
    ):
        assert copy.get(path) == dev.get(path), path
    # the same token works on both (same APP_KEY, issuedTokens restored)
    copy.token = dev.token
    assert copy.get("auth:check")["id"] == 1
    # serial sequences were moved past the restored rows: new rows get fresh ids
    copy.sign_in()
    user = copy.post("users:create", {"username": "carol", "email": "carol@dev.test"})
    assert user["id"] > max(u["id"] for u in dev.list_all("users"))
    copy.stop()
