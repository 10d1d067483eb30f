"""Exported snapshots: every carried value survives YAML exactly."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from controller.errors import InvalidInput
from controller.gitsource import yamlcodec

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.text(),
    st.binary(max_size=64),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.datetimes(),
    st.dates(),
    st.times(),
    st.floats(allow_nan=False),
)


@given(st.lists(scalars, max_size=8))
def test_values_round_trip_exactly(values: list[object]) -> None:
    back = yamlcodec.load(yamlcodec.dump({"rows": values}))["rows"]
    assert back == values
    assert [type(v) for v in back] == [type(v) for v in values]


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(json_values, st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")]))
@example([["\x85"], {"": None}], (",", ": "))  # verbatim !json text with a NEL in it
def test_json_text_round_trips_byte_for_byte(value: object, seps: tuple[str, str]) -> None:
    text = json.dumps(value, ensure_ascii=False, separators=seps)
    style = yamlcodec.json_style_of(text)
    dumped = yamlcodec.dump({"v": yamlcodec.json_to_yaml(text, style)})
    assert yamlcodec.json_from_yaml(yamlcodec.load(dumped)["v"], style) == text


def test_decimal_keeps_its_scale() -> None:
    assert yamlcodec.load(yamlcodec.dump(Decimal("1.50"))) == Decimal("1.50")
    assert str(yamlcodec.load(yamlcodec.dump(Decimal("1.50")))) == "1.50"


# --- the loader refuses what the dumper never writes -------------------------------

BOMB = "a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param(BOMB, "anchors", id="alias-bomb"),
        pytest.param("a: *undefined\n", "aliases", id="bare-alias"),
        pytest.param("a: &x SECRET-IN-ANCHOR\n", "anchors", id="anchor"),
        pytest.param("!!python/name:os.system SECRET\n", "tag", id="python-tag"),
        pytest.param("a: !!set {SECRET}\n", "tag", id="set-tag"),
        pytest.param("a: !!omap [{b: 1}]\n", "tag", id="omap-tag"),
        pytest.param("a: !custom SECRET\n", "tag", id="custom-tag"),
        pytest.param("a: ! SECRET\n", "tag", id="non-specific-tag"),
        pytest.param("[" * 500 + "]" * 500, "nested deeper", id="deep-flow"),
        pytest.param("a: !decimal SECRET\n", "not valid YAML", id="bad-decimal"),
        pytest.param("a: !datetime SECRET\n", "not valid YAML", id="bad-datetime"),
        pytest.param("a: 'SECRET\n", "not valid YAML", id="unterminated"),
        pytest.param("a: \x07SECRET\n", "not valid YAML", id="control-character"),
    ],
)
def test_loader_refuses_without_echoing_content(text: str, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        yamlcodec.load(text)
    message = str(caught.value)
    assert says in message
    assert "SECRET" not in message
    assert "\n" not in message


def test_loader_refuses_oversized_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlcodec, "MAX_TEXT", 100)
    with pytest.raises(InvalidInput, match="larger than"):
        yamlcodec.load("a: " + "x" * 200)


def test_deep_json_is_kept_as_text_and_reads_back_exactly() -> None:
    deep = "[" * 1000 + "]" * 1000
    value = yamlcodec.json_to_yaml(deep, "compact")
    assert isinstance(value, yamlcodec.JsonText)
    back = yamlcodec.load(yamlcodec.dump({"rows": [{"j": value}]}))["rows"][0]["j"]
    assert yamlcodec.json_from_yaml(back, "compact") == deep


def test_json_deeper_than_python_parses_has_no_style() -> None:
    assert yamlcodec.json_style_of("[" * 100_000 + "]" * 100_000) is None


def test_shallow_json_still_becomes_structure() -> None:
    text = json.dumps({"a": [[[1]]]}, separators=(",", ":"))
    assert yamlcodec.json_to_yaml(text, "compact") == {"a": [[[1]]]}
