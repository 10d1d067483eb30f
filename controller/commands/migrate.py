"""Run one migration: plan inside the target's write lock, back up, apply, verify, record.

Everything between taking the lock and committing happens in one transaction where
the database allows it (PostgreSQL, SQLite), together with the ledger row, so a
failure at any point leaves the target exactly as it was and a success is recorded
exactly once. MySQL/MariaDB commit DDL implicitly: when a failure comes after their
schema changes, the pre-migration backup of the changed tables is restored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from controller.api.ids import validate_migration_id
from controller.api.migration import MigrationPhase
from controller.api.reasons import MigrationReason
from controller.backups import layout
from controller.backups.fileroots import FilesRoot
from controller.backups.manifest import Manifest
from controller.backups.store import BackupStore
from controller.commands.backup import create_backup, restore
from controller.commands.merging import source_identity, store_base
from controller.commands.planning import PlanOptions, Prepared, prepare
from controller.commands.sources import open_source, same_database
from controller.db.connect import default_environment
from controller.db.database import Database, ReadSnapshot, WriteSession
from controller.db.ledger import LedgerEntry, now
from controller.db.writer import RowCopy
from controller.engine import post_state
from controller.engine.buckets import DigestSource
from controller.engine.indexing import index_target, index_written
from controller.engine.model import TableSchema
from controller.engine.plan import Plan, TablePlan, stale_approval
from controller.engine.progress import APPLYING, NO_PROGRESS, Progress
from controller.engine.rowindex import RowIndex
from controller.engine.schema_diff import CreateTable
from controller.engine.source import Batch, SnapshotSource
from controller.engine.verify import verify
from controller.errors import CheckFailed, FerryError, InvalidInput

Fault = Callable[[str], None]


@dataclass(frozen=True)
class MigrationRequest:
    source: str
    target: str
    options: PlanOptions = field(default_factory=PlanOptions)
    migration_id: str | None = None
    approved_digest: str | None = None
    store: BackupStore | None = None  # where the pre-migration backup goes; None: no backup
    environment: str | None = None  # the target's name in the store (default: its database)
    files: FilesRoot | None = None  # the target's application's files: in its backup
    quiesced: bool = False  # the target's application is stopped (its files are exact)
    fault: Fault | None = None  # test hook: called at each step, may raise
    on_phase: Callable[[str], None] | None = None  # told "BackingUp", "Applying"
    on_plan: Callable[[Plan], object] | None = None  # shown the plan made under the lock
    progress: Progress = NO_PROGRESS  # told each table planned, backed up and written


@dataclass(frozen=True)
class MigrationResult:
    id: str
    status: str  # succeeded | noop | failed | rolled-back
    plan: Plan | None
    message: str = ""
    target_untouched: bool = True
    digest: str = ""
    backup_id: str | None = None
    warnings: tuple[str, ...] = ()  # after the commit: what failed, without undoing it

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "digest": self.digest or (self.plan.digest if self.plan else ""),
            "backupId": self.backup_id,
        }
        if self.plan is not None:
            out["totals"] = self.plan.totals
            out["tables"] = [t.to_dict() for t in self.plan.tables]
            out["warnings"] = list(self.plan.warnings)
        if self.message:
            out["message"] = self.message
        if self.warnings:
            out["warnings"] = [*out.get("warnings", []), *self.warnings]
        if self.status in ("failed", "rolled-back"):
            out["targetUntouched"] = self.target_untouched
        return out


def new_migration_id(digest: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"m-{stamp}-{digest.removeprefix('sha256:')[:8]}"


def _with_source(options: PlanOptions, source_spec: str) -> PlanOptions:
    """The options with the source's identity, which names its base in a three-way merge."""
    return replace(options, source_id=options.source_id or source_identity(source_spec))


def plan_only(
    source_spec: str, target_url: str, options: PlanOptions, progress: Progress = NO_PROGRESS
) -> Prepared:
    if same_database(source_spec, target_url):
        raise InvalidInput("source and target are the same database")
    target = Database(target_url)
    options = _with_source(options, source_spec)
    try:
        with open_source(source_spec) as source, target.reader() as snap:
            return prepare(source, snap, options, progress)
    finally:
        target.dispose()


