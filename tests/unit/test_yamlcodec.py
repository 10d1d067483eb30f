"""Exported snapshots: every carried value survives YAML exactly."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

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
def test_json_text_round_trips_byte_for_byte(value: object, seps: tuple[str, str]) -> None:
    text = json.dumps(value, ensure_ascii=False, separators=seps)
    style = yamlcodec.json_style_of(text)
    dumped = yamlcodec.dump({"v": yamlcodec.json_to_yaml(text, style)})
    assert yamlcodec.json_from_yaml(yamlcodec.load(dumped)["v"], style) == text


def test_decimal_keeps_its_scale() -> None:
    assert yamlcodec.load(yamlcodec.dump(Decimal("1.50"))) == Decimal("1.50")
    assert str(yamlcodec.load(yamlcodec.dump(Decimal("1.50")))) == "1.50"
