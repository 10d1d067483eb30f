"""A rollback undoes what the migration wrote, at the level it wrote it, and nothing else.

Each test migrates a development database into a production one on a real server of
each dialect, lets "production users" write afterwards — into old columns, into the
columns and tables the migration added, into rows it wrote and rows it did not — and
rolls back, without and with ``--force``, checking every row and column.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.api.rules import Rule, RulesSpec, TableRule
from controller.backups.store import FilesystemStore
from controller.commands.migrate import MigrationRequest, migrate
from controller.commands.planning import PlanOptions
from controller.commands.rollback import rollback
from controller.engine.profiles import Profile
from controller.errors import CheckFailed
from tests.db.dbhelpers import dump, execute, q, rows

MakeDb = Callable[..., str]
Released = tuple[Rule, str, FilesystemStore]
ROW_RULES = [Rule.OVERWRITE, Rule.UPSERT, Rule.INSERT_IGNORE, Rule.SCHEMA_ONLY]

BASE_CONFIG = [(1, "home", "Home"), (2, "orders", "Orders"), (3, "legacy", "Legacy")]
BASE_CONFIG += [(4, "keep", "Keep")]


def _base(url: str, dialect: str) -> None:
    config, orders = q(dialect, "config"), q(dialect, "orders")
    execute(
        url,
        f"create table {config} (id integer primary key, name varchar(100) not null unique, "
        "title varchar(200))",
        f"create table {orders} (id integer primary key, customer varchar(100), amount integer)",
        *[f"insert into {config} values ({i}, '{n}', '{t}')" for i, n, t in BASE_CONFIG],
        f"insert into {orders} values (1, 'ann', 10)",
        f"insert into {orders} values (2, 'bob', 20)",
    )


def _develop(url: str, dialect: str) -> None:
    """The builders' changes: a field on config and on orders, an index, a new table."""
    config, orders, labels = q(dialect, "config"), q(dialect, "orders"), q(dialect, "labels")
    execute(
        url,
        f"alter table {config} add column color varchar(20)",
        f"update {config} set title = 'Orders v2', color = 'red' where id = 2",
        f"insert into {config} values (5, 'reports', 'Reports', 'blue')",
        f"delete from {config} where id = 3",
        f"alter table {orders} add column priority integer",
        f"create index ix_orders_priority on {orders} (priority)",
        f"create table {labels} (id integer primary key, text varchar(50))",
        f"insert into {labels} values (1, 'new')",
    )


def _options(rule: Rule, allow_destructive: bool = False) -> PlanOptions:
    tables = (TableRule("config", rule), TableRule("labels", Rule.OVERWRITE))
    spec = RulesSpec(tables=tables, allow_destructive=allow_destructive)
    return PlanOptions(spec, Profile.GENERIC)


@pytest.fixture
def released(
    dialect: str, make_database: MakeDb, tmp_path: Path, request: pytest.FixtureRequest
) -> Released:
    rule: Rule = request.param
    dev, prod = make_database(dialect, "dev"), make_database(dialect, "prod")
    _base(dev, dialect)
    _base(prod, dialect)
    _develop(dev, dialect)
    store = FilesystemStore(tmp_path / "store")
    result = migrate(MigrationRequest(dev, prod, _options(rule), migration_id="rel", store=store))
    assert result.status == "succeeded", result.message
    return rule, prod, store


def _production_writes(url: str, dialect: str, rule: Rule) -> set[str]:
    """Business writes after the release; returns the later edits a rollback must list."""
    config, orders, labels = q(dialect, "config"), q(dialect, "orders"), q(dialect, "labels")
    execute(
        url,
        f"insert into {orders} (id, customer, amount) values (3, 'cy', 30)",
        f"insert into {orders} (id, customer, amount, priority) values (4, 'dee', 40, 2)",
        f"update {orders} set amount = 11 where id = 1",
        f"update {orders} set priority = 5 where id = 2",
        f"update {config} set title = 'Keep (prod)' where id = 4",
        f"insert into {config} (id, name, title) values (6, 'prodonly', 'Prod only')",
        f"update {config} set color = 'green' where id = 1",
        f"insert into {labels} values (2, 'prod')",
    )
    edits = {
        "orders: row (2) column priority was written after the migration",
        "orders: row (4) column priority was written after the migration",
        "config: row (1) column color was written after the migration",
        "labels: row (2) was added after the migration",
    }
    if rule in (Rule.OVERWRITE, Rule.UPSERT):
        execute(url, f"update {config} set title = 'Orders v2 (prod)' where id = 2")
        edits.add("config: row (2) was changed after the migration")
    return edits


