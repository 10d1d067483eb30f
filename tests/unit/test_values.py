"""Canonical forms: the same meaning compares equal across dialects' spellings."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.engine.model import ColumnType, Kind
from controller.engine.rowindex import RowShape, row_digest
from controller.engine.values import canonical, canonical_json, canonicalizer, env_references

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


def test_an_integer_in_a_binary_column_is_not_a_blob_of_zeros() -> None:
    """SQLite keeps an integer in a BLOB column as it was given, and a snapshot says what
    it likes: neither may read as ``n`` zero bytes (equal to a real blob, and a hostile
    ``n`` would not fit in memory)."""
    blob = T(Kind.BINARY)
    assert canonical(3, blob) != canonical(b"\x00\x00\x00", blob)
    assert canonical(10**18, blob) == "s:" + str(10**18)
    assert canonical(b"\x00\x01", blob) == "x:0001"


def test_env_references() -> None:
    text = "url {{$env.API_TOKEN}} and {{ $env.OTHER }} not {{$env.}} nor {{$user.X}}"
    assert sorted(env_references(text)) == ["API_TOKEN", "OTHER"]


def _json_reference(text: str) -> str:
    """What canonical_json wrote before orjson: ``json`` alone."""
    parsed = json.loads(text, parse_float=Decimal)
    return json.dumps(
        parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


_ANY_CHAR = st.characters(codec=None, exclude_categories=())  # surrogates and controls too
_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)  # beyond orjson's 64 bits too
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.decimals(allow_nan=False, allow_infinity=False, places=None)
    | st.text(_ANY_CHAR, max_size=12),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(_ANY_CHAR, max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=600)
@given(_JSON_VALUES, st.booleans())
def test_canonical_json_is_exactly_what_json_writes(value: object, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only, default=str)
    assert canonical_json(text) == _json_reference(text)


def test_canonical_json_falls_back_for_what_orjson_spells_otherwise() -> None:
    for text in ('{"n": NaN, "i": -Infinity}', "[123456789012345678901234567890]", '"\\ud800"'):
        assert canonical_json(text) == _json_reference(text), text
    deep = "[" * 300 + "]" * 300
    assert canonical_json(deep) == _json_reference(deep)
    assert canonical_json('{"b": 1.10, "a": 2e3}') == '{"a":"2E+3","b":"1.10"}'


def test_canonical_json_without_decimals_reads_as_json_does() -> None:
    """Text with no fraction, exponent or 19-digit run is parsed by orjson: at the
    64-bit edges, with digits and dots inside strings, and with what orjson refuses."""
    for text in (
        "[9223372036854775807, -9223372036854775808, 18446744073709551615]",
        "[18446744073709551616, -9223372036854775809, 1000000000000000000]",
        '{"v": "1.5e3 in a string", "n": -0, "z": [0, -1, 10]}',
        '{"a": 1, "a": 2, "é": "\u00e9\u0000", "\ud83d\ude00": true}',
        '["\udfff", "x"]',
        '["\\udfff escaped", 12]',
        '{"big": 12345678901234567890123, "e": 1E5, "dot": "v1.2"}',
        '"tab\there"',
        "[1, 2",
        '"raw \u0001 control "',
        "[" * 1100 + "]" * 1100,
    ):
        assert canonical_json(text) == _reference_or_raw(text), text[:80]


def _reference_or_raw(text: str) -> str:
    try:
        return _json_reference(text)
    except (ValueError, RecursionError):
        return "raw:" + text


# Digests recorded before the hashing was made faster: a row's digest is part of every
# plan digest and of the post-migration states kept with backups, so it must not move.
_RECORDED = [
    (Kind.BOOLEAN, True, "95bb65aae14bc9514899bcc52a96e611"),
    (Kind.INTEGER, 1, "c6d829f9fed58c51bd8ee44a1f17fb08"),
    (Kind.DECIMAL, Decimal("1.10"), "5f47e83b30032cbb57c162404f3c25c5"),
    (Kind.STRING, "abc", "915c0d738feb327c2287e48cdf834661"),
    (Kind.DATETIME, "2020-01-02 03:04:05 +00:00", "64cdc3314f4e5dbbe1d922f12f0caf3c"),
    (Kind.JSON, '{"b":1,"a":[1.10,2]}', "48b22e3209cfb9471e5a10c0c471ece5"),
]


@pytest.mark.parametrize(("kind", "value", "digest"), _RECORDED)
def test_row_digests_are_stable(kind: Kind, value: object, digest: str) -> None:
    types = [T(kind), T(Kind.TEXT)]
    assert row_digest([value, "k"], types).hex() == digest
    shape = RowShape(
        "t",
        ["a", "b"],
        types,
        key_columns=["a"],
        compared_columns=["a", "b"],
        pk_columns=["a"],
        side="source",
    )
    assert shape.digest((value, "k")).hex() == digest


_ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**4400, -(10**4400)]),  # past str()'s digit limit
    st.floats(),
    st.decimals(min_value=-(10**30), max_value=10**30),
    st.sampled_from([Decimal("NaN"), Decimal("-Infinity"), Decimal("1E+1000")]),
    st.text(),
    st.binary(),
    st.builds(
        json.dumps,
        st.recursive(
            st.none() | st.integers() | st.floats() | st.text(),
            lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        ),
    ),
    st.datetimes(timezones=st.none() | st.timezones()),
)


@given(kind=st.sampled_from(list(Kind)), value=_ANY_VALUE)
@settings(max_examples=300, deadline=None)
def test_each_columns_form_is_canonical(kind: Kind, value: object) -> None:
    """``canonicalizer`` (chosen once per column, with shortcuts for the usual type of
    each kind) gives exactly ``canonical``'s text for every value, odd ones included."""
    ctype = T(kind)
    assert canonicalizer(ctype)(value) == canonical(value, ctype)
