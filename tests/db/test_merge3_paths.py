"""IDs inside strings on every dialect: a route matched by its natural key under another
ID in the target takes that ID in ``main_desktopRoutes_path.path`` as well."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from controller.api.rules import Merge, Rule, RulesSpec, TableRule
from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions
from tests.db.dbhelpers import execute, q, rows
from tests.fixtures import nocobase_shape as shape

MakeDb = Callable[..., str]


def _paths_table(dialect: str, url: str, *rows_: tuple[int, str, int]) -> None:
    table = q(dialect, "main_desktopRoutes_path")
    execute(
        url,
        f"create table {table} ({q(dialect, 'nodePk')} bigint, path varchar(1024), "
        f"{q(dialect, 'rootPk')} bigint)",
        *(
            f"insert into {table} ({q(dialect, 'nodePk')}, path, {q(dialect, 'rootPk')}) "
            f"values ({n}, '{p}', {r})"
            for n, p, r in rows_
        ),
    )


def _route(dialect: str, id_: int, parent: int | None, uid: str) -> str:
    cols = ", ".join(q(dialect, c) for c in ("id", "parentId", "title", "schemaUid", "type"))
    parent_sql = "null" if parent is None else str(parent)
    values = f"{id_}, {parent_sql}, '{uid}', '{uid}', 'page'"
    return f"insert into {q(dialect, 'desktopRoutes')} ({cols}) values ({values})"


def test_a_materialised_path_follows_the_route_ids(dialect: str, make_database: MakeDb) -> None:
    team, pre = make_database(dialect, "teamb"), make_database(dialect, "pre")
    for url in (team, pre):
        shape.build(url, app="dev", seed=1)
    # the shared group: 700 in the target, 500 in the team's installation
    execute(pre, _route(dialect, 700, None, "grp"))
    _paths_table(dialect, pre, (700, "/700", 700))
    execute(team, _route(dialect, 500, None, "grp"), _route(dialect, 9501, 500, "pg-b"))
    execute(team, _route(dialect, 9502, 9501, "tab-b"))
    _paths_table(
        dialect,
        team,
        (500, "/500", 500),
        (9501, "/500/9501", 500),
        (9502, "/500/9501/9502", 500),
    )
    options = PlanOptions(
        rules=RulesSpec(
            system=Rule.UPSERT,
            ignore_columns=("createdAt", "updatedAt"),
            tables=(
                TableRule("desktopRoutes", Rule.UPSERT, key=("schemaUid",)),
                TableRule("main_desktopRoutes_path", Rule.UPSERT, key=("nodePk",)),
            ),
        )
    )
    result = migrate(MigrationRequest(team, pre, options, migration_id="routes"))
    assert result.status == "succeeded", result.message
    got = rows(pre, "main_desktopRoutes_path", "nodePk", "path", "rootPk", order="nodePk")
    assert [(int(n), p, int(r)) for n, p, r in got] == [
        (700, "/700", 700),
        (9501, "/700/9501", 700),
        (9502, "/700/9501/9502", 700),
    ]
    parents = {int(i): p for i, p in rows(pre, "desktopRoutes", "id", "parentId")}
    assert parents[9501] == 700 and 500 not in parents
    assert not plan_only(team, pre, options).plan.changes_anything


def test_a_merge_without_a_base_says_which_tables_pair_by_generated_id(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    team, pre = make_database(dialect, "teamb"), make_database(dialect, "pre")
    for url in (team, pre):
        shape.build(url, app="dev", seed=1)
    rules = RulesSpec(
        merge=Merge.THREE_WAY,
        system=Rule.UPSERT,
        tables=(TableRule("collections", Rule.UPSERT, key=("name",)),),
    )
    plan = plan_only(team, pre, PlanOptions(rules=rules)).plan
    said = [w for w in plan.warnings if w.startswith("paired by generated ID alone")]
    assert len(said) == 1 and "desktopRoutes" in said[0], plan.warnings
    assert "collections" not in said[0]  # a natural key pairs independent installations
    # once this source has a base, its rows are paired as they were promoted
    store = FilesystemStore(tmp_path / "store")
    create_backup(pre, store, environment="pre")
    options = PlanOptions(rules=rules, base_store=store)
    request = MigrationRequest(team, pre, options, migration_id="first", store=store)
    assert migrate(replace(request, environment="pre")).status == "noop"
    again = plan_only(team, pre, options).plan
    assert not any(w.startswith("paired by generated ID alone") for w in again.warnings)
