"""Verification after apply: the target must hold exactly what the plan promised."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from controller.api.rules import Rule
from controller.engine.rowindex import RowIndex, RowShape, build_index
from controller.engine.verify import verify
from controller.errors import PermanentError
from tests.unit.test_plan import ROUTES, _plan

HOME, ORDERS, OLD = (1, "home", "Home"), (2, "orders", "Orders"), (4, "old", "Old")


def _index(rows: Sequence[tuple[Any, ...]], key: tuple[str, ...] = ("id",)) -> RowIndex:
    shape = RowShape(
        "desktopRoutes",
        ROUTES.column_names,
        [c.type for c in ROUTES.columns],
        key_columns=key,
        compared_columns=ROUTES.column_names,
        pk_columns=("id",),
        side="target",
    )
    return build_index(shape, [list(rows)])


def _check(rule: Rule, source: list[Any], before: list[Any], after: list[Any]) -> None:
    plan = _plan(rule, source, before)
    verify(
        plan,
        {"desktopRoutes": _index(source)},
        {"desktopRoutes": _index(before)},
        {"desktopRoutes": _index(after)},
    )


@pytest.mark.parametrize(
    ("rule", "after"),
    [
        (Rule.OVERWRITE, [HOME, (2, "orders", "Orders v2")]),
        (Rule.UPSERT, [HOME, (2, "orders", "Orders v2"), OLD]),
        (Rule.INSERT_IGNORE, [HOME, ORDERS, OLD]),
    ],
)
def test_what_the_rule_promised_passes(rule: Rule, after: list[Any]) -> None:
    _check(rule, [HOME, (2, "orders", "Orders v2")], [ORDERS, OLD], after)


@pytest.mark.parametrize(
    ("rule", "after", "needle"),
    [
        (Rule.OVERWRITE, [HOME, (2, "orders", "Orders v2"), OLD], "3 rows instead of 2"),
        (Rule.OVERWRITE, [HOME, ORDERS], "row ('i:2',) differs from the source"),
        (Rule.UPSERT, [HOME, (2, "orders", "Orders v2")], "2 rows instead of 3"),
        (Rule.UPSERT, [HOME, ORDERS, OLD], "row ('i:2',) is not what the plan promised"),
        # insert-ignore must leave a matching target row as it was
        (
            Rule.INSERT_IGNORE,
            [HOME, (2, "orders", "Orders v2"), OLD],
            "row ('i:2',) is not what the plan promised",
        ),
    ],
)
def test_a_target_that_differs_fails_naming_table_and_row(
    rule: Rule, after: list[Any], needle: str
) -> None:
    with pytest.raises(PermanentError) as failed:
        _check(rule, [HOME, (2, "orders", "Orders v2")], [ORDERS, OLD], after)
    assert failed.value.reason == "VerificationFailed"
    assert f"desktopRoutes: {needle}" in failed.value.message


def test_tables_not_read_again_are_not_verified() -> None:
    plan = _plan(Rule.OVERWRITE, [HOME], [])
    source, before = {"desktopRoutes": _index([HOME])}, {"desktopRoutes": _index([])}
    # Read back, this target would fail: it holds a row the plan never wrote ...
    with pytest.raises(PermanentError, match=r"desktopRoutes: 2 rows instead of 1"):
        verify(plan, source, before, {"desktopRoutes": _index([HOME, OLD])})
    # ... not read back, it is not judged.
    assert verify(plan, source, before, {}) is None