def _columns(url: str, table: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [c["name"] for c in sa.inspect(conn).get_columns(table)]
    finally:
        engine.dispose()


def _indexes(url: str, table: str) -> set[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return {str(i["name"]) for i in sa.inspect(conn).get_indexes(table)}
    finally:
        engine.dispose()


# Config after a forced rollback, whatever the rule: what the migration wrote is back as
# it was (5 gone, 2 and 3 as before); the production row it did not write (6) and the
# edit to a row it did not write (4) stay.
CONFIG_AFTER = [
    (1, "home", "Home"),
    (2, "orders", "Orders"),
    (3, "legacy", "Legacy"),
    (4, "keep", "Keep (prod)"),
    (6, "prodonly", "Prod only"),
]


@pytest.mark.parametrize("released", ROW_RULES, ids=[r.value for r in ROW_RULES], indirect=True)
def test_later_edits_are_listed_and_nothing_changes(released: Released, dialect: str) -> None:
    rule, prod, store = released
    expected = _production_writes(prod, dialect, rule)
    before = dump(prod)
    with pytest.raises(CheckFailed) as err:
        rollback(store, "rel", prod)
    assert set(err.value.problems) == expected
    assert dump(prod) == before


@pytest.mark.parametrize("released", ROW_RULES, ids=[r.value for r in ROW_RULES], indirect=True)
def test_forced_rollback_discards_only_the_listed_edits(released: Released, dialect: str) -> None:
    rule, prod, store = released
    expected = _production_writes(prod, dialect, rule)
    done = rollback(store, "rel", prod, force=True)
    assert set(done.later_edits) == expected
    assert done.dropped == ("labels",)
    assert "labels" not in dump(prod)
    assert _columns(prod, "orders") == ["id", "customer", "amount"]
    assert "ix_orders_priority" not in _indexes(prod, "orders")
    assert rows(prod, "orders", "id", "customer", "amount") == [
        (1, "ann", 11),
        (2, "bob", 20),
        (3, "cy", 30),
        (4, "dee", 40),
    ]
    assert _columns(prod, "config") == ["id", "name", "title"]
    assert rows(prod, "config", "id", "name", "title") == CONFIG_AFTER
    assert rows(prod, "ferry_migrations", "id", "result") == [("rel", "rolled-back")]


@pytest.mark.parametrize("released", [Rule.OVERWRITE], ids=["overwrite"], indirect=True)
def test_business_rows_alone_need_no_force(released: Released, dialect: str) -> None:
    """Rows added and old columns edited since are not later edits: they survive."""
    _rule, prod, store = released
    orders, config = q(dialect, "orders"), q(dialect, "config")
    execute(
        prod,
        f"insert into {orders} (id, customer, amount) values (7, 'eve', 70)",
        f"update {orders} set customer = 'ann b.' where id = 1",
        f"update {config} set title = 'Home (prod)' where id = 1",
        f"delete from {orders} where id = 2",
    )
    done = rollback(store, "rel", prod)
    assert not done.later_edits
    assert rows(prod, "orders", "id", "customer", "amount") == [(1, "ann b.", 10), (7, "eve", 70)]
    assert rows(prod, "config", "id", "title") == [
        (1, "Home (prod)"),
        (2, "Orders"),
        (3, "Legacy"),
        (4, "Keep"),
    ]


def test_destructive_changes_come_back_with_their_values(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    """A dropped column and a narrowed one are restored from the backup, values and all;
    rows written since keep theirs."""
    dev, prod = make_database(dialect, "dev"), make_database(dialect, "prod")
    _base(dev, dialect)
    _base(prod, dialect)
    orders = q(dialect, "orders")
    narrow = {
        "postgresql": f"alter table {orders} alter column customer type varchar(10)",
        "mysql": f"alter table {orders} modify column customer varchar(10)",
    }
    execute(dev, f"alter table {orders} drop column amount")
    if dialect in narrow:
        execute(dev, narrow[dialect])
    store = FilesystemStore(tmp_path / "store")
    options = PlanOptions(RulesSpec(allow_destructive=True), Profile.GENERIC)
    result = migrate(MigrationRequest(dev, prod, options, migration_id="drop", store=store))
    assert result.status == "succeeded", result.message
    assert _columns(prod, "orders") == ["id", "customer"]
    execute(prod, f"insert into {orders} (id, customer) values (3, 'cy')")
    done = rollback(store, "drop", prod)
    assert not done.later_edits
    assert _columns(prod, "orders") == ["id", "customer", "amount"]
    assert rows(prod, "orders", "id", "customer", "amount") == [
        (1, "ann", 10),
        (2, "bob", 20),
        (3, "cy", None),
    ]
    if dialect in narrow:
        assert dump(prod)["orders"]["columns"][1][1].upper().startswith("VARCHAR(100)")


def test_a_missing_record_refuses_naming_the_tables(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    dev, prod = make_database(dialect, "dev"), make_database(dialect, "prod")
    _base(dev, dialect)
    _base(prod, dialect)
    _develop(dev, dialect)
    store = FilesystemStore(tmp_path / "store")
    result = migrate(
        MigrationRequest(dev, prod, _options(Rule.OVERWRITE), migration_id="rel", store=store)
    )
    for path in (tmp_path / "store").rglob("post"):
        for item in path.rglob("*"):
            if item.is_file():
                item.unlink()
    before = dump(prod)
    with pytest.raises(CheckFailed) as err:
        rollback(store, "rel", prod, force=True)
    assert "config" in err.value.message and "orders" in err.value.message
    assert result.backup_id and dump(prod) == before


@pytest.mark.parametrize("released", [Rule.OVERWRITE], ids=["overwrite"], indirect=True)
def test_a_damaged_backup_refuses_before_anything_changes(
    released: Released, dialect: str, tmp_path: Path
) -> None:
    _rule, prod, store = released
    members = sorted((tmp_path / "store").rglob("*config*.arrow"))
    assert members, "the pre-migration backup has a member for config"
    damaged = bytearray(members[0].read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    members[0].write_bytes(bytes(damaged))
    before = dump(prod)
    with pytest.raises(CheckFailed) as err:
        rollback(store, "rel", prod, force=True)
    assert err.value.reason == "BackupCorrupted"
    assert dump(prod) == before
    assert not [m for m in store.manifests() if m.reason == "pre-restore"]
