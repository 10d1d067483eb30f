"""The one place that knows where a backup's objects live in a store.

::

    <environment>/<backup-id>/manifest.json        written last: the backup is complete
    <environment>/<backup-id>/tables/<NNNN>-<table>.arrow  Arrow IPC stream, zstd-compressed
    <environment>/<backup-id>/post/<migration>.json.zst  row digests after a migration
    <environment>/<backup-id>/base/<migration>.json.zst  the rows a three-way merge promoted
    <environment>/<backup-id>/files/<NNNNNN>-<name>  one of the application's files (format 4)

Every name that becomes part of an object key (environment, backup ID, member and
extra keys) is checked here, so nothing read from a manifest or typed by a user can
point outside its backup's own prefix (no ``..``, no absolute path, no other backup).
"""

from __future__ import annotations

import re

from controller.api.ids import BACKUP_ID_MAX
from controller.errors import InvalidInput

MANIFEST = "manifest.json"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
_BACKUP_ID = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{BACKUP_ID_MAX - 1}}}$")
#: Relative keys of a backup's objects: one directory level, one plain file name.
_OBJECT_KEY = re.compile(r"^(tables|post|base|files)/[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
#: The longest relative path of an application's file that a manifest may name.
MAX_FILE_PATH = 4096
NAME_MAX = 255  # bytes of one path component on Linux file systems


def _check(part: object, what: str, pattern: re.Pattern[str] = _SAFE) -> str:
    if not isinstance(part, str) or not pattern.match(part) or ".." in part:
        shown = part[:80] if isinstance(part, str) else part
        raise InvalidInput(f"invalid {what} {shown!r} for a backup path", reason="InvalidPath")
    return part


def environment(name: object) -> str:
    """An environment's name as a store directory: one safe path component."""
    return _check(name, "environment name")


def backup_id(value: object) -> str:
    return _check(value, "backup ID", _BACKUP_ID)


def prefix(env: str, backup: str) -> str:
    return f"{environment(env)}/{backup_id(backup)}/"


def manifest_key(env: str, backup: str) -> str:
    return prefix(env, backup) + MANIFEST


def member_key(table_index: int, table: str) -> str:
    """Relative to the backup prefix; the index keeps odd table names apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", table)[:100]
    return f"tables/{table_index:04d}-{safe}.arrow"


def object_key(key: object, what: str = "object key") -> str:
    """A key relative to a backup, confined to it: ``tables/``, ``post/`` or ``base/<file>``."""
    return _check(key, what, _OBJECT_KEY)


def file_key(index: int, path: str) -> str:
    """A file member's key: the index keeps files apart, the name helps a person."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", path.rsplit("/", 1)[-1]).lstrip("._-")[:100]
    return f"files/{index:06d}-{safe or 'file'}"


def file_path(value: object, what: str = "file path") -> str:
    """An application file's path relative to its root, as a manifest names it:
    ``/``-separated, never absolute, no empty, ``.`` or ``..`` part, no NUL or control
    character. Whatever a manifest says, a restored file stays below its root."""
    ok = isinstance(value, str) and 0 < len(value) <= MAX_FILE_PATH
    if ok:
        assert isinstance(value, str)
        parts = value.split("/")
        ok = all(p not in ("", ".", "..") and len(p.encode()) <= NAME_MAX for p in parts)
        ok = ok and all(ch.isprintable() for ch in value)
    if not ok:
        shown = value[:80] if isinstance(value, str) else value
        raise InvalidInput(f"invalid {what} {shown!r}: outside its root", reason="InvalidPath")
    return str(value)


def post_state_key(migration_id: str) -> str:
    return f"post/{_check(migration_id, 'migration ID')}.json.zst"


def base_key(migration_id: str) -> str:
    """The base a three-way merge promoted (controller.commands.merging), for the next."""
    return f"base/{_check(migration_id, 'migration ID')}.json.zst"


def split(key: str) -> tuple[str, str, str] | None:
    """``(environment, backup_id, rest)`` of an object key, or None."""
    parts = key.split("/", 2)
    if len(parts) < 3:
        return None
    return parts[0], parts[1], parts[2]
