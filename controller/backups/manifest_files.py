"""The ``files`` section of a format 4 manifest: the application's files in a backup.

NocoBase keeps uploaded files beside its database (``storage/uploads``); a backup of
the rows alone restores attachments that point at nothing. A format 4 backup holds
every file below the Environment's files root as one member under ``files/``, and its
manifest lists them here with their size and sha256, and says how consistent the files
are with the rows (see :data:`CONSISTENCY`). Parsing checks every path and key, like
the rest of :mod:`controller.backups.manifest_reader`: a manifest is untrusted text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from controller.backups import layout
from controller.backups.manifest_fields import count, fail, string, timestamp

#: ``quiesced``: the application was stopped, so files and rows are of one moment.
#: ``copied-after-snapshot``: the rows are of ``snapshot_at``; each file was copied
#: between ``copied_from`` and ``copied_until``, while the application could write.
CONSISTENCY = ("quiesced", "copied-after-snapshot")
_FIELDS = frozenset(
    {
        "source",
        "consistency",
        "snapshot_at",
        "copied_from",
        "copied_until",
        "exclude",
        "entries",
        "skipped",
    }
)
_ENTRY_FIELDS = frozenset({"path", "key", "bytes", "sha256"})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the files root, "/"-separated
    key: str  # the member's object key, "files/<NNNNNN>-<name>"
    bytes: int
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "key": self.key, "bytes": self.bytes, "sha256": self.sha256}


@dataclass(frozen=True)
class FilesSection:
    source: str  # where the files were copied from (a path or s3://bucket/prefix)
    consistency: str
    snapshot_at: str
    copied_from: str
    copied_until: str
    exclude: tuple[str, ...]
    entries: tuple[FileEntry, ...]
    # Below the root but not backed up: symlinks (never followed), sockets, devices,
    # names a restore could not write; listed so that nothing is left out silently.
    skipped: tuple[str, ...] = ()

    @property
    def bytes(self) -> int:
        return sum(e.bytes for e in self.entries)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "consistency": self.consistency,
            "snapshot_at": self.snapshot_at,
            "copied_from": self.copied_from,
            "copied_until": self.copied_until,
            "exclude": list(self.exclude),
            "entries": [e.to_dict() for e in self.entries],
            "skipped": list(self.skipped),
        }


def _entry(item: object, index: int, where: str) -> FileEntry:
    here = f"{where}: file {index}"
    if not isinstance(item, dict) or set(item) != _ENTRY_FIELDS:
        fail(here, f"must be an object with exactly {', '.join(sorted(_ENTRY_FIELDS))}")
    path = layout.file_path(item["path"], f"{here}: path")
    here = f"{where}: file {path[:120]!r}"
    key = layout.object_key(item["key"], f"{here}: member key")
    if not key.startswith("files/"):
        fail(here, f"member key {key!r} is outside the backup's files/", "InvalidPath")
    size, sha = count(item, "bytes", here), item["sha256"]
    if not isinstance(sha, str) or not _SHA256.match(sha):
        fail(here, "field sha256 must be 64 lowercase hex digits")
    return FileEntry(path, key, size, sha)


def _no_clashes(entries: tuple[FileEntry, ...], where: str) -> None:
    """Two entries may not share a path or key, and no path may be another's directory
    (``a`` and ``a/b``): a restore would have to make one thing both."""
    paths = {e.path for e in entries}
    if len(paths) != len(entries) or len({e.key for e in entries}) != len(entries):
        fail(where, "two files have the same path or member key")
    for entry in entries:
        parts = entry.path.split("/")
        for depth in range(1, len(parts)):
            if "/".join(parts[:depth]) in paths:
                fail(where, f"file {entry.path[:120]!r} lies below another file")


def parse_files(data: object, where: str) -> FilesSection | None:
    """The ``files`` field of a format 4 manifest (``null``: a backup without files)."""
    if data is None:
        return None
    where = f"{where}: files"
    if not isinstance(data, dict) or set(data) != _FIELDS:
        fail(where, f"must be an object with exactly {', '.join(sorted(_FIELDS))}")
    consistency = data["consistency"]
    if consistency not in CONSISTENCY:
        fail(where, f"field consistency must be one of {', '.join(CONSISTENCY)}")
    exclude, skipped = data["exclude"], data["skipped"]
    if not isinstance(exclude, list) or not all(
        isinstance(p, str) and 0 < len(p) <= 1024 for p in exclude
    ):
        fail(where, "field exclude must be a list of patterns")
    if not isinstance(skipped, list) or not all(
        isinstance(p, str) and len(p) <= 4096 for p in skipped
    ):
        fail(where, "field skipped must be a list of paths")
    items = data["entries"]
    if not isinstance(items, list):
        fail(where, "field entries must be a list")
    entries = tuple(_entry(item, i, where) for i, item in enumerate(items))
    _no_clashes(entries, where)
    return FilesSection(
        source=string(data, "source", where),
        consistency=str(consistency),
        snapshot_at=timestamp(data, "snapshot_at", where),
        copied_from=timestamp(data, "copied_from", where),
        copied_until=timestamp(data, "copied_until", where),
        exclude=tuple(exclude),
        entries=entries,
        skipped=tuple(skipped),
    )
