"""Scoped rollback: undo exactly what one migration wrote, keep everything else.

The migration's ledger row names its pre-migration backup; beside that backup lies the
record of what it wrote (``post_state``). A rollback compares that record with the
target: rows the migration wrote that were changed since, and values written since
into what it added, are *later edits*. They are listed and nothing happens unless the
rollback is forced; forced, it discards exactly those. Then, in one transaction where
the database allows it, the rows the migration wrote are put back from the backup,
its schema operations are reversed, and the tables it created are dropped. Rows it
never wrote are never touched. A record that is missing or unreadable stops the
rollback, naming the tables: it never falls back to restoring whole tables.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from controller.backups import layout
from controller.backups.archive import read_member, verify_backup
from controller.backups.manifest import Manifest
from controller.backups.store import BackupStore
from controller.commands.backup import revert_failed_write, safety_backup
from controller.db.database import Database, WriteSession
from controller.db.ledger import LedgerEntry, now
from controller.engine import post_state
from controller.engine.indexing import index_as
from controller.engine.model import TableSchema
from controller.engine.plan import KeySpec
from controller.engine.progress import NO_PROGRESS, RESTORING, Progress
from controller.engine.rowindex import CanonKey, RowIndex, RowShape
from controller.engine.source import Batch, SnapshotSource
from controller.engine.undo import (
    ADD_COLUMN,
    DROP_COLUMN,
    LaterEdit,
    TableRecord,
    TableRevert,
    created_edits,
    watch_edits,
    written_edits,
)
from controller.errors import (
    CheckFailed,
    FerryError,
    InvalidInput,
)


@dataclass(frozen=True)
class RollbackResult:
    migration_id: str
    backup_id: str
    tables: tuple[str, ...]
    dropped: tuple[str, ...]
    later_edits: tuple[str, ...]
    safety_backup: str | None = None
    rows: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration_id,
            "backupId": self.backup_id,
            "safetyBackupId": self.safety_backup,
            "status": "rolled-back",
            "tables": list(self.tables),
            "dropped": list(self.dropped),
            "rows": self.rows,
            "laterEdits": list(self.later_edits),
        }


def rollback(
    store: BackupStore,
    migration_id: str,
    url: str,
    *,
    force: bool = False,
    progress: Progress = NO_PROGRESS,
) -> RollbackResult:
    """Undo migration ``migration_id`` in the database at ``url``. Everything is decided
    under the target's write lock: the later edits, then a safety backup of the tables
    it touches, then the revert and its ledger row in one transaction."""
    db = Database(url)
    run = _Rollback(store, migration_id, url, force, progress)
    try:
        with db.writer() as session:
            return run.execute(session)
    except FerryError as err:
        if isinstance(err, InvalidInput) or not run.changing:
            raise  # nothing was changed: the error as it is (a busy target: 75)
        raise revert_failed_write(err, db, store, run.safety, run.tables, "rollback") from err
    finally:
        db.dispose()


class _Rollback:
    def __init__(
        self, store: BackupStore, migration_id: str, url: str, force: bool, progress: Progress
    ) -> None:
        self.store, self.migration_id, self.url, self.force = store, migration_id, url, force
        self.progress = progress
        self.safety: str | None = None
        self.tables: list[str] = []  # what the safety backup holds
        self.changing = False

    def execute(self, session: WriteSession) -> RollbackResult:
        entry = _succeeded(session.ledger_find(self.migration_id), self.migration_id)
        manifest = self.store.manifest(entry.backup_id or "")
        records = _records(self.store, manifest, entry)
        edits, indexes = later_edits(session, records)
        _refuse_unless_forced(self.migration_id, edits, self.force)
        _require_sound(self.store, manifest, records)
        self.tables = list(indexes)
        self.safety = safety_backup(
            self.url, self.store, manifest.environment, self.tables, self.progress
        )
        self.changing = True
        rows = _revert(session, self.store, manifest, records, indexes, self.progress)
        session.ledger_record(_rolled_back(entry, self.safety, len(edits)))
        return RollbackResult(
            self.migration_id,
            manifest.id,
            tuple(r.table for r in records if not r.created),
            tuple(r.table for r in records if r.created and r.table in indexes),
            tuple(str(e) for e in edits),
            self.safety,
            rows,
        )


def check_rollback(url: str, migration_id: str) -> None:
    """Refuse (InvalidInput) as :func:`rollback` would when the target's ledger holds
    nothing of ``migration_id`` to roll back; read without the write lock, before a
    Job that rolls it back is started."""
    db = Database(url)
    try:
        with db.reader() as snapshot:
            _succeeded(snapshot.ledger_find(migration_id), migration_id)
    finally:
        db.dispose()


def _succeeded(entry: LedgerEntry | None, migration_id: str) -> LedgerEntry:
    if entry is None:
        raise InvalidInput(f"migration {migration_id!r} is not in the target's ledger")
    if entry.result != "succeeded":
        raise InvalidInput(
            f"migration {migration_id} is {entry.result}: there is nothing of it to roll back"
        )
    if not entry.backup_id:
        raise InvalidInput(
            f"migration {migration_id} ran without a pre-migration backup; restore a backup instead"
        )
    return entry


def _records(store: BackupStore, manifest: Manifest, entry: LedgerEntry) -> list[TableRecord]:
    """The migration's record of every table it touched; refuses when any is missing."""
    touched = list(entry.summary.get("changedTables", []))
    key = layout.post_state_key(entry.id)
    data = store.get_extra(manifest, key)
    records = post_state.decode(data, f"the record of migration {entry.id}") if data else {}
    missing = [t for t in touched if t not in records]
    if missing:
        raise CheckFailed(
            f"what migration {entry.id} wrote is not recorded for table(s) "
            f"{', '.join(missing)}; nothing was rolled back (restore a backup instead)",
            reason="PostStateMissing",
        )
    schema_tables = {t for t, info in entry.summary.get("tables", {}).items() if info.get("schema")}
    return [_with_v1_ops(records[t], manifest, t in schema_tables) for t in touched]


