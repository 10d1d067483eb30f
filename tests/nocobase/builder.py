"""Builder-style changes made through NocoBase's HTTP API, as the admin UI makes them.

The request bodies are those recorded in ``docs/nocobase-notes.md`` (and
``hack/nocobase/builder-demo.mjs``), driven from Python so the tests own them. Every
name is prefixed, so two development teams can make the "same kind" of change without
colliding by name.
"""

from __future__ import annotations

from typing import Any

from tests.harness import nocobase as nb
from tests.harness.nocobase import NocoBaseApp

ID_FIELD = {
    "name": "id",
    "type": "snowflakeId",
    "interface": "snowflakeId",
    "primaryKey": True,
    "allowNull": False,
    "autoIncrement": False,
    "uiSchema": {
        "type": "number",
        "title": '{{t("ID")}}',
        "x-component": "InputNumber",
        "x-read-pretty": True,
    },
}
AUDIT_FIELDS: list[dict[str, Any]] = [
    {"name": "createdAt", "interface": "createdAt", "type": "date", "field": "createdAt"},
    {
        "name": "createdBy",
        "interface": "createdBy",
        "type": "belongsTo",
        "target": "users",
        "foreignKey": "createdById",
    },
    {"name": "updatedAt", "interface": "updatedAt", "type": "date", "field": "updatedAt"},
    {
        "name": "updatedBy",
        "interface": "updatedBy",
        "type": "belongsTo",
        "target": "users",
        "foreignKey": "updatedById",
    },
]
GENERAL = {
    "logging": True,
    "autoGenId": False,
    "createdAt": True,
    "createdBy": True,
    "updatedAt": True,
    "updatedBy": True,
    "template": "general",
    "view": False,
    "filterTargetKey": "id",
}


def _input(name: str, title: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "string",
        "interface": "input",
        "uiSchema": {"type": "string", "title": title, "x-component": "Input"},
        **extra,
    }


def create_parent_collection(app: NocoBaseApp, p: str) -> None:
    """``<p>customers``: string, unique email — the collection business rows go into."""
    app.post(
        "collections:create",
        {
            **GENERAL,
            "name": f"{p}customers",
            "title": f"{p} customers",
            "titleField": "name",
            "fields": [
                ID_FIELD,
                *AUDIT_FIELDS,
                _input("name", "Name"),
                {
                    "name": "email",
                    "type": "string",
                    "interface": "email",
                    "unique": True,
                    "uiSchema": {"type": "string", "title": "Email", "x-component": "Input"},
                },
            ],
        },
    )


def create_child_collection(app: NocoBaseApp, p: str) -> None:
    """``<p>orders``: string, integer, json, select, a belongsTo and its inverse hasMany."""
    app.post(
        "collections:create",
        {
            **GENERAL,
            "name": f"{p}orders",
            "title": f"{p} orders",
            "titleField": "title",
            "fields": [
                ID_FIELD,
                *AUDIT_FIELDS,
                _input("title", "Title"),
                {
                    "name": "quantity",
                    "type": "integer",
                    "interface": "integer",
                    "uiSchema": {
                        "type": "number",
                        "title": "Quantity",
                        "x-component": "InputNumber",
                    },
                },
                {
                    "name": "meta",
                    "type": "json",
                    "interface": "json",
                    "defaultValue": None,
                    "uiSchema": {"type": "object", "title": "Meta", "x-component": "Input.JSON"},
                },
                {
                    "name": "customer",
                    "type": "belongsTo",
                    "interface": "m2o",
                    "target": f"{p}customers",
                    "foreignKey": "customerId",
                    "targetKey": "id",
                    "onDelete": "SET NULL",
                    "uiSchema": {"title": "Customer", "x-component": "AssociationField"},
                },
            ],
        },
    )
    app.post(
        f"collections/{p}orders/fields:create",
        {
            "name": "status",
            "type": "string",
            "interface": "select",
            "uiSchema": {
                "type": "string",
                "title": "Status",
                "x-component": "Select",
                "enum": [{"value": "new", "label": "New"}, {"value": "done", "label": "Done"}],
            },
        },
    )
    app.post(
        f"collections/{p}customers/fields:create",
        {
            "name": "orders",
            "type": "hasMany",
            "interface": "o2m",
            "target": f"{p}orders",
            "foreignKey": "customerId",
            "sourceKey": "id",
            "targetKey": "id",
            "uiSchema": {"title": "Orders", "x-component": "AssociationField"},
        },
    )


