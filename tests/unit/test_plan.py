"""The plan as a pure function: counts per rule, natural keys, digest determinism."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from controller.api.rules import Rule
from controller.engine.catalog import Category
from controller.engine.indexing import source_shape
from controller.engine.model import Column, ColumnType, DatabaseSchema, Kind, TableSchema
from controller.engine.plan import Plan, build_plan, key_spec
from controller.engine.render import plan_json, plan_markdown, plan_text
from controller.engine.rowindex import RowShape, build_index
from controller.engine.rules import Resolved
from controller.errors import CheckFailed, InvalidInput

ROUTES = TableSchema(
    "desktopRoutes",
    (
        Column("id", ColumnType(Kind.BIGINT), nullable=False, autoincrement=True),
        Column("name", ColumnType(Kind.STRING, length=255)),
        Column("title", ColumnType(Kind.STRING, length=255)),
    ),
    primary_key=("id",),
)


def _plan(
    rule: Rule,
    source_rows: Sequence[tuple[Any, ...]],
    target_rows: Sequence[tuple[Any, ...]],
    key: tuple[str, ...] = (),
) -> Plan:
    schema = DatabaseSchema("sqlite", "3", {"desktopRoutes": ROUTES})
    res = Resolved("desktopRoutes", rule, key, Category.SYSTEM, "test")
    ks = key_spec(res, ROUTES, ROUTES)
    types = [c.type for c in ROUTES.columns]

    def index(rows: Sequence[tuple[Any, ...]], side: str) -> Any:
        shape = RowShape(
            "desktopRoutes",
            ROUTES.column_names,
            types,
            key_columns=ks.key,
            compared_columns=ks.compared,
            pk_columns=ks.pk,
            side=side,
        )
        return build_index(shape, [list(rows)])

    return build_plan(
        schema,
        schema,
        {"desktopRoutes": res},
        {"desktopRoutes": ks},
        {"desktopRoutes": index(source_rows, "source")},
        {"desktopRoutes": index(target_rows, "target")},
        allow_destructive=False,
        warnings=[],
    )


SRC = [(1, "home", "Home"), (2, "orders", "Orders v2"), (3, "new", "New")]
TGT = [(1, "home", "Home"), (2, "orders", "Orders"), (4, "old", "Old")]


@pytest.mark.parametrize(
    ("rule", "counts"),
    [
        (Rule.OVERWRITE, (1, 1, 1, 1)),
        (Rule.UPSERT, (1, 1, 0, 1)),
        (Rule.INSERT_IGNORE, (1, 0, 0, 2)),
        (Rule.SCHEMA_ONLY, (0, 0, 0, 0)),
    ],
)
def test_counts_per_rule(rule: Rule, counts: tuple[int, int, int, int]) -> None:
    t = _plan(rule, SRC, TGT).tables[0]
    assert (t.insert, t.update, t.delete, t.unchanged) == counts


def test_digest_is_deterministic_and_tracks_data() -> None:
    a = _plan(Rule.OVERWRITE, SRC, TGT)
    b = _plan(Rule.OVERWRITE, list(reversed(SRC)), TGT)
    assert a.digest == b.digest and a.digest.startswith("sha256:")
    changed = _plan(Rule.OVERWRITE, [*SRC[:2], (3, "new", "Newer")], TGT)
    assert changed.digest != a.digest
    target_changed = _plan(Rule.OVERWRITE, SRC, [*TGT[:2], (4, "old", "Older")])
    assert target_changed.digest != a.digest
    assert _plan(Rule.UPSERT, SRC, TGT).digest != a.digest


def test_natural_key_matches_across_colliding_ids() -> None:
    # Two development environments created different routes with the same ID 5.
    source = [(5, "tickets", "Tickets"), (7, "home", "Home!")]
    target = [(5, "reports", "Reports"), (2, "home", "Home")]
    t = _plan(Rule.UPSERT, source, target, key=("name",)).tables[0]
    assert (t.insert, t.update, t.delete, t.kept) == (1, 1, 0, 1)
    assert t.changes is not None and len(t.changes.remap) == 1  # ID 5 is taken
    assert any("new primary key" in w for w in t.warnings)


def test_natural_key_ignores_primary_key_differences() -> None:
    t = _plan(Rule.UPSERT, [(9, "home", "Home")], [(1, "home", "Home")], key=("name",)).tables[0]
    assert (t.insert, t.update, t.unchanged) == (0, 0, 1)


def test_duplicate_natural_key_is_refused_naming_the_value() -> None:
    with pytest.raises(InvalidInput) as err:
        _plan(Rule.UPSERT, [(1, "x", "a"), (2, "x", "b")], [], key=("name",))
    assert "'x'" in str(err.value) and "source" in str(err.value)


def test_upsert_without_key_is_refused() -> None:
    keyless = TableSchema("t", ROUTES.columns, primary_key=())
    with pytest.raises(CheckFailed) as err:
        key_spec(Resolved("t", Rule.UPSERT, (), Category.USER, "x"), keyless, keyless)
    assert "table t" in str(err.value) and "key" in str(err.value)


def test_unknown_key_column_is_refused() -> None:
    with pytest.raises(CheckFailed) as err:
        key_spec(
            Resolved("desktopRoutes", Rule.UPSERT, ("slug",), Category.SYSTEM, "x"), ROUTES, ROUTES
        )
    assert "slug" in str(err.value)


def test_renderings_carry_the_digest_and_counts() -> None:
    plan = _plan(Rule.OVERWRITE, SRC, TGT)
    assert plan.digest in plan_text(plan)
    assert plan.digest in plan_markdown(
        plan
    ) and "| `desktopRoutes` | overwrite |" in plan_markdown(plan)
    assert '"insert": 1' in plan_json(plan)


def test_keyless_overwrite_replaces_when_rows_differ() -> None:
    keyless = TableSchema("t", ROUTES.columns)
    schema = DatabaseSchema("sqlite", "3", {"t": keyless})
    res = Resolved("t", Rule.OVERWRITE, (), Category.USER, "x")
    ks = key_spec(res, keyless, keyless)
    types = [c.type for c in keyless.columns]

    def idx(rows: list[tuple[Any, ...]]) -> Any:
        shape = RowShape(
            "t",
            keyless.column_names,
            types,
            key_columns=(),
            compared_columns=ks.compared,
            pk_columns=(),
            side="s",
        )
        return build_index(shape, [rows])

    same = build_plan(
        schema,
        schema,
        {"t": res},
        {"t": ks},
        {"t": idx([(1, "a", "b")])},
        {"t": idx([(1, "a", "b")])},
        allow_destructive=False,
        warnings=[],
    )
    assert same.tables[0].unchanged == 1 and not same.changes_anything
    diff = build_plan(
        schema,
        schema,
        {"t": res},
        {"t": ks},
        {"t": idx([(1, "a", "b")])},
        {"t": idx([(1, "a", "c"), (2, "x", "y")])},
        allow_destructive=False,
        warnings=[],
    )
    assert (diff.tables[0].insert, diff.tables[0].delete) == (1, 2)


def test_ignored_columns_do_not_make_a_row_changed() -> None:
    schema = DatabaseSchema("sqlite", "3", {"desktopRoutes": ROUTES})
    res = Resolved(
        "desktopRoutes", Rule.UPSERT, ("name",), Category.SYSTEM, "t", (), ("title", "id")
    )
    ks = key_spec(res, ROUTES, ROUTES)
    # the ID is matched through the natural key, never "ignored"; title is not compared
    assert ks.ignored == ("title",) and ks.compared == ("name",)
    shape = source_shape(ROUTES, ks)
    plan = build_plan(
        schema,
        schema,
        {"desktopRoutes": res},
        {"desktopRoutes": ks},
        {"desktopRoutes": build_index(shape, [[(1, "home", "Home (dev)")]])},
        {"desktopRoutes": build_index(shape, [[(7, "home", "Home")]])},
        allow_destructive=False,
        warnings=[],
    )
    (table,) = plan.tables
    assert (table.update, table.unchanged) == (0, 1)
    assert table.to_dict()["ignore"] == ["title"]
    unignored = _plan(Rule.UPSERT, [(1, "home", "Home (dev)")], [(7, "home", "Home")], ("name",))
    assert unignored.tables[0].update == 1 and unignored.digest != plan.digest
