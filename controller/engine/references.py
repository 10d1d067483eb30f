"""Which columns hold another table's ID: declared in the rules, known for NocoBase.

A reference matters when its parent table is matched by a natural key: a source row and
its target counterpart may then carry different IDs (each environment generates its
own), and every column that holds such an ID must follow (see ``engine.idmap``).
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.engine.catalog import underscored
from controller.engine.model import DatabaseSchema
from controller.engine.profiles import Profile

# (table, column) → referenced table, for NocoBase's built-in configuration tables
# whose rows point at other rows by a generated ID (snowflake or serial).
NOCOBASE_REFERENCES: Mapping[tuple[str, str], str] = {
    ("desktopRoutes", "parentId"): "desktopRoutes",
    ("desktopRoutesUiLayouts", "desktopRouteId"): "desktopRoutes",
    ("rolesDesktopRoutes", "desktopRouteId"): "desktopRoutes",
    ("main_desktopRoutes_path", "nodePk"): "desktopRoutes",
    ("main_desktopRoutes_path", "rootPk"): "desktopRoutes",
    ("mobileRoutes", "parentId"): "mobileRoutes",
    ("rolesMobileRoutes", "mobileRouteId"): "mobileRoutes",
    ("main_mobileRoutes_path", "nodePk"): "mobileRoutes",
    ("main_mobileRoutes_path", "rootPk"): "mobileRoutes",
    ("dataSourcesRolesResourcesActions", "rolesResourceId"): "dataSourcesRolesResources",
    ("dataSourcesRolesResourcesActions", "scopeId"): "dataSourcesRolesResourcesScopes",
    ("flow_nodes", "workflowId"): "workflows",
    ("flow_nodes", "upstreamId"): "flow_nodes",
    ("flow_nodes", "downstreamId"): "flow_nodes",
}

# (table, column) → referenced table, for columns holding a materialised path of IDs
# ("/1/5/9": the root's ID to the row's own), as NocoBase's tree collections keep them.
NOCOBASE_PATHS: Mapping[tuple[str, str], str] = {
    ("main_desktopRoutes_path", "path"): "desktopRoutes",
    ("main_mobileRoutes_path", "path"): "mobileRoutes",
}

References = dict[str, dict[str, str]]  # table → {column → referenced table}


def profile_references(
    profile: Profile, schema: DatabaseSchema, known: Mapping[tuple[str, str], str] | None = None
) -> References:
    """The profile's known references that exist in ``schema`` (either naming style);
    ``known``: another list than :data:`NOCOBASE_REFERENCES` (:data:`NOCOBASE_PATHS`)."""
    if profile is not Profile.NOCOBASE:
        return {}
    found: References = {}
    for (table, column), parent in (NOCOBASE_REFERENCES if known is None else known).items():
        for naming in (lambda n: n, underscored):
            t, c, p = naming(table), naming(column), naming(parent)
            schema_table = schema.table(t)
            if schema_table is not None and schema_table.column(c) is not None:
                found.setdefault(t, {})[c] = p
                break
    return found


def merged(defaults: References, declared: Mapping[str, tuple[tuple[str, str], ...]]) -> References:
    """The profile's references, with each table's declared ones added (declared win)."""
    out = {table: dict(cols) for table, cols in defaults.items()}
    for table, pairs in declared.items():
        out.setdefault(table, {}).update(dict(pairs))
    return {table: cols for table, cols in out.items() if cols}
