"""The binary COPY encoder against PostgreSQL's documented wire formats, decoded here
in plain Python (the database tests hold it to what the server stores)."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal, localcontext
from typing import Any

import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from controller.db import pg_binary

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


def _fields(data: bytes, columns: int) -> list[list[bytes | None]]:
    """Split binary COPY tuples (no header) into rows of raw field values."""
    rows, at = [], 0
    while at < len(data):
        (count,) = struct.unpack_from(">h", data, at)
        assert count == columns
        at += 2
        row: list[bytes | None] = []
        for _ in range(count):
            (size,) = struct.unpack_from(">i", data, at)
            at += 4
            if size == -1:
                row.append(None)
                continue
            row.append(data[at : at + size])
            at += size
        rows.append(row)
    return rows


def _encode(typname: str, array: pa.Array) -> list[bytes | None] | None:
    batch = pa.record_batch([array], names=["c"])
    encoders = pg_binary.encoders([typname], batch.schema)
    assert encoders is not None
    data = pg_binary.tuples(batch, encoders)
    if data is None:
        return None
    return [row[0] for row in _fields(data.to_pybytes(), 1)]


def _numeric(raw: bytes) -> tuple[Decimal | str, int]:
    ndigits, weight, sign, dscale = struct.unpack_from(">hhHh", raw)
    assert len(raw) == 8 + 2 * ndigits
    specials = {0xC000: "NaN", 0xD000: "Infinity", 0xF000: "-Infinity"}
    if sign in specials:
        return specials[sign], dscale
    digits = struct.unpack_from(f">{ndigits}h", raw, 8)
    assert all(0 <= d < 10000 for d in digits)
    with localcontext() as exact:
        exact.prec = 1000
        value = sum(Decimal(d) * Decimal(10000) ** (weight - i) for i, d in enumerate(digits))
        return (-value if sign == 0x4000 else +value), dscale


@given(st.lists(st.none() | st.decimals(allow_nan=False, allow_infinity=False, places=None)))
def test_numeric_keeps_value_and_scale(values: list[Decimal | None]) -> None:
    texts = [None if v is None else f"{v:f}" for v in values]
    encoded = _encode("numeric", pa.array(texts, pa.large_string()))
    if encoded is None:  # only values too long for binary here go as text
        assert any(t is not None and len(t) > pg_binary.MAX_NUMERIC_DIGITS // 2 for t in texts)
        return
    for text, raw in zip(texts, encoded, strict=True):
        if text is None:
            assert raw is None
            continue
        assert raw is not None
        value, scale = _numeric(raw)
        assert value == Decimal(text)
        assert scale == (len(text.split(".")[1]) if "." in text else 0)


def test_numeric_specials_and_refusals() -> None:
    encoded = _encode("numeric", pa.array(["NaN", "-Infinity", "Infinity", "-0.00"]))
    assert encoded is not None
    assert [_numeric(r) for r in encoded if r is not None] == [
        ("NaN", 0), ("-Infinity", 0), ("Infinity", 0), (Decimal(0), 2)
    ]  # fmt: skip
    for text in ("+1", " 1", "1e3", ".5", "5.", "1,5", "", "nan", "1" * 200):
        assert _encode("numeric", pa.array([text])) is None, text


@given(
    st.lists(
        st.tuples(
            st.none() | st.integers(-(2**31), 2**31 - 1),
            st.none() | st.datetimes(timezones=st.just(dt.UTC)),
            st.none() | st.dates(),
            st.none() | st.booleans(),
            st.none() | st.text(),
            st.none() | st.binary(),
            st.none() | st.floats(allow_nan=False),
        ),
        min_size=1,
    )
)
def test_fixed_and_variable_width_fields(rows: list[tuple[Any, ...]]) -> None:
    columns = list(zip(*rows, strict=True))
    types = [
        pa.int64(), pa.timestamp("us", tz="UTC"), pa.date32(), pa.bool_(),
        pa.large_string(), pa.large_binary(), pa.float64(),
    ]  # fmt: skip
    batch = pa.record_batch(
        [pa.array(list(c), t) for c, t in zip(columns, types, strict=True)],
        names=[f"c{i}" for i in range(len(types))],
    ).slice(len(rows) // 3)  # an offset into the buffers, as a slice has
    names = ["int4", "timestamptz", "date", "bool", "jsonb", "bytea", "float8"]
    encoders = pg_binary.encoders(names, batch.schema)
    assert encoders is not None
    data = pg_binary.tuples(batch, encoders)
    assert data is not None
    decoded = _fields(data.to_pybytes(), len(names))
    assert len(decoded) == len(rows) - len(rows) // 3
    for want, got in zip(rows[len(rows) // 3 :], decoded, strict=True):
        i4, at, day, flag, text, blob, real = want
        assert got[0] == (None if i4 is None else struct.pack(">i", i4))
        micros = None if at is None else (at - PG_EPOCH) // dt.timedelta(microseconds=1)
        assert got[1] == (None if micros is None else struct.pack(">q", micros))
        days = None if day is None else (day - PG_EPOCH.date()).days
        assert got[2] == (None if days is None else struct.pack(">i", days))
        assert got[3] == (None if flag is None else bytes([flag]))
        assert got[4] == (None if text is None else b"\x01" + text.encode())
        assert got[5] == blob
        assert got[6] == (None if real is None else struct.pack(">d", real))


def test_types_without_an_exact_binary_form_go_as_text() -> None:
    schema = pa.schema([("a", pa.int64()), ("b", pa.large_string())])
    assert pg_binary.encoders(["int8", "uuid"], schema) is None
    assert (
        pg_binary.encoders(["int8", "float4"], pa.schema([("a", pa.int64()), ("b", pa.float64())]))
        is None
    )
    naive = pa.schema([("t", pa.timestamp("us"))])
    assert pg_binary.encoders(["timestamptz"], naive) is None  # the session's zone decides
    assert pg_binary.encoders(["timestamp"], naive) is not None
    small = pa.record_batch([pa.array([2**40])], names=["a"])
    encoders = pg_binary.encoders(["int4"], small.schema)
    assert encoders is not None
    assert pg_binary.tuples(small, encoders) is None  # too wide: text COPY reports it
