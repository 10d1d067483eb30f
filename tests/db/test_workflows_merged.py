"""Workflows of two installations promoted into one, on every dialect, with the shipped
merged-release rules (``upsert``) and with ``merge: threeWay``: paired by key, not by
the generated IDs both installations hold, so both land side by side."""

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
from controller.errors import CheckFailed
from tests.db.dbhelpers import dump, execute, merged_release, q, rows
from tests.fixtures import nocobase_shape as shape

MakeDb = Callable[..., str]
MERGED = Path(__file__).parents[2] / "docs/examples/rules/nocobase-merged-release.yaml"
T = "2026-11-01 10:00:00"


def _workflow(dialect: str, url: str, key: str, ids: tuple[int, int, int], created: str) -> None:
    """A workflow (``ids[0]``) of two chained nodes (``ids[1]``, ``ids[2]``)."""
    wf, first, second = ids
    cols = ", ".join(q(dialect, c) for c in ("id", "key", "title", "current", "createdAt"))
    node_cols = ", ".join(
        q(dialect, c) for c in ("id", "key", "workflowId", "upstreamId", "downstreamId")
    )
    execute(
        url,
        f"insert into workflows ({cols}) values ({wf}, '{key}', '{key} title', true, '{created}')",
        f"insert into flow_nodes ({node_cols}) values "
        f"({first}, 'a', {wf}, null, {second}), ({second}, 'b', {wf}, {first}, null)",
    )


def _chains(url: str) -> dict[str, list[tuple[str, str | None, str | None]]]:
    """Workflow key → its nodes as (key, upstream's key, downstream's key)."""
    keys = dict(rows(url, "workflows", "id", "key"))
    nodes = rows(url, "flow_nodes", "id", "key", "workflowId", "upstreamId", "downstreamId")
    by_id = {n[0]: n for n in nodes}
    out: dict[str, list[tuple[str, str | None, str | None]]] = {}
    for _, key, wf, up, down in nodes:
        link = [by_id[x][1] if x is not None else None for x in (up, down)]
        out.setdefault(keys[wf], []).append((key, link[0], link[1]))
    return {k: sorted(v) for k, v in out.items()}


@pytest.mark.parametrize("three_way", [False, True], ids=["upsert", "threeWay"])
def test_two_installations_workflows_land_side_by_side(
    dialect: str, make_database: MakeDb, tmp_path: Path, three_way: bool
) -> None:
    team, pre = make_database(dialect, "teamb"), make_database(dialect, "pre")
    for url in (team, pre):
        shape.build(url, app="dev", seed=1)
    _workflow(dialect, pre, "pre-own", (50, 100, 101), T)  # the same IDs, another workflow
    _workflow(dialect, team, "team-b", (50, 100, 101), "2026-11-02 09:00:00")
    options, store = merged_release(three_way, tmp_path)
    plan = plan_only(team, pre, options).plan
    counts = {t.table: (t.insert, t.update, t.delete, t.ids_assigned) for t in plan.tables}
    assert counts["workflows"] == (1, 0, 0, 1) and counts["flow_nodes"] == (2, 0, 0, 2)

    result = migrate(MigrationRequest(team, pre, options, migration_id="team-b", store=store))
    assert result.status == "succeeded", result.message
    chains = _chains(pre)
    both = [("a", None, "b"), ("b", "a", None)]
    assert chains["pre-own"] == both and chains["team-b"] == both
    (own,) = [r[0] for r in rows(pre, "workflows", "id", "key") if r[1] == "pre-own"]
    assert own == 50  # the target's row keeps its ID (its executions point at it)
    # promoted again unchanged: the renumbered rows pair by key and creation time
    assert not plan_only(team, pre, options).plan.changes_anything


def test_an_upsert_that_would_leave_two_current_revisions_is_refused(
    dialect: str, make_database: MakeDb
) -> None:
    team, pre = make_database(dialect, "teamb"), make_database(dialect, "pre")
    for url in (team, pre):
        shape.build(url, app="dev", seed=1)
    _workflow(dialect, pre, "shared", (60, 200, 201), T)  # each side its own revision
    _workflow(dialect, team, "shared", (61, 300, 301), "2026-11-02 09:00:00")
    before = dump(pre)
    with pytest.raises(CheckFailed) as refused:
        plan_only(team, pre, PlanOptions(rules=load_rules(str(MERGED))))
    assert refused.value.reason == "BadKey"
    assert "workflows key 'shared': the upsert would leave two current revisions" in str(
        refused.value
    )
    assert "revision 61 from the source, revision 60 in the target" in str(refused.value)
    assert dump(pre) == before


def test_three_way_resolves_two_current_revisions_by_on_conflict(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    """No base, both sides hold a current revision of one workflow: ``onConflict:
    source`` makes the target's non-current and disabled, as NocoBase does itself when
    another revision becomes current."""
    team, pre = make_database(dialect, "teamb"), make_database(dialect, "pre")
    for url in (team, pre):
        shape.build(url, app="dev", seed=1)
    _workflow(dialect, pre, "shared", (60, 200, 201), T)
    _workflow(dialect, team, "shared", (61, 300, 301), "2026-11-02 09:00:00")
    execute(
        pre,
        "update workflows set enabled = true where id = 60",
        # NocoBase's own index: one current revision per key (NULLs do not collide);
        # the write must retire the target's revision before it inserts the source's
        "create unique index workflows_key_current on workflows "
        f"({q(dialect, 'key')}, {q(dialect, 'current')})",
    )
    rules = replace(load_rules(str(MERGED)), merge=Merge.THREE_WAY)
    store = FilesystemStore(tmp_path / "store")
    with pytest.raises(CheckFailed) as refused:
        plan_only(team, pre, PlanOptions(rules=rules, base_store=store))
    assert refused.value.reason == "MergeConflict"
    assert "table workflows, key ('shared'), column current" in str(refused.value)
    source_wins = TableRule("workflows", Rule.UPSERT, on_conflict=OnConflict.SOURCE)
    options = PlanOptions(
        rules=replace(rules, tables=(*rules.tables, source_wins)), base_store=store
    )
    result = migrate(MigrationRequest(team, pre, options, migration_id="team-b", store=store))
    assert result.status == "succeeded", result.message
    revisions = {
        r[0]: (bool(r[1]), bool(r[2]))
        for r in rows(pre, "workflows", "id", "current", "enabled")
        if r[0] >= 60
    }
    assert revisions[60] == (False, False)  # the target's: kept, no longer in use
    assert sorted(revisions) == [60, 61] and revisions[61][0] is True
