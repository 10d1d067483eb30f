"""Arrow record batches as PostgreSQL's binary ``COPY`` format, with Arrow compute kernels.

A restore sends binary tuples where every column of the restored table has a built-in
type whose binary form can be built here exactly, so the server parses no text for
integers, floats, timestamps, dates, numerics and ``bytea`` and de-escapes nothing:
integers and floats big-endian, times as microseconds since 2000-01-01, ``numeric`` as
its base-10000 digits (built from the archive's exact text, its scale kept), text,
JSON and ``bytea`` as their bytes (``jsonb`` with its version byte). Where a value has
no such form here (a numeric written otherwise than PostgreSQL prints it, a huge one,
an integer too wide for its column, a time out of range) :func:`tuples` answers None
and that slice travels as text: binary COPY would not convert what text COPY does.

Nothing here loops over values in Python; memory is a few copies of one slice.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

HEADER = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # signature, flags, no header extension
TRAILER = b"\xff\xff"
#: Longest numeric (digits before and after the point, padded) encoded in binary.
MAX_NUMERIC_DIGITS = 128

_EMPTY = pa.scalar(b"", pa.large_binary())
_NULL_FIELD = pa.scalar(b"\xff\xff\xff\xff", pa.large_binary())
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in microseconds since 1970
_PG_EPOCH_DAYS = 10_957
_NUMBER = r"^-?(?P<i>[0-9]+)(?:\.(?P<f>[0-9]+))?$"
_NUMERIC_SPECIAL = {"NaN": 0xC000, "Infinity": 0xD000, "-Infinity": 0xF000}
_NUMERIC_NEG = 0x4000

#: A column's fields as two parts without NULLs, joined into rows with the others in
#: one pass: the 4-byte lengths (-1 for NULL, then nothing), and the values.
Parts = tuple["pa.Array | pa.Scalar", "pa.Array | pa.Scalar"]
Encoder = Callable[[pa.Array], "Parts | None"]


def _bin(data: bytes) -> pa.Scalar:
    return pa.scalar(data, pa.large_binary())


def _cat(*parts: pa.Array | pa.Scalar) -> pa.Array:
    """Row by row concatenation (null where a part is null)."""
    parts = tuple(p.cast(pa.large_binary()) for p in parts)
    return pc.binary_join_element_wise(*parts, _EMPTY)


def _big_endian(values: pa.Array, width: int) -> pa.Array:
    """Fixed-width values (nulls kept) as their ``width`` bytes, big-endian."""
    raw = pa.Array.from_buffers(
        pa.binary(width), len(values), values.buffers()[:2], offset=values.offset
    )
    return pc.binary_reverse(raw.cast(pa.large_binary()))


def _fixed(values: pa.Array, width: int) -> Parts:
    prefix, data = _bin(struct.pack(">i", width)), _big_endian(values, width)
    if not values.null_count:
        return prefix, data
    return pc.if_else(pc.is_valid(values), prefix, _NULL_FIELD), pc.fill_null(data, _EMPTY)


def _varlen(payload: pa.Array, version: bytes = b"") -> Parts:
    data = payload.cast(pa.large_binary())
    lengths = pc.binary_length(data)
    if version:
        lengths = pc.add(lengths, len(version))
    prefix = _big_endian(lengths.cast(pa.int32()), 4)
    if version:
        prefix = _cat(prefix, _bin(version))
    if not data.null_count:
        return prefix, data
    return pc.fill_null(prefix, _NULL_FIELD), pc.fill_null(data, _EMPTY)


def _integer(arrow: pa.DataType, width: int) -> Encoder:
    def encode(column: pa.Array) -> Parts:
        return _fixed(column.cast(arrow), width)  # a value too wide: ArrowInvalid, text

    return encode


def _boolean(column: pa.Array) -> Parts:
    return _fixed(column.cast(pa.uint8()), 1)


def _float8(column: pa.Array) -> Parts:
    return _fixed(column.cast(pa.float64()), 8)


def _timestamp(column: pa.Array) -> Parts:
    micros = pc.subtract_checked(column.view(pa.int64()), pa.scalar(_PG_EPOCH_US, pa.int64()))
    return _fixed(micros.cast(pa.int64()), 8)


def _date(column: pa.Array) -> Parts:
    days = pc.subtract_checked(column.view(pa.int32()), pa.scalar(_PG_EPOCH_DAYS, pa.int32()))
    return _fixed(days.cast(pa.int32()), 4)


def _time(column: pa.Array) -> Parts:
    return _fixed(column.view(pa.int64()), 8)


def _text(column: pa.Array) -> Parts:
    return _varlen(column)


def _jsonb(column: pa.Array) -> Parts:
    return _varlen(column, b"\x01")


def _groups(digits: pa.Array, rows: int, width: int) -> pa.Array:
    """Equal-width ASCII digit strings → each row's base-10000 groups, big-endian int16."""
    start = _offsets_start(digits)
    data = digits.buffers()[2].slice(start, rows * width)
    quads = pa.Array.from_buffers(pa.binary(4), rows * width // 4, [None, data])
    values = quads.cast(pa.large_binary()).cast(pa.large_string()).cast(pa.uint16())
    raw = pa.Array.from_buffers(pa.binary(2), len(values), [None, values.buffers()[1]])
    swapped = pc.binary_reverse(raw.cast(pa.large_binary()))
    return pa.Array.from_buffers(pa.binary(width // 2), rows, [None, swapped.buffers()[2]])


def _be16(values: pa.Array) -> pa.Array:
    """uint16 values → their two bytes, big-endian (no nulls)."""
    raw = pa.Array.from_buffers(pa.binary(2), len(values), [None, values.buffers()[1]])
    return pc.binary_reverse(raw.cast(pa.large_binary()))


def _offsets_start(array: pa.Array) -> int:
    offsets = pa.Array.from_buffers(pa.int64(), 1, [None, array.buffers()[1]], offset=array.offset)
    return int(offsets[0].as_py())


def _numeric(column: pa.Array) -> Parts | None:
    """Numeric text as PostgreSQL prints it (``-12.50``, ``NaN``) → binary numeric with the
    same digits and display scale; anything else: None (text COPY parses it)."""
    text = column.cast(pa.large_string())
    special = pc.is_in(text, value_set=pa.array(list(_NUMERIC_SPECIAL), pa.large_string()))
    plain = pc.if_else(special, "0", pc.fill_null(text, "0"))
    parts = pc.extract_regex(plain, _NUMBER)
    if parts.null_count:
        return None
    ints = parts.field("i").cast(pa.large_string())
    fracs = parts.field("f").cast(pa.large_string())
    int_width = -(-(pc.max(pc.utf8_length(ints)).as_py() or 1) // 4) * 4
    frac_width = -(-(pc.max(pc.utf8_length(fracs)).as_py() or 0) // 4) * 4
    if int_width + frac_width > MAX_NUMERIC_DIGITS:
        return None
    digits = pc.utf8_lpad(ints, int_width, "0")
    if frac_width:
        digits = _cat(digits, pc.utf8_rpad(fracs, frac_width, "0"))
    rows, ngroups = len(text), (int_width + frac_width) // 4
    groups = _groups(digits, rows, int_width + frac_width)
    sign = pc.if_else(pc.starts_with(plain, "-"), _NUMERIC_NEG, 0).cast(pa.uint16())
    scale = pc.utf8_length(fracs).cast(pa.uint16())
    head = struct.pack(">ihh", 8 + 2 * ngroups, ngroups, int_width // 4 - 1)
    fields = _cat(_bin(head), _be16(sign), _be16(scale), groups)
    if pc.any(special).as_py():
        for name, code in _NUMERIC_SPECIAL.items():
            field = _bin(struct.pack(">ihhHh", 8, 0, 0, code, 0))
            fields = pc.if_else(pc.equal(text, name), field, fields)
    return pc.if_else(pc.is_valid(text), fields, _NULL_FIELD), _EMPTY


def _us(unit_tz: tuple[str, bool]) -> Callable[[pa.DataType], bool]:
    unit, zoned = unit_tz
    return lambda t: bool(
        pa.types.is_timestamp(t) and t.unit == unit and (t.tz is not None) == zoned
    )


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _is_bytes(t: pa.DataType) -> bool:
    return bool(pa.types.is_binary(t) or pa.types.is_large_binary(t))


# PostgreSQL type (pg_type.typname) → which Arrow type it takes, and its encoder.
_BY_TYPE: dict[str, tuple[Callable[[pa.DataType], bool], Encoder]] = {
    "int2": (pa.types.is_integer, _integer(pa.int16(), 2)),
    "int4": (pa.types.is_integer, _integer(pa.int32(), 4)),
    "int8": (pa.types.is_integer, _integer(pa.int64(), 8)),
    "bool": (pa.types.is_boolean, _boolean),
    "float8": (pa.types.is_float64, _float8),
    "timestamp": (_us(("us", False)), _timestamp),
    "timestamptz": (_us(("us", True)), _timestamp),
    "date": (pa.types.is_date32, _date),
    "time": (lambda t: t == pa.time64("us"), _time),
    "text": (_is_text, _text),
    "varchar": (_is_text, _text),
    "bpchar": (_is_text, _text),
    "json": (_is_text, _text),
    "jsonb": (_is_text, _jsonb),
    "numeric": (_is_text, _numeric),
    "bytea": (_is_bytes, _text),
}


def encoders(typnames: Sequence[str], schema: pa.Schema) -> list[Encoder] | None:
    """Each column's encoder, from the restored table's own types in column order, or
    None when some column has no exact binary form here (the table travels as text)."""
    found = []
    for typname, field in zip(typnames, schema, strict=True):
        accepts, encode = _BY_TYPE.get(typname, (None, None))
        if accepts is None or encode is None or not accepts(field.type):
            return None
        found.append(encode)
    return found or None


def tuples(batch: pa.RecordBatch, encode: Sequence[Encoder]) -> pa.Buffer | None:
    """The rows of ``batch`` as binary COPY tuples (no header or trailer), or None when
    a value has no exact binary form here."""
    parts: list[pa.Array | pa.Scalar] = [_bin(struct.pack(">h", len(encode)))]
    for encoder, column in zip(encode, batch.columns, strict=True):
        try:
            found = encoder(column)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
            return None  # out of range for the column or for this encoding: text decides
        if found is None:
            return None
        parts += found
    rows = pc.binary_join_element_wise(*parts, _EMPTY)  # every byte copied once
    start = _offsets_start(rows)
    end = pa.Array.from_buffers(
        pa.int64(), 1, [None, rows.buffers()[1]], offset=rows.offset + len(rows)
    )[0].as_py()
    buf: pa.Buffer = rows.buffers()[2]
    return buf.slice(start, int(end) - start)