def _summary(plan: Plan) -> dict[str, Any]:
    changed = [t for t in plan.tables if t.changes_anything]
    return {
        "totals": plan.totals,
        "changedTables": [t.table for t in changed],
        "createdTables": [
            t.table for t in changed if any(isinstance(op, CreateTable) for op in t.schema)
        ],
        "tables": {
            t.table: {
                "rule": t.rule.value,
                "insert": t.insert,
                "update": t.update,
                "delete": t.delete,
                "schema": len(t.schema),
            }
            for t in changed
        },
    }


def _fetch(
    source: SnapshotSource, prepared: Prepared, table_plan: TablePlan
) -> Callable[[Sequence[str]], Iterator[Batch]]:
    """How the writer reads the source rows of one table: for a table planned with
    in-database digests only the rows of the buckets that differed (every planned row
    is there), else every row, through the ID maps."""
    merged = prepared.merged_rows(table_plan.table)
    if merged is not None:
        return partial(_project, prepared.source_schema.tables[table_plan.table], merged)
    planned = prepared.source_rows.get(table_plan.table)
    ks = table_plan.keyspec
    if planned is None or planned.buckets is None or ks is None:
        return partial(prepared.ids.rows, source, table_plan.table)
    assert isinstance(source, DigestSource)
    selection = planned.buckets
    return lambda columns: source.bucket_batches(
        table_plan.table, list(columns), ks.key, ks.compared, selection
    )


def _copier(
    source: SnapshotSource,
    session: WriteSession,
    planned: RowIndex | None,
    table_plan: TablePlan,
) -> RowCopy | None:
    """PostgreSQL to PostgreSQL, for a table planned in place: its rows of the
    differing buckets as COPY data, which the writer stages without decoding."""
    ks, selection = table_plan.keyspec, planned.buckets if planned is not None else None
    if ks is None or selection is None or not isinstance(source, ReadSnapshot):
        return None
    if source.dialect != "postgresql" or session.dialect != "postgresql":
        return None
    name = table_plan.table
    return RowCopy(
        partial(source.native_types, name),
        lambda columns, binary: source.copy_buckets(
            name, columns, ks.key, ks.compared, selection, binary=binary
        ),
    )


def _project(
    table: TableSchema, rows: list[tuple[Any, ...]], columns: Sequence[str]
) -> Iterator[Batch]:
    """A three-way merge's rows (in the source table's column order) as ``columns``."""
    at = [table.column_names.index(c) for c in columns]
    yield [tuple(row[i] for i in at) for row in rows]


def _apply(
    session: WriteSession,
    source: SnapshotSource,
    prepared: Prepared,
    fault: Fault | None,
    progress: Progress = NO_PROGRESS,
) -> dict[str, RowIndex]:
    plan = prepared.plan
    changed = [t for t in plan.tables if t.changes_anything]
    progress.start(APPLYING, len(changed))
    for table_plan in plan.tables:
        if table_plan.schema:
            session.execute_schema(table_plan, plan.source_dialect)
    session.refresh()
    if fault:
        fault("schema")
    for table_plan in changed:
        rows = table_plan.insert + table_plan.update + table_plan.delete
        if table_plan.changes is not None and rows:
            src_table = prepared.source_schema.tables[table_plan.table]
            planned = prepared.source_rows.get(table_plan.table)
            session.write_rows(
                table_plan,
                src_table,
                _fetch(source, prepared, table_plan),
                fault,
                recheck=planned is None or planned.buckets is None,  # in place: same snapshot
                copy=_copier(source, session, planned, table_plan),
            )
        progress.table(table_plan.table, rows)
    progress.done()
    if fault:
        fault("verify")
    sources, after = _read_back(session, source, prepared)
    verify(plan, sources, prepared.target_rows, after)
    return after


