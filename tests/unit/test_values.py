"""Canonical forms: the same meaning compares equal across dialects' spellings."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from controller.engine.model import ColumnType, Kind
from controller.engine.values import canonical, env_references

T = ColumnType


def test_booleans_from_every_dialect() -> None:
    b = T(Kind.BOOLEAN)
    assert canonical(True, b) == canonical(1, b) == canonical("true", b)
    assert canonical(False, b) == canonical(0, b)
    assert canonical(True, b) != canonical(False, b)


def test_datetimes_compare_as_instants() -> None:
    aware = dt.datetime(2026, 1, 2, 3, 4, 5, 123000, tzinfo=dt.UTC)
    naive = dt.datetime(2026, 1, 2, 3, 4, 5, 123000)
    sequelize = "2026-01-02 03:04:05.123 +00:00"
    other_zone = dt.datetime(2026, 1, 2, 5, 4, 5, 123000, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    for kind in (Kind.DATETIME, Kind.DATETIMETZ):
        c = T(kind)
        assert canonical(aware, c) == canonical(naive, c) == canonical(sequelize, c)
        assert canonical(other_zone, c) == canonical(aware, c)
        assert canonical(aware + dt.timedelta(microseconds=1), c) != canonical(aware, c)


def test_decimals_ignore_trailing_zeros_not_value() -> None:
    d = T(Kind.DECIMAL, precision=12, scale=2)
    assert canonical(Decimal("1.50"), d) == canonical(Decimal("1.5"), d) == canonical(1.5, d)
    assert canonical(Decimal("1.51"), d) != canonical(Decimal("1.5"), d)


def test_json_compares_structurally_but_null_and_empty_differ() -> None:
    j = T(Kind.JSON)
    assert canonical('{"a": 1, "b": [1, 2]}', j) == canonical('{"b":[1,2],"a":1}', j)
    assert canonical('{"a": 1}', j) != canonical('{"a": 2}', j)
    s = T(Kind.TEXT)
    assert canonical("", s) != canonical(None, s)


def test_env_references() -> None:
    text = "url {{$env.API_TOKEN}} and {{ $env.OTHER }} not {{$env.}} nor {{$user.X}}"
    assert sorted(env_references(text)) == ["API_TOKEN", "OTHER"]