def create_page(app: NocoBaseApp, p: str) -> dict[str, Any]:
    """A classic page: a desktopRoutes page + tab, its uiSchemas tree and a table block."""
    page, tab, tabname = f"{p}page", f"{p}tab", f"{p}tabname"
    route = app.post(
        "desktopRoutes:create",
        {
            "type": "page",
            "title": f"{p} orders page",
            "icon": "ShoppingCartOutlined",
            "schemaUid": page,
            "menuSchemaUid": f"{p}menu",
            "enableTabs": False,
            "hideInMenu": False,
            "children": [
                {
                    "type": "tabs",
                    "title": '{{t("Unnamed")}}',
                    "schemaUid": tab,
                    "tabSchemaName": tabname,
                    "hidden": True,
                }
            ],
        },
    )
    app.post(
        "uiSchemas:insert",
        {
            "type": "void",
            "x-component": "Page",
            "x-uid": page,
            "properties": {
                tabname: {
                    "type": "void",
                    "x-component": "Grid",
                    "x-initializer": "page:addBlock",
                    "x-uid": tab,
                    "x-async": True,
                    "properties": {},
                }
            },
        },
    )
    block = {
        "type": "void",
        "x-uid": f"{p}block",
        "x-decorator": "TableBlockProvider",
        "x-acl-action": f"{p}orders:list",
        "x-decorator-props": {"collection": f"{p}orders", "dataSource": "main", "action": "list"},
        "x-component": "CardItem",
        "properties": {
            "table": {
                "type": "array",
                "x-uid": f"{p}table",
                "x-component": "TableV2",
                "x-component-props": {"rowKey": "id"},
                "properties": {
                    f"{p}colt": {
                        "type": "void",
                        "x-uid": f"{p}colt",
                        "x-decorator": "TableV2.Column.Decorator",
                        "x-component": "TableV2.Column",
                        "properties": {
                            "title": {
                                "x-uid": f"{p}coltf",
                                "x-collection-field": f"{p}orders.title",
                                "x-component": "CollectionField",
                                "x-read-pretty": True,
                            }
                        },
                    }
                },
            }
        },
    }
    app.post(
        f"uiSchemas:insertAdjacent/{tab}?position=beforeEnd",
        {
            "schema": {
                "type": "void",
                "x-uid": f"{p}row",
                "x-component": "Grid.Row",
                "properties": {
                    f"{p}colname": {
                        "type": "void",
                        "x-uid": f"{p}col",
                        "x-component": "Grid.Col",
                        "properties": {f"{p}blockname": block},
                    }
                },
            },
            "wrap": None,
        },
    )
    assert isinstance(route, dict)
    return route


def create_role(app: NocoBaseApp, p: str, route_id: object, *, add_root_user: bool) -> None:
    """A role with a data-source strategy, per-collection action permissions and a menu."""
    role = f"{p}sales"
    app.post(
        "roles:create",
        {
            "name": role,
            "title": f"{p} sales",
            "allowNewMenu": False,
            "snippets": ["!ui.*", "!pm", "!pm.*"],
        },
    )
    app.post(
        f"dataSources/main/roles:update?filterByTk={role}",
        {"strategy": {"actions": ["view", "create"]}},
    )
    app.post(
        f"roles/{role}/dataSourceResources:create",
        {
            "dataSourceKey": "main",
            "name": f"{p}orders",
            "usingActionsConfig": True,
            "actions": [
                {"name": "view", "fields": ["title", "quantity", "status"]},
                {"name": "update", "fields": ["status"]},
            ],
        },
    )
    app.post(f"roles/{role}/desktopRoutes:add", [route_id])
    if add_root_user:  # rolesUsers is business data: must not be promoted
        app.post(f"roles/{role}/users:add", [1])


def declare_variables(app: NocoBaseApp, variables: dict[str, tuple[str, str]]) -> None:
    """``environmentVariables:create`` for ``{name: (type, value)}`` (type default|secret)."""
    for name, (kind, value) in variables.items():
        app.post("environmentVariables:create", {"name": name, "type": kind, "value": value})


