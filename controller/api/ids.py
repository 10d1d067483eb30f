"""Migration and backup IDs: the one syntax every entry point checks before touching
a database or a store.

A migration ID becomes the primary key of the target's ``ferry_migrations`` ledger
(a ``VARCHAR(190)``: the longest key MariaDB indexes in ``utf8mb4``) and a segment of
a backup-store key (``<env>/<backup>/post/<id>.json.zst``). An ID that either place
cannot hold used to be discovered only after the commit, leaving the target changed
with exit 2; checking the syntax first makes "invalid ID" mean "nothing changed".

The alphabet is the store's: ASCII letters, digits, ``.``, ``_`` and ``-``, starting
with a letter or digit, so an ID can never be an option (``-x``), a path (``a/b``,
``..``) or carry whitespace or control characters into a log line. The operator's
IDs (``<namespace>.<name>.<uid8>``) are in it.

A backup ID (``ferry backup create --id``, the one the operator chooses for a Job) is a
directory or key prefix of its own (``<env>/<backup>/``): the same alphabet, at most
:data:`BACKUP_ID_MAX` characters (``controller.backups.layout``) and no ``..``.
"""

from __future__ import annotations

import re

from controller.errors import InvalidInput

MIGRATION_ID_MAX = 190  # == the ledger's id column (controller/db/ledger.py)
MIGRATION_ID_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{MIGRATION_ID_MAX - 1}}}$"
_MIGRATION_ID = re.compile(MIGRATION_ID_PATTERN)
BACKUP_ID_MAX = 128  # == controller.backups.layout's backup ID
_BACKUP_ID = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{BACKUP_ID_MAX - 1}}}$")
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
    return _validated(value, "migration ID", _MIGRATION_ID, MIGRATION_ID_MAX)


def validate_backup_id(value: str | None) -> str | None:
    """``value`` if it is a valid backup ID (``None``: the command chooses one)."""
    if value is None:
        return None
    return _validated(value, "backup ID", _BACKUP_ID, BACKUP_ID_MAX, dots=False)


def _validated(
    value: object, what: str, pattern: re.Pattern[str], longest: int, dots: bool = True
) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"invalid {what} {value!r}: expected a string")
    if pattern.fullmatch(value) and (dots or ".." not in value):
        return value
    if not value:
        problem = "it is empty"
    elif len(value) > longest:
        problem = f"at most {longest} characters"
    elif not value[0].isascii() or not value[0].isalnum():
        problem = "it must start with a letter or digit"
    elif pattern.fullmatch(value):
        problem = "it may not hold '..'"
    else:
        problem = "use only letters, digits, '.', '_' and '-'"
    raise InvalidInput(f"invalid {what} {_shown(value)}: {problem}")