def _read_back(
    session: WriteSession, source: SnapshotSource, prepared: Prepared
) -> tuple[dict[str, RowIndex], dict[str, RowIndex]]:
    """The source's and the target's indexes to verify the write with. Only the tables
    this migration changed are read again (a promotion usually touches a few tables out
    of a hundred); those planned with in-database digests are compared the same way,
    and only the rows of differing buckets come back."""
    sources, after = dict(prepared.source_rows), {}
    for t in prepared.plan.tables:
        if t.keyspec is None or t.table not in prepared.source_rows or not t.changes_anything:
            continue
        src_table, now = prepared.source_schema.tables[t.table], session.schema().table(t.table)
        planned = prepared.source_rows[t.table]
        if planned.buckets is not None and isinstance(source, DigestSource) and now is not None:
            sources[t.table], after[t.table] = index_written(
                source, session, src_table, now, t.keyspec, planned.buckets
            )
        else:
            after[t.table] = index_target(session, src_table, now, t.keyspec)
    return sources, after


class _Run:
    """One attempt at a migration, and what to say about it when it fails."""

    def __init__(self, request: MigrationRequest, target: Database) -> None:
        self.request = request
        self.target = target
        self.started = now()
        self.id = request.migration_id
        self.prepared: Prepared | None = None
        self.backup: Manifest | None = None
        self.ddl_committed = False
        self.applying = False  # from here on a failure has something to undo
        self.base: dict[str, Any] = {}  # where this migration's base is stored (ledger)

    def execute(self) -> MigrationResult:
        request = self.request
        with open_source(request.source) as source, self.target.writer() as session:
            if self.id:
                done = session.ledger_find(self.id)
                if done is not None and done.result == "succeeded":
                    return MigrationResult(
                        self.id,
                        "noop",
                        None,
                        digest=done.digest,
                        backup_id=done.backup_id,
                        message="already applied: nothing changed",
                    )
            with session.reading():
                self.prepared = prepare(source, session, request.options, request.progress)
            plan = self.prepared.plan
            if request.on_plan is not None:
                request.on_plan(plan)
            self.id = self.id or new_migration_id(plan.digest)
            if request.approved_digest and request.approved_digest != plan.digest:
                raise CheckFailed(
                    stale_approval(request.approved_digest, plan.digest),
                    reason=MigrationReason.PLAN_CHANGED,
                )
            session.prepare_ledger()
            if not plan.changes_anything:
                self.keep_base()
                session.ledger_record(self.entry("succeeded"))
                return MigrationResult(
                    self.id, "noop", plan, message="the target already matches the source"
                )
            self.tell(MigrationPhase.BACKING_UP)
            self.take_backup()
            self.tell(MigrationPhase.APPLYING)
            self.applying = True
            self.ddl_committed = self.target.dialect == "mysql" and plan.totals["schema"] > 0
            after = _apply(session, source, self.prepared, request.fault, request.progress)
            self.keep_post_state(session, after)
            self.keep_base()
            if request.fault:
                request.fault("ledger")
            session.ledger_record(self.entry("succeeded"))
        return MigrationResult(
            self.id, "succeeded", plan, backup_id=self.backup_id, warnings=self.after_commit()
        )

    def after_commit(self) -> tuple[str, ...]:
        """Once committed, the migration happened: a later failure is a warning on a
        success, never a failure, and the ledger is not rewritten."""
        try:
            if self.request.fault:
                self.request.fault("committed")
        except FerryError as err:
            return (f"after the commit: {err.message}",)
        return ()

    def tell(self, phase: str) -> None:
        if self.request.on_phase is not None:
            self.request.on_phase(phase)

    @property
    def backup_id(self) -> str | None:
        return self.backup.id if self.backup else None

    def take_backup(self) -> None:
        store = self.request.store
        if store is None:
            return
        self.backup, _ = create_backup(
            self.request.target,
            store,
            reason="pre-migration",
            environment=self.request.environment or default_environment(self.request.target),
            fault=self.request.fault,  # a crash test holds the operator in the backup
            progress=self.request.progress,
            # the migration writes no file, but a restore of this backup (a user's way
            # back) brings the files back to this point with the rows
            files=self.request.files,
            quiesced=self.request.quiesced,
        )

    def entry(self, result: str, error: str | None = None) -> LedgerEntry:
        assert self.prepared is not None and self.id is not None
        plan = self.prepared.plan
        summary = _summary(plan) | ({"error": error[:2000]} if error else {})
        summary |= {"source": self.request.options.source_id} | self.base
        return LedgerEntry(
            id=self.id,
            digest=plan.digest,
            source_fingerprint=plan.source_fingerprint,
            result=result,
            backup_id=self.backup_id,
            started_at=self.started,
            finished_at=now(),
            summary=summary,
        )

    def keep_post_state(self, session: WriteSession, after: dict[str, RowIndex]) -> None:
        """Record what this migration wrote, beside its backup and before it commits: a
        migration whose record could not be stored does not happen, so every applied
        migration can be rolled back exactly."""
        if self.backup is None or self.request.store is None or self.prepared is None:
            return
        prepared = self.prepared
        session.refresh()
        records = [
            post_state.record_table(
                session,
                t,
                prepared.source_schema.tables.get(t.table),
                prepared.target_rows.get(t.table),
                after.get(t.table),
            )
            for t in prepared.plan.tables
            if t.changes_anything
        ]
        self.request.store.put_extra(
            self.backup,
            layout.post_state_key(self.id or ""),
            post_state.encode(self.id or "", records),
        )

    def keep_base(self) -> None:
        """A three-way merge stores the source's rows it promoted, the next merge's base
        from this source, before it commits (beside its backup, or the newest one)."""
        merging = self.prepared.merging if self.prepared is not None else None
        store = self.request.store
        if merging is None or store is None or self.id is None:
            return
        environment = self.request.environment or default_environment(self.request.target)
        self.base = store_base(
            store, self.backup, environment, self.id, merging.next_base, merging.next_ids
        )

    def failed(self, err: FerryError) -> MigrationResult:
        assert self.prepared is not None
        plan = self.prepared.plan
        self.id = self.id or new_migration_id(plan.digest)
        if not self.ddl_committed:
            status, untouched = "rolled-back", True
            state = "the target is unchanged (the transaction was rolled back)"
        elif self.backup is not None and self.request.store is not None:
            status, untouched, state = self.restore_backup()
        else:
            status, untouched = "failed", False
            state = (
                "schema changes were committed by MySQL/MariaDB before the failure and no "
                "pre-migration backup was taken; row changes were rolled back"
            )
        message = f"{err.message}; {state}"
        self.record(status, message)
        return MigrationResult(
            self.id,
            status,
            plan,
            message=message,
            target_untouched=untouched,
            backup_id=self.backup_id,
        )

    def restore_backup(self) -> tuple[str, bool, str]:
        assert self.backup is not None and self.request.store is not None
        assert self.prepared is not None
        summary = _summary(self.prepared.plan)
        tables = [t for t in summary["changedTables"] if t in self.backup.tables]
        try:
            restore(
                self.request.store,
                self.backup.id,
                self.request.target,
                tables=tables,
                whole=False,
                drop=summary["createdTables"],
                safety=False,
            )
        except FerryError as again:
            return (
                "failed",
                False,
                (
                    f"restoring the pre-migration backup {self.backup.id} also "
                    f"failed: {again.message}"
                ),
            )
        return "rolled-back", True, f"restored the pre-migration backup {self.backup.id}"

    def record(self, result: str, message: str) -> None:
        try:
            with self.target.writer() as session:
                session.prepare_ledger()
                session.ledger_record(self.entry(result, message))
        except FerryError:
            pass  # best effort: the failure itself is what the caller must see


def migrate(request: MigrationRequest) -> MigrationResult:
    validate_migration_id(request.migration_id)  # before anything touches a database
    if same_database(request.source, request.target):
        raise InvalidInput("source and target are the same database")
    options = _with_source(request.options, request.source)
    if options.base_store is None:
        options = replace(options, base_store=request.store)
    request = replace(request, options=options)
    if request.files is not None and request.store is not None:
        request.files.probe()  # a root that cannot be read is refused before the lock
    target = Database(request.target)
    run = _Run(request, target)
    try:
        return run.execute()
    except (InvalidInput, CheckFailed):
        raise
    except FerryError as err:
        if not run.applying:
            raise  # nothing was changed: the error as it is (an unreachable store: 75)
        return run.failed(err)
    finally:
        target.dispose()
