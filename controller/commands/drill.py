"""A restore drill: prove a backup restores, on a scratch database, then clear it.

The drill restores every table of a completed backup into an empty scratch database
with the ordinary restore (which first decodes every member and checks its checksum
and row count), then backs the scratch database up again into a throw-away store with
the ordinary backup writer and compares each member's row count and sha256 with the
manifest's: the bytes that came out of the archive and went through the database are
the bytes that went in. A backup with the application's files has every file member
read and checked against its size and sha256 (files are never written anywhere by a
drill). Whatever the drill created in the scratch database is dropped afterwards, and a
SQLite file it created is removed.

It refuses (invalid input, nothing changed) a scratch database that is not empty or
that is the database the backup was taken from.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from controller.api.bootcheck import BootResult
from controller.backups.archive import member_schema, read_record_batches, verify_backup
from controller.backups.arrow_codec import record_batch
from controller.backups.files_archive import verify_files
from controller.backups.manifest import Manifest, Member
from controller.backups.store import BackupStore
from controller.commands.backup import database_identity, restore
from controller.db.database import Database, ReadSnapshot
from controller.db.urls import parse, redact
from controller.engine.profiles import LEDGER_TABLE
from controller.engine.progress import NO_PROGRESS, Progress
from controller.errors import CheckFailed, InvalidInput, PermanentError

PASSED = "Passed"
FAILED = "Failed"


@dataclass(frozen=True)
class TableCheck:
    """One table of the drill: what the manifest promised, what the scratch held."""

    table: str
    expected_rows: int
    rows: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "expectedRows": self.expected_rows,
            "rows": self.rows,
            "outcome": PASSED if self.ok else FAILED,
            "problem": self.problem,
        }


@dataclass(frozen=True)
class FilesCheck:
    """The backup's application files: every file member read and checked against the
    size and sha256 its manifest lists (a drill restores rows, never files, so this is
    the evidence that the files would restore)."""

    count: int
    bytes: int
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {
            "count": self.count,
            "bytes": self.bytes,
            "outcome": PASSED if self.ok else FAILED,
            "problems": list(self.problems),
        }


def check_files(store: BackupStore, manifest: Manifest) -> FilesCheck | None:
    """Every file member of the backup proven, or None for a backup without files."""
    section = manifest.files
    if section is None:
        return None
    return FilesCheck(len(section.entries), section.bytes, tuple(verify_files(store, manifest)))


@dataclass(frozen=True)
class DrillResult:
    backup: Manifest
    scratch: str  # redacted
    seconds: float
    tables: tuple[TableCheck, ...]
    problems: tuple[str, ...] = field(default=())  # the backup's own (it did not restore)
    boot: BootResult | None = None  # the application booted against the restored copy
    files: FilesCheck | None = None  # the backup's file members, proven

    @property
    def restored(self) -> bool:
        files_ok = self.files is None or self.files.ok
        return files_ok and not self.problems and all(t.ok for t in self.tables)

    @property
    def passed(self) -> bool:
        return self.restored and (self.boot is None or self.boot.healthy)

    @property
    def outcome(self) -> str:
        return PASSED if self.passed else FAILED

    def to_dict(self) -> dict[str, object]:
        return {
            "backupId": self.backup.id,
            "environment": self.backup.environment,
            "scratch": self.scratch,
            "outcome": self.outcome,
            "seconds": round(self.seconds, 3),
            "rows": sum(t.rows or 0 for t in self.tables),
            "tables": [t.to_dict() for t in self.tables],
            "problems": list(self.problems),
            "boot": self.boot.to_status() if self.boot is not None else None,
            "files": self.files.to_dict() if self.files is not None else None,
            "signature": self.backup.summary()["signature"],
        }


def _sqlite_path(url: str) -> Path | None:
    parsed = parse(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if parsed.database in (None, "", ":memory:"):
        raise InvalidInput(f"{redact(url)}: a drill needs a SQLite file, not an in-memory database")
    return Path(parsed.database or "")


@contextmanager
def _sqlite_file(url: str) -> Iterator[None]:
    """Create a SQLite scratch file that does not exist yet, and remove it afterwards."""
    path = _sqlite_path(url)
    if path is None or path.exists() or path.is_symlink():
        yield
        return
    if not path.parent.is_dir():
        raise InvalidInput(f"{redact(url)}: no directory {path.parent} for the scratch file")
    path.touch(exist_ok=False)
    try:
        yield
    finally:
        for leftover in (path, *(Path(f"{path}{s}") for s in ("-journal", "-wal", "-shm"))):
            leftover.unlink(missing_ok=True)


def _refuse_unfit(manifest: Manifest, db: Database) -> None:
    """The scratch database must be empty and must not be the backup's own database."""
    with db.reader() as snap:
        tables = sorted(snap.schema().tables)
        identity = database_identity(snap)
    if manifest.source is not None and identity == manifest.source:
        raise InvalidInput(
            f"{db.label} is the database backup {manifest.id} was taken from; a drill "
            "restores into a scratch database, never into its source"
        )
    if tables:
        shown = ", ".join(tables[:5]) + (", …" if len(tables) > 5 else "")
        raise InvalidInput(
            f"{db.label} is not empty ({len(tables)} table(s): {shown}); a drill needs an "
            "empty scratch database, and drops everything in it afterwards"
        )


def _clear(db: Database) -> None:
    """Drop every table in the scratch database (it was empty before the drill)."""
    with db.reader() as snap:
        tables = sorted(snap.schema().tables)
    if tables:
        with db.writer() as session:
            for name in tables:
                session.drop_table(name)


