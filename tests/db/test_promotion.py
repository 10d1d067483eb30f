"""Promotions between NocoBase-shaped databases on every dialect, with the CLI's engine."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.api.rules import Rule, RulesSpec, TableRule
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions
from controller.errors import CheckFailed
from tests.db.dbhelpers import dump, execute, q, rows
from tests.fixtures import nocobase_shape as shape

VARS = {"HOOK_TOKEN": ("secret", "t0k"), "TICKET_WEBHOOK": ("plain", "https://hooks.test/x")}
MakeDb = Callable[..., str]


@pytest.fixture
def envs(dialect: str, make_database: MakeDb) -> tuple[str, str]:
    dev = make_database(dialect, "dev")
    pre = make_database(dialect, "pre")
    shape.build(dev, app="dev", seed=1)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", seed=1, variables=VARS)
    return dev, pre


def test_promotion_applies_exactly_the_builders_changes(envs: tuple[str, str]) -> None:
    dev, pre = envs
    plan = plan_only(dev, pre, PlanOptions()).plan
    changed = {t.table: (t.insert, t.update, t.delete) for t in plan.tables if t.changes_anything}
    assert changed.pop("tickets") == (0, 0, 0)  # new user collection: structure only
    assert changed == {
        "collections": (1, 0, 0),
        "fields": (4, 0, 0),
        "uiSchemas": (2, 0, 0),
        "desktopRoutes": (2, 0, 0),
        "roles": (1, 0, 0),
        "flow_nodes": (0, 1, 0),
        "systemSettings": (0, 1, 0),
    }
    assert not any(t.table in ("orders", "users") and t.changes_anything for t in plan.tables)
    business_before = rows(pre, "orders", "id", "title", "amount")
    users_before = rows(pre, "users", "id", "username")

    result = migrate(MigrationRequest(dev, pre, migration_id="promo-1"))
    assert result.status == "succeeded", result.message
    assert result.plan is not None and result.plan.digest == plan.digest

    again = plan_only(dev, pre, PlanOptions()).plan
    assert not again.changes_anything
    assert rows(pre, "orders", "id", "title", "amount") == business_before
    assert rows(pre, "users", "id", "username") == users_before
    assert rows(pre, "roles", "name", order="name") == [
        ("admin",),
        ("member",),
        ("root",),
        ("support",),
    ]


def test_same_migration_id_applies_once(envs: tuple[str, str], dialect: str) -> None:
    dev, pre = envs
    assert migrate(MigrationRequest(dev, pre, migration_id="once")).status == "succeeded"
    before = dump(pre)
    execute(dev, f"update {q(dialect, 'roles')} set title = 'Changed later'")
    second = migrate(MigrationRequest(dev, pre, migration_id="once"))
    assert second.status == "noop" and "already applied" in second.message
    assert dump(pre) == before
    ledger = rows(pre, "ferry_migrations", "id", "result", order="id")
    assert ledger == [("once", "succeeded")]


def test_missing_variable_refused_before_any_change(dialect: str, make_database: MakeDb) -> None:
    dev, pre = make_database(dialect, "dev"), make_database(dialect, "pre")
    shape.build(dev, app="dev")
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables={})  # neither HOOK_TOKEN nor TICKET_WEBHOOK
    before = dump(pre)
    with pytest.raises(CheckFailed) as err:
        migrate(MigrationRequest(dev, pre))
    assert "HOOK_TOKEN" in str(err.value) and "TICKET_WEBHOOK" in str(err.value)
    assert dump(pre) == before
    # Declared through a variables list instead of the target's table, it proceeds.
    ok = migrate(
        MigrationRequest(
            dev, pre, PlanOptions(variables=frozenset({"HOOK_TOKEN", "TICKET_WEBHOOK"}))
        )
    )
    assert ok.status == "succeeded"


def test_strict_mode_refuses_unclassified_tables(envs: tuple[str, str], dialect: str) -> None:
    dev, pre = envs
    execute(dev, f"create table {q(dialect, 'pluginScratch')} (id integer primary key)")
    lenient = plan_only(dev, pre, PlanOptions()).plan
    assert any("pluginScratch" in w for w in lenient.warnings)
    with pytest.raises(CheckFailed) as err:
        plan_only(dev, pre, PlanOptions(rules=RulesSpec(strict=True)))
    assert "pluginScratch" in str(err.value)
    covered = RulesSpec(strict=True, tables=(TableRule("plugin*", Rule.OVERWRITE),))
    assert plan_only(dev, pre, PlanOptions(rules=covered)).plan.table("pluginScratch")


def test_fault_mid_apply_leaves_target_untouched(envs: tuple[str, str], dialect: str) -> None:
    """Without a backup store: the transaction is the only undo (MariaDB keeps its DDL)."""
    dev, pre = envs
    before = dump(pre)

    def fault(step: str) -> None:
        if step == "rows:uiSchemas":
            raise_io()

    result = migrate(MigrationRequest(dev, pre, migration_id="boom", fault=fault))
    assert "injected" in result.message
    after = dump(pre)
    ledger = after.pop("ferry_migrations", None)
    before.pop("ferry_migrations", None)
    if dialect == "mysql":
        # DDL (the new tickets table) commits implicitly; every row change rolled back.
        assert result.status == "failed" and not result.target_untouched
        after.pop("tickets")
    else:
        assert result.status == "rolled-back" and result.target_untouched
    assert after == before
    assert ledger is not None
    assert [(r[0], r[3]) for r in ledger["rows"]] == [("boom", result.status)]
    assert migrate(MigrationRequest(dev, pre, migration_id="boom")).status == "succeeded"


def raise_io() -> None:
    from controller.errors import PermanentError

    raise PermanentError("injected failure")
