"""Target variables for the ``{{$env.NAME}}`` check: the CLI's ``--variables`` file.

Accepted shapes: a list of ``{name, type}`` (values optional, never needed for the
check) or a mapping of names to values. Only the names are kept, so a values file
can be passed without its secrets ever entering a plan or a log (an offending entry
is named by its position, never by its value).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from controller.errors import InvalidInput

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
MAX_VARIABLES = 10_000


def _name(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{where}: a variable name must be a string, got {type(value).__name__}")
    if not _NAME.fullmatch(value):
        shown = value if len(value) <= 60 and value.isprintable() else repr(value[:60])
        raise InvalidInput(
            f"{where}: invalid variable name {shown!r} (letters, digits and '_', "
            "not starting with a digit, at most 255)"
        )
    return value


def _names(data: Any) -> list[str]:
    if isinstance(data, Mapping):
        return [_name(k, f"variables[{k!r}]" if isinstance(k, str) else "variables") for k in data]
    if not isinstance(data, list):
        raise InvalidInput(
            "variables: expected a list of {name, type} or a mapping of names, "
            f"got {type(data).__name__}"
        )
    names: list[str] = []
    for i, item in enumerate(data):
        if isinstance(item, Mapping) and "name" in item:
            names.append(_name(item["name"], f"variables[{i}].name"))
        elif isinstance(item, str):
            names.append(_name(item, f"variables[{i}]"))
        else:
            raise InvalidInput(
                f"variables[{i}]: expected {{name, type}} or a name, got {type(item).__name__}"
            )
    return names


def parse_variable_names(data: Any) -> frozenset[str]:
    if data is None:
        return frozenset()
    if isinstance(data, list | Mapping) and len(data) > MAX_VARIABLES:
        raise InvalidInput(f"variables: {len(data)} entries (at most {MAX_VARIABLES})")
    return frozenset(_names(data))