def _damaged(store: BackupStore, manifest: Manifest) -> tuple[TableCheck, ...]:
    """Which members do not decode or match their checksum, table by table."""
    checks = []
    for member in manifest.members:
        problems = verify_backup(store, manifest, {member.table})
        checks.append(TableCheck(member.table, member.rows, problem="; ".join(problems) or None))
    return tuple(checks)


class _Rows:
    """A stream of record batches, read as consecutive slices of any length."""

    def __init__(self, batches: Iterable[pa.RecordBatch]) -> None:
        self._batches = iter(batches)
        self._current: pa.RecordBatch | None = None
        self._at = 0
        self.count = 0  # rows taken so far

    def available(self) -> int:
        """Rows left in the current batch (the next one loaded if needed); 0 at the end."""
        while self._current is None or self._at == self._current.num_rows:
            self._current, self._at = next(self._batches, None), 0
            if self._current is None:
                return 0
        return int(self._current.num_rows - self._at)

    def take(self, n: int) -> pa.RecordBatch:
        assert self._current is not None
        part = self._current.slice(self._at, n)
        self._at += n
        self.count += n
        return part

    def drain(self) -> None:
        while n := self.available():
            self.take(n)


def _first_difference(archived: _Rows, restored: _Rows) -> str | None:
    """Walk both streams in step: the first row that differs, or None (a stream that
    ends first is told by the row counts)."""
    while n := min(archived.available(), restored.available()):
        a, b = archived.take(n), restored.take(n)
        if a.equals(b):
            continue
        for i in range(n):
            if not a.slice(i, 1).equals(b.slice(i, 1)):
                return f"row {archived.count - n + i + 1} differs from the archive"
    return None


def _restored_batches(
    snap: ReadSnapshot, member: Member, schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """The scratch table's rows as record batches of the member's own Arrow schema, read
    as a backup reads them."""
    fast = snap.arrow_batches(member.table, schema)
    if fast is not None:
        yield from fast
        return
    for rows in snap.archive_batches(member.table, member.table_schema.column_names):
        yield record_batch(schema, rows)


def _check_table(
    store: BackupStore, manifest: Manifest, member: Member, snap: ReadSnapshot
) -> TableCheck:
    schema = member_schema(member, manifest.dialect)
    archived = _Rows(read_record_batches(store, manifest, member))
    restored = _Rows(_restored_batches(snap, member, schema))
    try:
        difference = _first_difference(archived, restored)
    except (PermanentError, pa.ArrowException) as err:
        difference = f"the restored rows do not fit the archive's columns: {err}"
    restored.drain()  # count what is left
    if restored.count != member.rows:
        difference = f"{restored.count} rows restored, the manifest says {member.rows}"
    return TableCheck(member.table, member.rows, restored.count, difference)


def _read_back(store: BackupStore, manifest: Manifest, db: Database) -> tuple[TableCheck, ...]:
    """Each restored table, read back as a backup would read it, compared row by row with
    its archive member (whose checksum is proven again as it is read)."""
    with db.reader() as snap:
        present = set(snap.schema().tables) - {LEDGER_TABLE}
        checks = [
            _check_table(store, manifest, m, snap)
            if m.table in present
            else TableCheck(m.table, m.rows, problem="not in the scratch database")
            for m in manifest.members
        ]
    extra = sorted(present - set(manifest.tables))
    checks += [
        TableCheck(t, 0, problem="in the scratch database but not in the backup") for t in extra
    ]
    return tuple(checks)


@dataclass(frozen=True)
class RestoreCheck:
    """A backup restored into an empty database and read back: each table's check, the
    backup's own problems, and, when the database would not take the backup's rows,
    its refusal alone (``refused``: the cause, without the state the restore left)."""

    tables: tuple[TableCheck, ...]
    problems: tuple[str, ...] = ()
    refused: str | None = None


def _run(store: BackupStore, manifest: Manifest, db: Database, progress: Progress) -> RestoreCheck:
    try:
        restore(store, manifest.id, db.url, safety=False, force=True, progress=progress)
    except CheckFailed as err:
        if err.reason == "BackupCorrupted":
            checks = _damaged(store, manifest)  # the same problems, table by table
            return RestoreCheck(
                checks, () if any(not c.ok for c in checks) else tuple(err.problems)
            )
        raise
    except PermanentError as err:  # it decoded, but the database would not take it
        return RestoreCheck((), (f"the backup did not restore: {err.message}",), err.cause)
    return RestoreCheck(_read_back(store, manifest, db))


def drill(
    store: BackupStore,
    backup_id: str,
    scratch_url: str,
    progress: Progress = NO_PROGRESS,
    boot: Callable[[str], BootResult] | None = None,
) -> DrillResult:
    """Restore ``backup_id`` into the empty database at ``scratch_url``, prove every table
    matches the manifest, boot the application against it (``boot``, given the scratch
    URL) when that restored faithfully, and clear the scratch database, whatever the
    outcome."""
    manifest = store.manifest(backup_id)
    started = time.monotonic()
    with _sqlite_file(scratch_url):
        db = Database(scratch_url)
        try:
            _refuse_unfit(manifest, db)
            try:
                check = _run(store, manifest, db, progress)
                faithful = not check.problems and all(t.ok for t in check.tables)
                booted = boot(scratch_url) if boot is not None and faithful else None
            finally:
                _clear(db)
        finally:
            db.dispose()
    files = check_files(store, manifest)
    seconds = time.monotonic() - started
    return DrillResult(manifest, db.label, seconds, check.tables, check.problems, booted, files)


def restore_checked(
    store: BackupStore, manifest: Manifest, db: Database, progress: Progress = NO_PROGRESS
) -> RestoreCheck:
    """A drill without the clearing: restore ``manifest`` into the empty ``db`` and check
    every table against it (a rehearsal's copy of its target); the caller drops ``db``."""
    _refuse_unfit(manifest, db)
    return _run(store, manifest, db, progress)
