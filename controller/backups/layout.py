"""The one place that knows where a backup's objects live in a store.

::

    <environment>/<backup-id>/manifest.json        written last: the backup is complete
    <environment>/<backup-id>/tables/<table>.arrow Arrow IPC stream, zstd-compressed
    <environment>/<backup-id>/post/<migration>.json.zst  row digests after a migration
"""

from __future__ import annotations

import re

from controller.errors import InvalidInput

MANIFEST = "manifest.json"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")


def _check(part: str, what: str) -> str:
    if not _SAFE.match(part):
        raise InvalidInput(f"invalid {what} {part!r} for a backup path")
    return part


def prefix(environment: str, backup_id: str) -> str:
    return f"{_check(environment, 'environment name')}/{_check(backup_id, 'backup ID')}/"


def manifest_key(environment: str, backup_id: str) -> str:
    return prefix(environment, backup_id) + MANIFEST


def member_key(table_index: int, table: str) -> str:
    """Relative to the backup prefix; the index keeps odd table names apart."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", table)[:100]
    return f"tables/{table_index:04d}-{safe}.arrow"


def post_state_key(migration_id: str) -> str:
    return f"post/{_check(migration_id, 'migration ID')}.json.zst"


def split(key: str) -> tuple[str, str, str] | None:
    """``(environment, backup_id, rest)`` of an object key, or None."""
    parts = key.split("/", 2)
    if len(parts) < 3:
        return None
    return parts[0], parts[1], parts[2]
