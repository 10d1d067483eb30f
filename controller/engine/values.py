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
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

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


def canonical_json(text: str) -> str:
    try:
        parsed = json.loads(text, parse_float=Decimal)
    except (ValueError, TypeError):
        return "raw:" + text
    return json.dumps(
        parsed, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


def _canonical_decimal(value: Any) -> str:
    try:
        dec = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if dec.is_zero():
        return "0"
    return format(dec.normalize(), "f")


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


def canonical(value: Any, ctype: ColumnType) -> str:
    """A string that is equal for two values exactly when they mean the same."""
    if value is None:
        return "\x00null"
    kind = ctype.kind
    if kind is Kind.BOOLEAN:
        if isinstance(value, str):
            return "b:" + str(value.strip().lower() in ("1", "t", "true", "y", "yes"))
        return "b:" + str(bool(value))
    if kind in INTEGER_KINDS:
        try:
            return "i:" + str(int(value))
        except (TypeError, ValueError):
            return "s:" + str(value)
    if kind is Kind.FLOAT:
        try:
            return "f:" + repr(float(value))
        except (TypeError, ValueError):
            return "s:" + str(value)
    if kind is Kind.DECIMAL:
        return "d:" + _canonical_decimal(value)
    if kind is Kind.JSON:
        if isinstance(value, (bytes, bytearray)):
            value = bytes(value).decode("utf-8")
        if isinstance(value, str):
            return "j:" + canonical_json(value)
        return "j:" + json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
    if kind is Kind.BINARY:
        if isinstance(value, str):
            value = value.encode("utf-8")
        return "x:" + bytes(value).hex()
    if kind in (Kind.DATE, Kind.TIME, Kind.DATETIME, Kind.DATETIMETZ):
        return "t:" + _canonical_temporal(value, kind)
    if kind is Kind.UUID:
        return "u:" + str(value).lower()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "x:" + bytes(value).hex()
    return "s:" + str(value)


def env_references(value: Any) -> Iterator[str]:
    """Names referenced as ``{{$env.NAME}}`` inside a value (text or JSON text)."""
    if isinstance(value, str) and "$env" in value:
        for match in _ENV_REF.finditer(value):
            yield match.group(1)


def env_references_in_rows(rows: Iterable[tuple[Any, ...]]) -> set[str]:
    found: set[str] = set()
    for row in rows:
        for value in row:
            found.update(env_references(value))
    return found
