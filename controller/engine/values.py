"""Canonical forms of column values, so equal data compares equal across dialects.

A value read from SQLite (a string datetime, ``0``/``1`` for booleans), PostgreSQL
(aware datetimes, ``Decimal``) and MariaDB (naive UTC datetimes, ``TINYINT(1)``) must
hash the same when it means the same. The *carried* value is never rewritten here:
these canonical forms only feed hashes, keys and comparisons.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterator
from decimal import MAX_EMAX, MIN_EMIN, Context, Decimal, InvalidOperation
from typing import Any

import orjson

from controller.engine.model import INTEGER_KINDS, ColumnType, Kind

_ENV_REF = re.compile(r"\{\{\s*\$env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def parse_datetime(text: str) -> dt.datetime | None:
    """Parse the datetime spellings found in SQLite files (ISO, Sequelize's ``… +00:00``)."""
    s = text.strip().replace(" +", "+").replace(" -", "-")
    if s.endswith("Z"):
        s = s[:-1] + "+00:00"
    try:
        return dt.datetime.fromisoformat(s)
    except ValueError:
        return None


# Where a JSON number with a fraction or an exponent may be (a digit followed by ``.``,
# ``e`` or ``E``; parsed as ``Decimal`` below), or an integer orjson would read as a
# float (19 digits in a row): found by substring search in the text with every digit
# turned into ``0``, ``.eE`` into ``.`` and everything else into ``x`` (a regular
# expression costs more than the parse it would save).
_NUMBER_SHAPES = bytes(
    ord("0") if c in b"0123456789" else ord(".") if c in b".eE" else ord("x") for c in range(256)
)
_LONG_INTEGER = b"0" * 19


def _plain_numbers(text: str) -> bool:
    shapes = text.encode("utf-8", "surrogatepass").translate(_NUMBER_SHAPES)
    return b"0." not in shapes and _LONG_INTEGER not in shapes


def canonical_json(text: str) -> str:
    """JSON text in one spelling: compact, keys sorted, numbers exactly as written.

    Numbers are parsed as ``Decimal`` (written back as strings), so parsing loses
    nothing; orjson then writes the result about five times faster than ``json``. What
    orjson cannot write exactly as ``json`` does (``NaN``/``Infinity``, integers beyond
    64 bits, lone surrogates, deep nesting) goes to ``json``; tests/unit/test_values.py
    holds both to the same output.
    """
    if _plain_numbers(text):  # no fraction, exponent or long integer
        try:  # orjson parses integers, strings and the rest as ``json`` does, faster
            return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS).decode()
        except (orjson.JSONDecodeError, orjson.JSONEncodeError, TypeError):
            pass  # beyond 64 bits, NaN, a lone surrogate, deep nesting: ``json`` decides
    constants: list[str] = []

    def constant(name: str) -> float:
        constants.append(name)
        return float(name)

    try:
        parsed = json.loads(text, parse_float=Decimal, parse_constant=constant)
    except (ValueError, TypeError, RecursionError):
        # Not JSON, or nested deeper than Python's parser goes: compared as written
        # (the carried value is copied exactly either way).
        return "raw:" + text
    if not constants:
        try:
            return orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS, default=str).decode()
        except (TypeError, orjson.JSONEncodeError):
            pass
    try:
        return json_text(parsed)
    except RecursionError:
        return "raw:" + text


def json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


# Beyond this exponent, plain notation would spell out the digits (1e999999999 is a
# gigabyte of zeros): such values are written in scientific notation instead.
_PLAIN_EXPONENT = 1000
_WIDE = Context(prec=100_000, Emax=MAX_EMAX, Emin=MIN_EMIN)


def _canonical_decimal(value: Any) -> str:
    try:
        if isinstance(value, float):
            dec = Decimal(repr(value))
        elif isinstance(value, (int, Decimal)):
            dec = Decimal(value)  # no str(): huge ints exceed Python's digit limit
        else:
            dec = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return _plain(value)
    if not dec.is_finite():
        return str(dec)  # NaN, sNaN, Infinity, -Infinity
    if dec.is_zero():
        return "0"
    if abs(dec.adjusted()) > _PLAIN_EXPONENT:
        return str(dec.normalize(_WIDE))
    dec = dec.normalize()
    return format(dec, "f")


