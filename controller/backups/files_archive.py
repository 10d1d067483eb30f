"""Copy an application's files into a backup, prove them, and put them back.

Each file is one member under ``files/`` holding its bytes as they are (uploads are
mostly compressed already), streamed in 1 MiB pieces through the hashing sink of
:mod:`controller.backups.archive` (and the backup's cipher, when the store encrypts),
so memory does not grow with a file. A restore reads every member twice: once to
prove its checksum before anything changes, once to write it, and refuses a file
whose bytes differ the second time too, before it replaces anything.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from controller.backups import layout
from controller.backups.archive import READ_CHUNK, HashingFile, open_plain
from controller.backups.fileroots import FilesRoot, Sink, excluded
from controller.backups.manifest import Manifest
from controller.backups.manifest_files import FileEntry, FilesSection
from controller.backups.store import BackupStore, BackupWriter
from controller.errors import InvalidInput


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def _write_file_member(writer: BackupWriter, key: str, path: str, src: BinaryIO) -> FileEntry:
    local = writer.member_file(key)
    cipher = writer.cipher
    with local.open("wb") as raw:
        encrypted = cipher.writer(raw, key) if cipher else None
        sink = HashingFile(encrypted or raw)
        while chunk := src.read(READ_CHUNK):
            sink.write(chunk)
        if encrypted:
            encrypted.finish()
    writer.member_done(key)
    return FileEntry(path=path, key=key, bytes=sink.size, sha256=sink.hash.hexdigest())


def backup_files(
    writer: BackupWriter, root: FilesRoot, snapshot_at: str, quiesced: bool
) -> FilesSection:
    """Every file below ``root`` (but the excluded ones) as members of the backup.

    Called while the database's read snapshot is still open, after its rows were
    copied: the files are of a moment after the rows', unless the application was
    stopped (``quiesced``), which is what the manifest says."""
    started = _now()
    entries = []
    scan = root.scan()
    for index, (path, _size) in enumerate(scan.files):
        try:
            src = root.open(path)
        except FileNotFoundError:
            continue  # removed since it was listed: it is not of this backup's moment
        with src:
            entries.append(_write_file_member(writer, layout.file_key(index, path), path, src))
    return FilesSection(
        source=root.label,
        consistency="quiesced" if quiesced else "copied-after-snapshot",
        snapshot_at=snapshot_at,
        copied_from=started,
        copied_until=_now(),
        exclude=root.exclude,
        entries=tuple(entries),
        skipped=tuple(scan.skipped),
    )


def _what(manifest: Manifest, entry: FileEntry) -> str:
    return f"backup {manifest.id}: file member {entry.key} ({entry.path[:200]!r})"


def _copy(store: BackupStore, manifest: Manifest, entry: FileEntry, sink: Sink) -> str:
    """Stream a file member into ``sink``; refuse it (by name) unless its size and
    sha256 are the manifest's."""
    h = hashlib.sha256()
    size = 0
    with open_plain(store, manifest, entry.key, _what(manifest, entry)) as f:
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
            size += len(chunk)
            sink(chunk)
    if size != entry.bytes or h.hexdigest() != entry.sha256:
        raise InvalidInput(
            f"{_what(manifest, entry)} is corrupted or truncated: {size} bytes, sha256 "
            f"{h.hexdigest()[:12]}…, expected {entry.bytes} bytes, sha256 {entry.sha256[:12]}…",
            reason="BackupCorrupted",
        )
    return entry.sha256


def verify_files(store: BackupStore, manifest: Manifest) -> list[str]:
    """Read every file member and check its size and sha256; return the problems."""
    problems = []
    for entry in manifest.files.entries if manifest.files else ():
        try:
            _copy(store, manifest, entry, lambda _chunk: None)
        except InvalidInput as err:
            problems.append(err.message)
    return problems


@dataclass(frozen=True)
class FilesRestored:
    root: str
    written: int
    unchanged: int
    displaced: tuple[str, ...]  # moved aside below .ferry-displaced/<stamp>/
    stamp: str

    def to_dict(self) -> dict[str, object]:
        return {
            "root": self.root,
            "written": self.written,
            "unchanged": self.unchanged,
            "displaced": len(self.displaced),
            "displacedTo": f".ferry-displaced/{self.stamp}/" if self.displaced else None,
        }


def wanted_paths(manifest: Manifest, root: FilesRoot) -> list[str]:
    """The backup's files a restore into ``root`` writes (exclusions apply both ways)."""
    section = manifest.files
    if section is None:
        return []
    patterns = (*section.exclude, *root.exclude)
    return [e.path for e in section.entries if not excluded(e.path, patterns)]


def restore_files(
    store: BackupStore, manifest: Manifest, root: FilesRoot, stamp: str
) -> FilesRestored:
    """Make ``root`` hold exactly the backup's files: write those that differ, move
    aside those it does not hold (excluded paths are never touched)."""
    section = manifest.files
    assert section is not None
    wanted = set(wanted_paths(manifest, root))
    patterns = (*section.exclude, *root.exclude)
    root.check_target(sorted(wanted))
    extra = [p for p, _ in root.scan().files if p not in wanted and not excluded(p, patterns)]
    for path in extra:
        root.displace(path, stamp)
    written = unchanged = 0
    replaced = []
    for entry in section.entries:
        if entry.path not in wanted:
            continue
        current = root.digest(entry.path)
        if current == entry.sha256:
            unchanged += 1
            continue
        root.install(entry.path, _filler(store, manifest, entry), stamp)
        written += 1
        if current is not None:
            replaced.append(entry.path)
    return FilesRestored(root.label, written, unchanged, (*extra, *replaced), stamp)


def _filler(store: BackupStore, manifest: Manifest, entry: FileEntry) -> Callable[[Sink], str]:
    return lambda sink: _copy(store, manifest, entry, sink)
