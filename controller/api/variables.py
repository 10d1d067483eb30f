"""Target variables for the ``{{$env.NAME}}`` check: the CLI's ``--variables`` file.

Accepted shapes: a list of ``{name, type}`` (values optional, never needed for the
check) or a mapping of names to values. Only the names are kept, so a values file
can be passed without its secrets ever entering a plan or a log.
"""

from __future__ import annotations

import re
from typing import Any

from controller.errors import InvalidInput

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def parse_variable_names(data: Any) -> frozenset[str]:
    names: list[str] = []
    if data is None:
        return frozenset()
    if isinstance(data, dict):
        names = [str(k) for k in data]
    elif isinstance(data, list):
        for i, item in enumerate(data):
            if isinstance(item, dict) and "name" in item:
                names.append(str(item["name"]))
            elif isinstance(item, str):
                names.append(item)
            else:
                raise InvalidInput(
                    f"variables[{i}]: expected {{name, type}} or a name, got {item!r}"
                )
    else:
        raise InvalidInput("variables: expected a list of {name, type} or a mapping of names")
    bad = [n for n in names if not _NAME.match(n)]
    if bad:
        raise InvalidInput(f"variables: invalid name(s): {', '.join(bad)}")
    return frozenset(names)