def _with_v1_ops(record: TableRecord, manifest: Manifest, had_schema: bool) -> TableRecord:
    """Format-1 records lack the schema operations: the ledger says whether there were
    any, and the backup's table against the current one says which columns."""
    if record.complete or not had_schema:
        return record
    member = manifest.member(record.table)
    if member is None:
        return replace(record, ops=(("create-table", record.table),))
    before = set(member.table_schema.column_names)
    after = set(record.types) | set(record.compared)
    ops = [(ADD_COLUMN, c) for c in sorted(after - before)]
    ops += [(DROP_COLUMN, c) for c in sorted(before - after)]
    return replace(record, ops=tuple(ops))


def later_edits(
    target: SnapshotSource, records: Sequence[TableRecord]
) -> tuple[list[LaterEdit], dict[str, RowIndex]]:
    """What was written since into what the migration wrote or added, and the index of
    each table's rows as the records key them."""
    edits: list[LaterEdit] = []
    indexes: dict[str, RowIndex] = {}
    schema = target.schema()
    for record in records:
        table = schema.table(record.table)
        if table is None:
            if not record.created:
                what = "was dropped since; what the migration wrote cannot be put back"
                edits.append(LaterEdit(record.table, "", "", what))
            continue
        ks = KeySpec(record.key, record.compared, record.pk, natural=False, pk_reassignable=False)
        index = index_as(target, table, ks, record.types)
        indexes[record.table] = index
        edits += written_edits(record, index)
        if record.created:
            edits += created_edits(record, index)
        for watch in record.watches:
            column = post_state.column_index(target, table, record, watch.column)
            null = post_state.null_digest(record.types[watch.column])
            edits += watch_edits(record, watch, column, null)
    return edits, indexes


def _require_sound(store: BackupStore, manifest: Manifest, records: Sequence[TableRecord]) -> None:
    """The backup members the revert reads are decoded and checked before anything
    changes: a damaged backup refuses the rollback instead of failing halfway."""
    problems = verify_backup(store, manifest, {r.table for r in records})
    if problems:
        raise CheckFailed(
            f"backup {manifest.id} is damaged; nothing was rolled back",
            problems=problems,
            reason="BackupCorrupted",
        )


