"""Every rule, natural keys and schema sync, applied to real databases of each dialect."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from controller.api.rules import Rule, RulesSpec, TableRule, parse_rules
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions
from controller.engine.profiles import Profile
from controller.errors import CheckFailed
from tests.db.dbhelpers import dump, execute, q, rows

MakeDb = Callable[..., str]


def _items(url: str, dialect: str, data: list[tuple[int, str, str]]) -> None:
    t = q(dialect, "items")
    auto = (
        "integer primary key"
        if dialect == "sqlite"
        else (
            "serial primary key"
            if dialect == "postgresql"
            else "integer auto_increment primary key"
        )
    )
    execute(
        url, f"create table {t} (id {auto}, name varchar(100) not null unique, title varchar(200))"
    )
    for i, name, title in data:
        execute(url, f"insert into {t} (id, name, title) values ({i}, '{name}', '{title}')")


SOURCE = [(1, "home", "Home"), (2, "orders", "Orders v2"), (3, "new", "New")]
TARGET = [(1, "home", "Home"), (2, "orders", "Orders"), (4, "old", "Old")]
EXPECTED = {
    Rule.OVERWRITE: [(1, "home", "Home"), (2, "orders", "Orders v2"), (3, "new", "New")],
    Rule.UPSERT: [
        (1, "home", "Home"),
        (2, "orders", "Orders v2"),
        (3, "new", "New"),
        (4, "old", "Old"),
    ],
    Rule.INSERT_IGNORE: [
        (1, "home", "Home"),
        (2, "orders", "Orders"),
        (3, "new", "New"),
        (4, "old", "Old"),
    ],
    Rule.SCHEMA_ONLY: TARGET,
    Rule.SKIP: TARGET,
}


@pytest.mark.parametrize("rule", list(Rule), ids=[r.value for r in Rule])
def test_each_rule(rule: Rule, dialect: str, make_database: MakeDb) -> None:
    src, tgt = make_database(dialect, "src"), make_database(dialect, "tgt")
    _items(src, dialect, SOURCE)
    _items(tgt, dialect, TARGET)
    options = PlanOptions(RulesSpec(user=rule), Profile.GENERIC)
    result = migrate(MigrationRequest(src, tgt, options))
    expected_status = "noop" if rule in (Rule.SCHEMA_ONLY, Rule.SKIP) else "succeeded"
    assert result.status == expected_status, result.message
    assert rows(tgt, "items", "id", "name", "title") == EXPECTED[rule]


def test_merged_release_matches_on_natural_key(dialect: str, make_database: MakeDb) -> None:
    """Two developers created rows with colliding IDs; upsert on `name` merges them."""
    dev_a, dev_b, pre = (make_database(dialect, n) for n in ("deva", "devb", "pre"))
    _items(dev_a, dialect, [(1, "home", "Home"), (2, "tickets", "Tickets")])
    _items(dev_b, dialect, [(1, "home", "Home (B)"), (2, "reports", "Reports")])
    _items(pre, dialect, [(1, "home", "Home")])
    rules = RulesSpec(user=Rule.UPSERT, tables=(TableRule("items", Rule.UPSERT, ("name",)),))
    options = PlanOptions(rules, Profile.GENERIC)
    assert migrate(MigrationRequest(dev_a, pre, options)).status == "succeeded"
    result = migrate(MigrationRequest(dev_b, pre, options))
    assert result.status == "succeeded", result.message
    got = rows(pre, "items", "name", "title", order="name")
    assert got == [("home", "Home (B)"), ("reports", "Reports"), ("tickets", "Tickets")]
    ids = [r[0] for r in rows(pre, "items", "id")]
    assert len(set(ids)) == 3  # the colliding ID 2 was re-assigned, nothing overwritten
    execute(pre, f"insert into {q(dialect, 'items')} (name, title) values ('later', 'x')")
    assert len(rows(pre, "items", "id")) == 4  # the ID sequence moved past every ID


def test_schema_sync_adds_tables_and_columns(dialect: str, make_database: MakeDb) -> None:
    src, tgt = make_database(dialect, "src"), make_database(dialect, "tgt")
    _items(src, dialect, SOURCE)
    _items(tgt, dialect, TARGET)
    execute(
        src,
        f"alter table {q(dialect, 'items')} add column icon varchar(50)",
        f"update {q(dialect, 'items')} set icon = 'star' where id = 1",
        f"create table {q(dialect, 'extra')} (id integer primary key, note text)",
        f"create index ix_items_title on {q(dialect, 'items')} (title)",
    )
    options = PlanOptions(RulesSpec(user=Rule.OVERWRITE), Profile.GENERIC)
    result = migrate(MigrationRequest(src, tgt, options))
    assert result.status == "succeeded", result.message
    assert rows(tgt, "items", "id", "icon") == [(1, "star"), (2, None), (3, None)]
    assert rows(tgt, "extra", "id", "note") == []
    after = migrate(MigrationRequest(src, tgt, options))
    assert after.status == "noop"


def test_destructive_changes_refused_unless_allowed(dialect: str, make_database: MakeDb) -> None:
    src, tgt = make_database(dialect, "src"), make_database(dialect, "tgt")
    t = q(dialect, "items")
    execute(
        src,
        f"create table {t} (id integer primary key, amount varchar(10))",
        f"insert into {t} values (1, 'abc')",
    )
    execute(
        tgt,
        f"create table {t} (id integer primary key, amount integer, legacy text)",
        f"insert into {t} values (1, 5, 'keep me')",
    )
    before = dump(tgt)
    options = PlanOptions(RulesSpec(user=Rule.OVERWRITE), Profile.GENERIC)
    if dialect == "sqlite":
        # SQLite stores any value in any column: the difference is reported, not blocking.
        plan = plan_only(src, tgt, options).plan
        assert any("amount" in w and "SQLite" in w for w in plan.warnings)
    else:
        with pytest.raises(CheckFailed) as err:
            migrate(MigrationRequest(src, tgt, options))
        assert "amount" in str(err.value) and "allowDestructive" in str(err.value)
        assert dump(tgt) == before
    allowed = PlanOptions(RulesSpec(user=Rule.OVERWRITE, allow_destructive=True), Profile.GENERIC)
    result = migrate(MigrationRequest(src, tgt, allowed))
    assert result.status == "succeeded", result.message
    assert rows(tgt, "items", "id", "amount") == [(1, "abc")]
    assert [c for c, _ in dump(tgt)["items"]["columns"]] == ["id", "amount"]


def test_postgresql_only_types_survive_a_promotion(make_database: MakeDb) -> None:
    """Intervals, arrays and time zones of PostgreSQL arrive unchanged (same dialect)."""
    src, tgt = make_database("postgresql", "src"), make_database("postgresql", "tgt")
    execute(
        src,
        "create table odd (id integer primary key, span interval, tags text[], at timetz)",
        "insert into odd values (1, '1 day 02:03:04', '{a,b}', '10:00:00+02')",
    )
    options = PlanOptions(RulesSpec(user=Rule.OVERWRITE), Profile.GENERIC)
    result = migrate(MigrationRequest(src, tgt, options))
    assert result.status == "succeeded", result.message
    assert rows(tgt, "odd", "id", "span", "tags", "at") == rows(
        src, "odd", "id", "span", "tags", "at"
    )


def test_every_keyless_table_is_named_at_once(tmp_path: Path) -> None:
    src, tgt = f"sqlite:///{tmp_path}/s.db", f"sqlite:///{tmp_path}/t.db"
    for url in (src, tgt):
        execute(url, "create table a (x integer)", "create table b (y integer)")
    options = PlanOptions(RulesSpec(user=Rule.UPSERT), Profile.GENERIC)
    with pytest.raises(CheckFailed) as err:
        plan_only(src, tgt, options)
    assert len(err.value.problems) == 2
    assert "table a" in err.value.problems[0] and "table b" in err.value.problems[1]


def test_ignored_columns_do_not_make_rows_changed_but_travel_with_them(
    dialect: str, make_database: MakeDb
) -> None:
    """Audit timestamps differ between installations: ``ignoreColumns`` keeps them out of
    the plan, and a row that changed for another reason still brings the source's."""
    src, tgt = make_database(dialect, "src"), make_database(dialect, "tgt")
    t = q(dialect, "items")
    for url, stamp in ((src, "2026-01-02"), (tgt, "2025-06-30")):
        execute(
            url,
            f"create table {t} (id integer primary key, name varchar(50), stamp varchar(20))",
            f"insert into {t} values (1, 'home', '{stamp}'), (2, 'orders', '{stamp}')",
        )
    execute(src, f"update {t} set name = 'orders v2' where id = 2")
    rules = {"user": "upsert", "ignoreColumns": ["stamp"]}
    options = PlanOptions(parse_rules(rules), Profile.GENERIC)
    plan = plan_only(src, tgt, options).plan
    assert plan.totals["update"] == 1 and plan.totals["unchanged"] == 1
    assert plan.tables[0].to_dict()["ignore"] == ["stamp"]
    result = migrate(MigrationRequest(src, tgt, options))
    assert result.status == "succeeded", result.message
    assert rows(tgt, "items", "id", "name", "stamp") == [
        (1, "home", "2025-06-30"),  # unchanged but for the ignored column: left alone
        (2, "orders v2", "2026-01-02"),  # changed: the whole source row, stamp included
    ]
    assert migrate(MigrationRequest(src, tgt, options)).status == "noop"
    counted = plan_only(src, tgt, PlanOptions(parse_rules({"user": "upsert"}), Profile.GENERIC))
    assert counted.plan.totals["update"] == 1  # without ignoreColumns, row 1 differs