def create_workflow(app: NocoBaseApp, p: str, base_var: str, token_var: str) -> dict[str, Any]:
    """A collection-triggered workflow; its request node uses ``{{$env.…}}`` variables."""
    wf = app.post(
        "workflows:create",
        {
            "title": f"{p} on new order",
            "type": "collection",
            "sync": False,
            "enabled": True,
            "config": {
                "mode": 1,
                "collection": f"{p}orders",
                "appends": ["customer"],
                "condition": {"$and": []},
            },
        },
    )
    n1 = app.post(
        f"workflows/{wf['id']}/nodes:create",
        {
            "type": "calculation",
            "title": "Double quantity",
            "upstreamId": None,
            "config": {"engine": "formula.js", "expression": "{{$context.data.quantity}} * 2"},
        },
    )
    app.post(
        f"workflows/{wf['id']}/nodes:create",
        {
            "type": "request",
            "title": "Notify ERP",
            "upstreamId": n1["id"],
            "config": {
                "method": "POST",
                "url": f"{{{{$env.{base_var}}}}}/orders",
                "headers": [{"name": "Authorization", "value": f"Bearer {{{{$env.{token_var}}}}}"}],
                "params": [],
                "data": {"title": "{{$context.data.title}}"},
                "timeout": 5000,
                "ignoreFail": True,
            },
        },
    )
    assert isinstance(wf, dict)
    return wf


def change_settings(app: NocoBaseApp, title: str) -> None:
    app.post(
        "systemSettings:update?filterByTk=1",
        {"title": title, "appLang": "en-US", "enabledLanguages": ["en-US"]},
    )


def start_all(*apps: NocoBaseApp) -> None:
    """Start several applications at once (their boots overlap), then sign in."""
    for app in apps:
        app.start(wait=False)
    for app in apps:
        app.wait_ready()
        app.sign_in()


def assert_boots_cleanly(app: NocoBaseApp, allowed: tuple[str, ...] = ()) -> None:
    problems = nb.log_problems(app.log_text(), allowed)
    assert not problems, f"NocoBase {app.name} logged errors:\n" + "\n".join(problems)
    info = app.get("app:getInfo")
    dialect = nb.NODE_DIALECT[app.server.dialect]
    assert info["version"] == nb.VERSION and info["database"]["dialect"] == dialect


def create_chain_workflow(app: NocoBaseApp, p: str) -> dict[str, Any]:
    """A workflow of five nodes: a calculation, a condition with a node on its "true"
    branch (a branch parent), a calculation after the condition, and a CC node whose
    config names the first node by ID."""
    wf = app.post(
        "workflows:create",
        {
            "title": f"{p} chain",
            "type": "collection",
            "sync": False,
            "enabled": False,
            "config": {"mode": 1, "collection": "users", "condition": {"$and": []}},
        },
    )

    def node(title: str, upstream: object, **extra: Any) -> Any:
        body = {"type": "calculation", "title": f"{p}{title}", "upstreamId": upstream}
        body["config"] = {"engine": "formula.js", "expression": "1 + 1"}
        return app.post(f"workflows/{wf['id']}/nodes:create", {**body, **extra})

    first = node("first", None)
    check = node(
        "check",
        first["id"],
        type="condition",
        config={"rejectOnFalse": False, "engine": "basic", "calculation": {"group": {}}},
    )
    node("on true", check["id"], branchIndex=1)
    last = node("last", check["id"])
    # a CC node showing the first node's result: its config holds that node's ID
    shown = [{"nodeId": first["id"], "nodeKey": first["key"], "nodeType": "node"}]
    node("copy", last["id"], type="cc", config={"tempAssociationFields": shown})
    assert isinstance(wf, dict)
    return wf


def workflow_chain(app: NocoBaseApp, workflow_id: object) -> dict[str, tuple[Any, ...]]:
    """A workflow's nodes as NocoBase serves them: title → (type, upstream title,
    downstream title, branch index, titles a CC config names); IDs replaced by what
    they point at."""
    wf = app.get(f"workflows:get?filterByTk={workflow_id}&appends[]=nodes")
    by_id = {n["id"]: n["title"] for n in wf["nodes"]}

    def title(node_id: object) -> object:  # a link to no node of the workflow shows
        return None if node_id is None else by_id.get(node_id, f"(missing {node_id})")

    def shown(config: Any) -> list[object]:  # the nodes a CC node's config names by ID
        fields = (config or {}).get("tempAssociationFields") or []
        return [title(f["nodeId"]) for f in fields if f.get("nodeType") == "node"]

    return {
        n["title"]: (
            n["type"],
            title(n["upstreamId"]),
            title(n["downstreamId"]),
            n["branchIndex"],
            *shown(n["config"]),
        )
        for n in wf["nodes"]
    }
