"""Checks of one manifest field each, shared by the manifest's readers: every refusal is
an InvalidInput naming where and which field (reason ``ManifestInvalid`` unless told)."""

from __future__ import annotations

import datetime as dt
from typing import Any, NoReturn

from controller.errors import InvalidInput


def fail(where: str, what: str, reason: str = "ManifestInvalid") -> NoReturn:
    raise InvalidInput(f"{where}: {what}", reason=reason)


def string(data: dict[str, Any], name: str, where: str, *, optional: bool = False) -> Any:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > 4096:
        fail(where, f"field {name} must be a string")
    return value


def count(data: dict[str, Any], name: str, where: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 62:
        fail(where, f"field {name} must be a non-negative integer")
    return value


def timestamp(data: dict[str, Any], name: str, where: str) -> str:
    value = string(data, name, where)
    try:
        dt.datetime.fromisoformat(value)
    except ValueError:
        fail(where, f"field {name} is not an ISO 8601 time")
    return str(value)