def _plain(value: Any) -> str:
    """``str(value)`` for hashing, even for ints past Python's decimal digit limit."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return str(value)
        except ValueError:
            return "0x" + format(value, "x")
    return str(value)


def _canonical_temporal(value: Any, kind: Kind) -> str:
    """Instants compare in UTC; naive values are taken as UTC (what NocoBase stores).

    A ``timestamptz`` in PostgreSQL, a UTC ``DATETIME`` in MariaDB and a Sequelize
    string in SQLite holding the same instant therefore compare equal.
    """
    if isinstance(value, str):
        if kind is Kind.DATE:
            return value[:10]
        if kind is Kind.TIME:
            try:
                return dt.time.fromisoformat(value).isoformat(timespec="microseconds")
            except ValueError:
                return value
        parsed = parse_datetime(value)
        if parsed is None:
            return value
        value = parsed
    if isinstance(value, dt.datetime):
        if kind is Kind.DATE:
            return value.date().isoformat()
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return str(value.isoformat(timespec="microseconds"))
    if isinstance(value, dt.time):
        return value.replace(tzinfo=None).isoformat(timespec="microseconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


NULL = "\x00null"


def _c_bool(value: Any, kind: Kind) -> str:
    if isinstance(value, str):
        return "b:" + str(value.strip().lower() in ("1", "t", "true", "y", "yes"))
    return "b:" + str(bool(value))


def _c_int(value: Any, kind: Kind) -> str:
    try:
        return "i:" + _plain(int(value))
    except (TypeError, ValueError, ArithmeticError):  # "x", inf, nan, 10**5000 as text
        return "s:" + _plain(value)


def _c_float(value: Any, kind: Kind) -> str:
    try:
        return "f:" + repr(float(value))
    except (TypeError, ValueError, ArithmeticError):  # text, ints beyond a double
        return "s:" + _plain(value)


def _c_decimal(value: Any, kind: Kind) -> str:
    return "d:" + _canonical_decimal(value)


def _c_json(value: Any, kind: Kind) -> str:
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("utf-8")
    if isinstance(value, str):
        return "j:" + canonical_json(value)
    try:
        return "j:" + json_text(value)
    except RecursionError:
        return "j:raw:" + repr(value)[:1_000_000]


def _c_binary(value: Any, kind: Kind) -> str:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray, memoryview)):
        # An integer in a BLOB column (SQLite stores what it is given, a snapshot says
        # what it likes): bytes(n) would be n zero bytes, equal to a real blob of zeros,
        # and a hostile n would exhaust memory.
        return _c_other(value, kind)
    return "x:" + bytes(value).hex()


def _c_temporal(value: Any, kind: Kind) -> str:
    return "t:" + _canonical_temporal(value, kind)


def _c_uuid(value: Any, kind: Kind) -> str:
    return "u:" + str(value).lower()


def _c_other(value: Any, kind: Kind) -> str:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "x:" + bytes(value).hex()
    return "s:" + _plain(value)


_BY_KIND: dict[Kind, Callable[[Any, Kind], str]] = {
    Kind.BOOLEAN: _c_bool,
    **{k: _c_int for k in INTEGER_KINDS},
    Kind.FLOAT: _c_float,
    Kind.DECIMAL: _c_decimal,
    Kind.JSON: _c_json,
    Kind.BINARY: _c_binary,
    **{k: _c_temporal for k in (Kind.DATE, Kind.TIME, Kind.DATETIME, Kind.DATETIMETZ)},
    Kind.UUID: _c_uuid,
}


def _guarded(convert: Callable[[Any, Kind], str], value: Any, kind: Kind) -> str:
    """``convert``, or the value's plain text when it does not fit the kind at all (a
    float in a binary column, a 5,000-digit integer in a date column, JSON nested past
    the parser): hostile or odd values compare as written instead of crashing."""
    try:
        return convert(value, kind)
    except (TypeError, ValueError, ArithmeticError, RecursionError):
        return "s:" + _plain(value)


def canonical(value: Any, ctype: ColumnType) -> str:
    """A string that is equal for two values exactly when they mean the same."""
    if value is None:
        return NULL
    return _guarded(_BY_KIND.get(ctype.kind, _c_other), value, ctype.kind)


def canonicalizer(ctype: ColumnType) -> Callable[[Any], str]:
    """``canonical`` for one column type, chosen once: what row hashing calls per value."""
    kind = ctype.kind
    by_kind = _BY_KIND.get(kind)
    if by_kind is None:  # text and the like: most values of a configuration database

        def text(value: Any) -> str:
            if value is None:
                return NULL
            if type(value) is str:
                return "s:" + value
            return _c_other(value, kind)

        return text
    convert = by_kind
    fast = _FAST.get(kind)

    def typed(value: Any) -> str:
        if value is None:
            return NULL
        if fast is not None and type(value) is fast[0]:
            try:  # the usual value of the kind, without the checks for odd ones
                return fast[1](value)
            except (TypeError, ValueError, ArithmeticError, RecursionError):
                pass
        return _guarded(convert, value, kind)

    return typed


def _fast_bool(value: bool) -> str:
    return "b:True" if value else "b:False"


def _fast_int(value: int) -> str:
    return "i:" + str(value)  # ValueError past the digit limit: the guarded path


def _fast_json(value: str) -> str:
    return "j:" + canonical_json(value)


# kind → (the type a driver returns for it, its canonical form for exactly that type):
# the same text as the general converters give (tests/unit/test_values.py).
_FAST: dict[Kind, tuple[type, Callable[[Any], str]]] = {
    Kind.BOOLEAN: (bool, _fast_bool),
    **{k: (int, _fast_int) for k in INTEGER_KINDS},
    Kind.JSON: (str, _fast_json),
}


def env_references(value: Any) -> Iterator[str]:
    """Names referenced as ``{{$env.NAME}}`` inside a value (text or JSON text)."""
    if isinstance(value, str) and "$env" in value:
        for match in _ENV_REF.finditer(value):
            yield match.group(1)