def _refuse_unless_forced(migration_id: str, edits: list[LaterEdit], force: bool) -> None:
    if edits and not force:
        raise CheckFailed(
            f"{len(edits)} change(s) were made after migration {migration_id} to what it "
            "wrote; nothing was rolled back (--force discards exactly these)",
            problems=[str(e) for e in edits],
            reason="ChangedSinceMigration",
        )


def _revert(
    session: WriteSession,
    store: BackupStore,
    manifest: Manifest,
    records: Sequence[TableRecord],
    indexes: dict[str, RowIndex],
    progress: Progress = NO_PROGRESS,
) -> int:
    rows = 0
    touched = [r for r in records if r.table in indexes]
    progress.start(RESTORING, len(touched))
    for record in touched:
        if record.created:
            continue
        member = manifest.member(record.table)
        if member is None:
            raise CheckFailed(
                f"table {record.table} is not in backup {manifest.id}", reason="BackupMismatch"
            )
        before = member.table_schema
        index = indexes[record.table]
        steps = _steps(record, index, before, session.table(record.table), _backup(store, manifest))
        written = session.revert_table(steps, _values(store, manifest, before))
        rows += written
        progress.table(record.table, written)
    for record in touched:
        if record.created:
            session.drop_table(record.table)
            progress.table(record.table, 0)
    progress.done()
    return rows


def _backup(store: BackupStore, manifest: Manifest) -> Any:
    def rows(table: str) -> Iterator[Batch]:
        member = manifest.member(table)
        assert member is not None
        return read_member(store, manifest, member)

    return rows


def _values(store: BackupStore, manifest: Manifest, before: TableSchema) -> Any:
    """The backup's (primary key…, columns…) rows, for columns whose values come back."""
    pk = before.primary_key
    if not pk:

        def refuse(columns: Sequence[str]) -> Iterator[Batch]:
            raise CheckFailed(
                f"table {before.name} has no primary key: the values of "
                f"{', '.join(columns)} cannot be matched to its rows",
                reason="NoKey",
            )

        return refuse
    names = before.column_names

    def values(columns: Sequence[str]) -> Iterator[Batch]:
        pos = [names.index(c) for c in [*pk, *columns]]
        for batch in _backup(store, manifest)(before.name):
            yield [tuple(row[i] for i in pos) for row in batch]

    return values


def _steps(
    record: TableRecord, index: RowIndex, before: TableSchema, now: TableSchema, backup: Any
) -> TableRevert:
    """Rows the migration wrote, as the backup has them, split by what to do now."""
    columns = tuple(c for c in before.column_names if now.column(c) is not None)
    pos = [before.column_names.index(c) for c in columns]
    ops = tuple(reversed(record.ops))
    if record.keyless_after is not None:
        rows = [tuple(r[i] for i in pos) for b in backup(record.table) for r in b]
        return TableRevert(record.table, (), columns, [], [], rows, ops, before, replace_all=True)
    hits = _backup_rows(record, before, backup(record.table)) if record.key else {}
    written = set(record.written) | set(hits)
    delete = [index.rows[k].key for k in written if k in index.rows and k not in hits]
    update = [tuple(r[i] for i in pos) for k, r in hits.items() if k in index.rows]
    insert = [tuple(r[i] for i in pos) for k, r in hits.items() if k not in index.rows]
    return TableRevert(record.table, record.key, columns, delete, update, insert, ops, before)


def _backup_rows(
    record: TableRecord, before: TableSchema, batches: Iterator[Batch]
) -> dict[CanonKey, tuple[Any, ...]]:
    """Backup rows the migration wrote; for format-1 records also those it deleted."""
    shape = RowShape(
        record.table,
        before.column_names,
        [record.types.get(c.name) or c.type for c in before.columns],
        key_columns=record.key,
        compared_columns=(),
        pk_columns=(),
        side="backup",
    )
    hits = {}
    for batch in batches:
        for row in batch:
            key = shape.canon_key(shape.raw_key(row))
            if key in record.written or not record.complete:
                hits[key] = row
    return hits


def _rolled_back(entry: LedgerEntry, safety: str | None, discarded: int) -> LedgerEntry:
    undo = {"at": now(), "safetyBackupId": safety, "laterEditsDiscarded": discarded}
    return replace(
        entry,
        result="rolled-back",
        finished_at=now(),
        summary={**entry.summary, "rolledBackAt": undo["at"], "rollback": undo},
    )
