"""Find credentials written literally into configuration rows.

Configuration can carry credentials: an external data source's password, a storage's
secret access key, an authenticator's client secret. NocoBase's way to keep them out of
configuration is a variable reference (``{{$env.NAME}}``). Ferry refuses to write a
literal credential into an exported snapshot (a Git repository); this module finds them.
Only paths are reported, never values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|secret|api[_-]?key|private[_-]?key|access[_-]?key[_-]?(id|secret)?"
    r"|client[_-]?secret|(access|refresh|auth|bearer)?[_-]?token)$",
    re.IGNORECASE,
)
_ENV_REF = re.compile(r"^\s*\{\{\s*\$env\.[A-Za-z_][A-Za-z0-9_]*\s*\}\}\s*$")
_NOT_SECRET = re.compile(
    r"(tokens|token(s)?(count|limit|type|expir\w*|url|endpoint)|"
    r"enable\w*|\w*policy|\w*length|\w*(field|name|label|title))$",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET.search(name)


def _literal(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != "" and not _ENV_REF.match(value)


def _walk(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            where = f"{path}.{key}"
            if is_secret_name(str(key)) and _literal(child):
                yield where
            else:
                yield from _walk(child, where)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _walk(child, f"{path}[{i}]")


def secret_paths(column: str, value: Any, is_json: bool) -> list[str]:
    """Paths inside one column value that hold a literal credential."""
    if value is None:
        return []
    if is_secret_name(column) and _literal(value) and not is_json:
        return [column]
    if is_json and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return []
    if isinstance(value, (dict, list)):
        return list(_walk(value, column))
    return []
