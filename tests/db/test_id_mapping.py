"""Merged release with references: rows matched by natural key keep the target's IDs,
and every column that references them (declared in ``references``) follows."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from controller.api.rules import parse_rules
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions
from controller.engine.profiles import Profile
from controller.errors import CheckFailed
from tests.db.dbhelpers import dump, execute, q, rows

MakeDb = Callable[..., str]

RULES = {
    "user": "upsert",
    "tables": [
        {"match": "menus", "rule": "upsert", "key": ["name"], "references": {"parent_id": "menus"}},
        {
            "match": "entries",
            "rule": "upsert",
            "key": ["menu_id", "label"],
            "references": {"menu_id": "menus"},
        },
        {"match": "grants", "rule": "upsert", "references": {"entry_id": "entries"}},
    ],
}


def _schema(url: str, dialect: str) -> None:
    auto = {
        "sqlite": "integer primary key",
        "postgresql": "serial primary key",
        "mysql": "integer auto_increment primary key",
    }[dialect]
    menus, entries, grants = (q(dialect, t) for t in ("menus", "entries", "grants"))
    execute(
        url,
        f"create table {menus} (id {auto}, name varchar(50) not null unique, parent_id integer)",
        f"create table {entries} (id {auto}, menu_id integer not null, label varchar(50) not null,"
        " unique (menu_id, label))",
        f"create table {grants} (entry_id integer not null, role varchar(20) not null,"
        " primary key (entry_id, role))",
    )


def _fill(url: str, dialect: str, menus: list[str], entries: list[str], grants: list[str]) -> None:
    execute(
        url,
        *(f"insert into {q(dialect, 'menus')} (id, name, parent_id) values {v}" for v in menus),
        *(f"insert into {q(dialect, 'entries')} (id, menu_id, label) values {v}" for v in entries),
        *(f"insert into {q(dialect, 'grants')} (entry_id, role) values {v}" for v in grants),
    )


def test_references_follow_rows_matched_to_other_ids(dialect: str, make_database: MakeDb) -> None:
    dev_a, dev_b, pre = (make_database(dialect, n) for n in ("deva", "devb", "pre"))
    for url in (dev_a, dev_b, pre):
        _schema(url, dialect)
    _fill(
        dev_a,
        dialect,
        ["(1, 'home', null)", "(2, 'sales', 1)"],
        ["(1, 2, 'orders')"],
        ["(1, 'admin')"],
    )
    # Team B installed on its own: its "home" is 2, and its IDs 1 and 3 mean other rows.
    _fill(
        dev_b,
        dialect,
        ["(1, 'reports', null)", "(2, 'home', null)", "(3, 'stats', 1)"],
        ["(1, 3, 'weekly')", "(2, 2, 'welcome')"],
        ["(1, 'analyst')", "(2, 'guest')"],
    )
    options = PlanOptions(parse_rules(RULES), Profile.GENERIC)
    assert migrate(MigrationRequest(dev_a, pre, options)).status == "succeeded"

    plan = plan_only(dev_b, pre, options).plan
    menus = plan.table("menus")
    assert menus is not None and (menus.ids_matched, menus.ids_assigned) == (1, 1)
    assert menus.to_dict()["ids"] == {"matched": 1, "assigned": 1}
    entries = plan.table("entries")
    assert entries is not None and (entries.ids_matched, entries.ids_assigned) == (0, 1)
    assert any(n.startswith("menus: 1 row(s) matched by natural key") for n in plan.notes)
    result = migrate(MigrationRequest(dev_b, pre, options))
    assert result.status == "succeeded", result.message

    # B's home (2) is pre's home (1); B's reports (1) took a fresh ID above every ID (4);
    # B's stats (3) kept its free ID, and its parent now names reports' new ID.
    assert rows(pre, "menus", "id", "name", "parent_id") == [
        (1, "home", None),
        (2, "sales", 1),
        (3, "stats", 4),
        (4, "reports", None),
    ]
    # entries' key holds a reference: B's "welcome" under home is (1, welcome) here.
    assert rows(pre, "entries", "id", "menu_id", "label") == [
        (1, 2, "orders"),
        (2, 1, "welcome"),
        (3, 3, "weekly"),
    ]
    assert rows(pre, "grants", "entry_id", "role", order="entry_id") == [
        (1, "admin"),
        (2, "guest"),
        (3, "analyst"),
    ]
    # Planned again, the merged target already holds team B's configuration.
    again = migrate(MigrationRequest(dev_b, pre, options))
    assert again.status == "noop", again.plan.to_dict() if again.plan else again.message
    execute(pre, f"insert into {q(dialect, 'menus')} (name) values ('later')")
    assert rows(pre, "menus", "id")[-1] == (5,)  # the ID generator moved past 4


def test_a_reference_that_cannot_be_followed_is_refused_by_name(
    dialect: str, make_database: MakeDb
) -> None:
    src, tgt = make_database(dialect, "src"), make_database(dialect, "tgt")
    for url in (src, tgt):
        _schema(url, dialect)
    _fill(src, dialect, ["(1, 'home', null)"], [], [])
    before = dump(tgt)
    bad = {
        "user": "upsert",
        "tables": [
            {
                "match": "menus",
                "rule": "upsert",
                "key": ["name"],
                "references": {"parent": "menus"},
            },
            {"match": "grants", "rule": "upsert", "references": {"entry_id": "entry"}},
        ],
    }
    with pytest.raises(CheckFailed) as refused:
        migrate(MigrationRequest(src, tgt, PlanOptions(parse_rules(bad), Profile.GENERIC)))
    assert refused.value.reason == "BadReference"
    assert refused.value.problems == [
        "table grants: references.entry_id: no table entry in the source",
        "table menus: references.parent: no such column in the source",
    ]
    assert dump(tgt) == before
