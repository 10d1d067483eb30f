"""Migration IDs: the one syntax every entry point checks before touching a database.

A migration ID becomes the primary key of the target's ``ferry_migrations`` ledger
(a ``VARCHAR(190)``: the longest key MariaDB indexes in ``utf8mb4``) and a segment of
a backup-store key (``<env>/<backup>/post/<id>.json.zst``). An ID that either place
cannot hold used to be discovered only after the commit, leaving the target changed
with exit 2; checking the syntax first makes "invalid ID" mean "nothing changed".

The alphabet is the store's: ASCII letters, digits, ``.``, ``_`` and ``-``, starting
with a letter or digit, so an ID can never be an option (``-x``), a path (``a/b``,
``..``) or carry whitespace or control characters into a log line. The operator's
IDs (``<namespace>.<name>.<uid8>``) are in it.
"""

from __future__ import annotations

import re

from controller.errors import InvalidInput

MIGRATION_ID_MAX = 190  # == the ledger's id column (controller/db/ledger.py)
MIGRATION_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MIGRATION_ID_MAX - 1}}}$"
_MIGRATION_ID = re.compile(MIGRATION_ID_PATTERN)
_SHOWN = 80  # an absurdly long ID is shown cut, with its length


def _shown(value: str) -> str:
    if len(value) <= _SHOWN:
        return repr(value)
    return f"{value[:_SHOWN]!r}… ({len(value)} characters)"


def validate_migration_id(value: str | None) -> str | None:
    """``value`` if it is a valid migration ID (``None``: one will be derived later).

    Raises :class:`InvalidInput` naming the value and the rule it breaks.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"invalid migration ID {value!r}: expected a string")
    if _MIGRATION_ID.fullmatch(value):
        return value
    if not value:
        problem = "it is empty"
    elif len(value) > MIGRATION_ID_MAX:
        problem = f"at most {MIGRATION_ID_MAX} characters"
    elif not value[0].isascii() or not value[0].isalnum():
        problem = "it must start with a letter or digit"
    else:
        problem = "use only letters, digits, '.', '_' and '-'"
    raise InvalidInput(f"invalid migration ID {_shown(value)}: {problem}")
