"""Back up a database into a store, verify a backup, and restore it.

A restore proves the backup sound (every member decoded, every checksum: first, or on
PostgreSQL beside its writes and before the commit, see :mod:`proof`), checks
it fits the target (dialect, table naming, application version), takes a safety backup
of the target, and then replaces the tables in one transaction where the database
allows it. If the restore fails on MySQL/MariaDB, where DDL commits on its own, the
safety backup is restored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from controller.api.ids import validate_backup_id
from controller.api.reasons import RestoreReason
from controller.backups import layout
from controller.backups.archive import (
    ReadAhead,
    member_schema,
    verify_backup,
    write_member,
)
from controller.backups.arrow_codec import arrow_schema
from controller.backups.fileroots import FilesRoot
from controller.backups.files_archive import (
    FilesRestored,
    backup_files,
    restore_files,
    verify_files,
)
from controller.backups.manifest import (
    FILES_VERSION,
    FORMAT_VERSION,
    Manifest,
    Member,
    SourceIdentity,
    new_backup_id,
)
from controller.backups.store import BackupStore, BackupWriter, writing
from controller.commands.proof import Proof
from controller.db.connect import default_environment
from controller.db.database import Database, ReadSnapshot
from controller.engine.catalog import nocobase_catalog
from controller.engine.profiles import LEDGER_TABLE
from controller.engine.progress import BACKING_UP, NO_PROGRESS, RESTORING, Progress
from controller.errors import (
    CheckFailed,
    FerryError,
    InvalidInput,
    PermanentError,
    Reverted,
    TemporaryError,
)

Fault = Callable[[str], None]


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def app_version(snap: ReadSnapshot) -> str | None:
    """NocoBase records its version in the single row of ``applicationVersion``."""
    for name in ("applicationVersion", "application_version"):
        table = snap.schema().table(name)
        if table is not None and table.column("value") is not None:
            for batch in snap.batches(name, ["value"]):
                for (value,) in batch:
                    return str(value)
    return None


def database_identity(snap: ReadSnapshot) -> SourceIdentity:
    """Which database this is, in terms that survive a reconnect and differ between
    two databases of one server or two servers of one name (see :class:`SourceIdentity`).
    """
    dialect = snap.dialect
    if dialect == "postgresql":
        rows = snap.scalar_rows(
            "select current_database(), system_identifier::text from pg_control_system()"
        )
        return SourceIdentity(dialect, str(rows[0][0]), str(rows[0][1]))
    if dialect == "mysql":
        rows = snap.scalar_rows("select database(), @@hostname, @@port, @@datadir")
        database, *server = rows[0]
        digest = hashlib.sha256("\x1f".join(map(str, server)).encode()).hexdigest()[:16]
        return SourceIdentity(dialect, str(database), f"sha256:{digest}")
    files = [str(r[2]) for r in snap.scalar_rows("pragma database_list") if r[1] == "main"]
    path = os.path.realpath(files[0]) if files and files[0] else ":memory:"
    return SourceIdentity(dialect, path, None)


def match_tables(patterns: Sequence[str], tables: Sequence[str], what: str) -> set[str]:
    """Tables named by ``patterns`` (exact names or globs); each pattern must match."""
    found: set[str] = set()
    unmatched = []
    for pattern in patterns:
        hits = {t for t in tables if fnmatchcase(t, pattern)}
        if not hits:
            unmatched.append(pattern)
        found |= hits
    if unmatched:
        raise InvalidInput(f"{what}: no table matches {', '.join(unmatched)}")
    return found


def _selected(
    all_tables: Sequence[str], tables: Sequence[str] | None, exclude: Sequence[str]
) -> list[str]:
    """The tables to back up: ``tables`` None means every table, an empty list none (a
    safety backup of files alone)."""
    available = [t for t in all_tables if t != LEDGER_TABLE]
    if tables is not None:
        available = sorted(match_tables(tables, available, "tables"))
    excluded = match_tables(exclude, list(all_tables), "exclude") if exclude else set()
    return sorted(t for t in available if t not in excluded)


def _write_table(
    writer: BackupWriter,
    snap: ReadSnapshot,
    index: int,
    name: str,
    fault: Fault | None,
    progress: Progress,
) -> Member:
    table = snap.schema().tables[name]
    dialect = snap.schema().dialect
    classes = snap.sqlite_classes(name) if dialect == "sqlite" else None
    fast = snap.arrow_batches(name, arrow_schema(table, dialect, classes))
    member = write_member(
        writer,
        layout.member_key(index, name),
        table,
        dialect,
        fast if fast is not None else snap.archive_batches(name, table.column_names),
        classes,
    )
    if fault:
        fault(f"member:{name}")
    progress.table(name, member.rows, member.bytes)
    return member


def backup_snapshot(
    snap: ReadSnapshot,
    store: BackupStore,
    environment: str,
    reason: str,
    tables: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    fault: Fault | None = None,
    progress: Progress = NO_PROGRESS,
    files: FilesRoot | None = None,
    quiesced: bool = False,
    on_publish: Callable[[], None] | None = None,
    backup_id: str | None = None,
) -> tuple[Manifest, str]:
    """Back up from an open read snapshot (one point in time), and the application's
    files below ``files`` (copied after the rows, the snapshot still open; exact only
    when the application is stopped: ``quiesced``). ``on_publish`` is called when every
    byte is written, just before the backup is published: from there it either
    publishes or fails on its own, so a caller may stop honouring interruptions.
    ``backup_id``: the ID to write (the operator's, for a Job), else a new one; a store
    that holds it complete refuses (``BackupExists``)."""
    if files is not None:
        files.probe()  # an unusable root costs no table's backup, and leaves no debris
    schema = snap.schema()
    names = _selected(sorted(schema.tables), tables, exclude)
    backup_id = validate_backup_id(backup_id) or new_backup_id()
    created = _now()
    version = app_version(snap)
    with writing(store, environment, backup_id) as writer:
        progress.start(BACKING_UP, len(names))
        members = [
            _write_table(writer, snap, i, name, fault, progress) for i, name in enumerate(names)
        ]
        section = backup_files(writer, files, created, quiesced) if files else None
        progress.done()
        manifest = Manifest(
            version=FILES_VERSION if section else FORMAT_VERSION,
            files=section,
            source=database_identity(snap),
            id=backup_id,
            environment=environment,
            reason=reason,
            created_at=created,
            completed_at=_now(),
            dialect=schema.dialect,
            server_version=schema.server_version,
            app_version=version,
            naming=nocobase_catalog().naming(set(schema.tables)),
            members=tuple(members),
        )
        if on_publish is not None:
            on_publish()
        return writer.publish(manifest)


def create_backup(
    url: str,
    store: BackupStore,
    *,
    environment: str | None = None,
    reason: str = "manual",
    tables: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    fault: Fault | None = None,
    progress: Progress = NO_PROGRESS,
    files: FilesRoot | None = None,
    quiesced: bool = False,
    on_publish: Callable[[], None] | None = None,
    backup_id: str | None = None,
) -> tuple[Manifest, str]:
    validate_backup_id(backup_id)  # before the database is touched
    db = Database(url)
    try:
        with db.reader() as snap:
            return backup_snapshot(
                snap,
                store,
                environment or default_environment(url),
                reason,
                tables,
                exclude,
                fault,
                progress,
                files,
                quiesced,
                on_publish,
                backup_id,
            )
    finally:
        db.dispose()


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("-", maxsplit=1)[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _foreign(manifest: Manifest, snap: ReadSnapshot) -> str | None:
    """Why the target is not the database the backup was taken from, or None.

    A backup of format 1 records no source: it cannot be told, and is let through. An
    empty target (no table but Ferry's ledger) loses nothing: restoring onto a fresh
    server is how a database is recovered, and needs no ``--force``."""
    source = manifest.source
    if source is None or source.dialect != snap.dialect:
        return None  # unknown, or a dialect mismatch reported on its own
    if not [t for t in snap.schema().tables if t != LEDGER_TABLE]:
        return None
    target = database_identity(snap)
    if target == source:
        return None
    return (
        f"backup {manifest.id} was taken from {source.describe()}, not from the target "
        f"{target.describe()}; restoring would replace the target's tables with another "
        "database's (use --force to restore into it anyway)"
    )


def _compatibility(manifest: Manifest, snap: ReadSnapshot, force: bool = False) -> list[str]:
    foreign = None if force else _foreign(manifest, snap)
    if foreign:
        raise CheckFailed(foreign, reason="ForeignDatabase")
    problems = []
    schema = snap.schema()
    if manifest.dialect != schema.dialect:
        problems.append(
            f"backup {manifest.id} is of a {manifest.dialect} database; the target "
            f"is {schema.dialect}"
        )
    naming = nocobase_catalog().naming(set(schema.tables))
    if manifest.naming and naming and manifest.naming != naming:
        problems.append(f"table naming differs: backup {manifest.naming}, target {naming}")
    target_version = app_version(snap)
    if (
        manifest.app_version
        and target_version
        and _version_tuple(manifest.app_version) > _version_tuple(target_version)
    ):
        problems.append(
            f"backup {manifest.id} is of application version "
            f"{manifest.app_version}, newer than the target's {target_version}"
        )
    return problems


@dataclass(frozen=True)
class RestoreResult:
    backup: Manifest
    tables: tuple[str, ...]
    dropped: tuple[str, ...]
    rows: int
    safety_backup: str | None
    undone: tuple[str, ...] = ()  # migrations whose changes this restore put back
    files: FilesRestored | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "files": self.files.to_dict() if self.files else None,
            "backupId": self.backup.id,
            "tables": list(self.tables),
            "dropped": list(self.dropped),
            "rows": self.rows,
            "safetyBackupId": self.safety_backup,
            "undoneMigrations": list(self.undone),
            "signature": self.backup.summary()["signature"],
            "status": "restored",
        }


@contextlib.contextmanager
def _read_ahead(
    store: BackupStore, manifest: Manifest, tables: Sequence[str]
) -> Iterator[Callable[[], ReadAhead]]:
    """Hands out the members of ``tables`` in order; each call also starts reading the
    next member ahead (:class:`ReadAhead`), to be ready when its turn comes."""
    members = [manifest.member(t) for t in tables]
    opened: list[ReadAhead] = []
    turns = itertools.count()

    def take() -> ReadAhead:
        turn = next(turns)
        while len(opened) < min(turn + 2, len(members)):
            member = members[len(opened)]
            assert member is not None
            opened.append(ReadAhead(store, manifest, member))
        return opened[turn]

    try:
        yield take
    finally:
        for ahead in opened:
            ahead.close()


def _apply_restore(
    db: Database,
    store: BackupStore,
    manifest: Manifest,
    tables: list[str],
    drop: list[str],
    fault: Fault | None,
    whole: bool = False,
    progress: Progress = NO_PROGRESS,
    proven: Callable[[], None] = lambda: None,
) -> tuple[int, list[str]]:
    """Replace ``tables`` and drop ``drop`` in one transaction, and record in the ledger,
    in the same transaction, which migrations the restore undid; ``proven`` raises
    before the commit if the backup turned out damaged (:mod:`proof`)."""
    rows = 0
    with db.writer() as session, _read_ahead(store, manifest, tables) as members:
        progress.start(RESTORING, len(tables))
        for name in tables:
            ahead = members()
            table = ahead.member.table_schema
            if session.copies_arrow(table, member_schema(ahead.member, manifest.dialect)):
                written = session.replace_table_arrow(table, manifest.dialect, ahead.batches())
            else:
                written = session.replace_table(table, manifest.dialect, ahead.rows())
            rows += written
            if fault:
                fault(f"restore:{name}")
            progress.table(name, written, ahead.member.bytes)
        for name in drop:
            session.drop_table(name)
        proven()  # before the commit: a damaged backup rolls all of it back
        restored = None if whole else {*tables, *drop}
        undone = session.ledger_mark_undone(manifest.id, manifest.created_at, restored)
    progress.done()  # after the commit: a restore rolled back is not done
    return rows, undone


def _put_files_back(store: BackupStore, manifest: Manifest, files: FilesRoot) -> FilesRestored:
    """After the rows: write the files. Nothing is deleted (see ``restore_files``), so a
    failure here loses nothing, and running the restore again finishes it."""
    stamp = new_backup_id()
    try:
        return restore_files(store, manifest, files, stamp)
    except (FerryError, OSError) as err:
        why = err.message if isinstance(err, FerryError) else (err.strerror or str(err))
        raise PermanentError(
            f"restore of backup {manifest.id}: the rows were restored but not every file "
            f"into {files.label}: {why}; what was replaced or removed is in "
            f".ferry-displaced/{stamp}/; run the restore again to finish",
            reason=RestoreReason.RESTORE_FAILED,
        ) from err


def _dropped(
    manifest: Manifest, existing: Sequence[str], drop: Sequence[str], whole: bool
) -> list[str]:
    """The existing tables a restore drops: those asked for, and in a whole restore
    every table the backup does not hold."""
    extra = set(existing) - set(manifest.tables) if whole else set()
    return [t for t in sorted(set(drop) | extra) if t in existing]


def restored_tables(manifest: Manifest, tables: Sequence[str] | None) -> list[str]:
    """The tables of a backup a restore of ``tables`` (default: all) writes."""
    if tables:
        return sorted(match_tables(tables, manifest.tables, f"backup {manifest.id}"))
    return list(manifest.tables)


def _targets(
    db: Database,
    manifest: Manifest,
    selected: Sequence[str],
    drop: Sequence[str],
    whole: bool,
    force: bool,
) -> tuple[list[str], list[str]]:
    """The tables a restore drops, and those it touches (for the safety backup), once
    the backup is known to fit the target."""
    with db.reader() as snap:
        problems = _compatibility(manifest, snap, force)
        existing = [t for t in snap.schema().tables if t != LEDGER_TABLE]
    if problems:
        raise CheckFailed("; ".join(problems), problems=problems, reason="Incompatible")
    to_drop = _dropped(manifest, existing, drop, whole)
    return to_drop, sorted((set(selected) | set(to_drop)) & set(existing))


def restore(
    store: BackupStore,
    backup_id: str,
    url: str,
    *,
    tables: Sequence[str] | None = None,
    whole: bool | None = None,
    drop: Sequence[str] = (),
    safety: bool = True,
    environment: str | None = None,
    force: bool = False,
    fault: Fault | None = None,
    progress: Progress = NO_PROGRESS,
    files: FilesRoot | None = None,
    quiesced: bool = False,
    on_written: Callable[[], None] | None = None,
) -> RestoreResult:
    """Restore ``tables`` (default: all) of a backup into the database at ``url``, and
    with ``files`` its application's files into that root (replacing what is there).

    A whole restore also drops tables the backup does not have (Ferry's ledger excepted).
    ``environment`` names the target in the store, for its safety backup (default: the
    backup's own environment, i.e. a restore in place). A backup of another database
    than ``url``'s is refused unless ``force`` (a deliberate copy between databases).
    The safety backup holds the files too (``quiesced``: the application is stopped).
    ``on_written`` is called once the rows are committed (the CLI then ends as restored
    whatever signal comes)."""
    manifest = store.manifest(backup_id)
    selected = restored_tables(manifest, tables)
    db = Database(url)
    proof = Proof(store, manifest, files, beside=db.dialect == "postgresql")
    safety_id: str | None = None
    try:
        whole = not tables if whole is None else whole
        to_drop, touched = _targets(db, manifest, selected, drop, whole, force)
        where = environment or manifest.environment
        if safety:
            safety_id = safety_backup(
                url, store, where, touched, progress, files=files, quiesced=quiesced
            )
        try:
            rows, undone = _apply_restore(
                db, store, manifest, selected, to_drop, fault, whole, progress, proof.check
            )
        except FerryError as err:
            proof.check(discard=safety_id)  # a damaged backup is the cause to report
            raise revert_failed_write(err, db, store, safety_id, selected) from err
    except FerryError:
        proof.check(discard=safety_id)
        raise
    finally:
        proof.close()
        db.dispose()
    if on_written is not None:
        on_written()
    put = _put_files_back(store, manifest, files) if files is not None else None
    return RestoreResult(
        manifest, tuple(selected), tuple(to_drop), rows, safety_id, tuple(undone), put
    )


def safety_backup(
    url: str,
    store: BackupStore,
    environment: str,
    tables: list[str],
    progress: Progress,
    *,
    files: FilesRoot | None = None,
    quiesced: bool = False,
) -> str | None:
    """A backup of the tables a restore or rollback is about to replace or drop, and of
    the files below ``files`` a restore is about to replace or move aside, as they are
    now: what a failed write on MySQL/MariaDB is put back from, and a user's way back
    to before the restore (a restore of it brings rows and files back)."""
    if not tables and files is None:
        return None
    safety, _ = create_backup(
        url,
        store,
        environment=environment,
        reason="pre-restore",
        tables=tables,
        progress=progress,
        files=files,
        quiesced=quiesced,
    )
    return safety.id


def revert_failed_write(
    err: FerryError,
    db: Database,
    store: BackupStore,
    safety_id: str | None,
    selected: Sequence[str],
    what: str = "restore",
) -> FerryError:
    """What to report when a restore (or a rollback, ``what``) failed while writing:
    elsewhere its transaction rolled back; on MySQL/MariaDB, where DDL commits on its
    own, the touched tables go back to the safety backup first."""
    reason = RestoreReason.ROLLBACK_FAILED if what == "rollback" else RestoreReason.RESTORE_FAILED
    if db.dialect != "mysql":
        unchanged = (
            f"{what} failed: {err.message}; the target is unchanged (the transaction was "
            "rolled back)"
        )
        if isinstance(err, TemporaryError):  # busy or dropped: worth a retry
            return type(err)(unchanged, delay=err.delay, reason=err.reason)
        return Reverted(unchanged, reason=reason, cause=err.message)
    if safety_id is None:
        return PermanentError(
            f"{what} failed: {err.message}; MySQL/MariaDB may have kept part of it and no "
            "safety backup was taken",
            reason=reason,
            cause=err.message,
        )
    safety = store.manifest(safety_id)
    created = [t for t in selected if t not in safety.tables]
    _apply_restore(db, store, safety, safety.tables, created, None)
    return Reverted(
        f"{what} failed: {err.message}; the target was put back from safety backup {safety_id}",
        reason=reason,
        cause=err.message,
    )


def verify(store: BackupStore, backup_id: str) -> tuple[Manifest, list[str]]:
    """Every table member decoded and every member (files too) checked."""
    manifest = store.manifest(backup_id)
    return manifest, verify_backup(store, manifest) + verify_files(store, manifest)
