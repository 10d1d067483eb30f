"""Run one migration: plan inside the target's write lock, apply, verify, record.

Everything between taking the lock and committing happens in one transaction where
the database allows it (PostgreSQL, SQLite), together with the ledger row, so a
failure at any point leaves the target exactly as it was and a success is recorded
exactly once. MySQL/MariaDB commit DDL implicitly; their schema changes come first
and the result says so when they could not be rolled back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from controller.db.database import Database, WriteSession
from controller.db.ledger import LedgerEntry, now
from controller.engine.plan import Plan
from controller.engine.source import SnapshotSource
from controller.errors import CheckFailed, FerryError, InvalidInput
from controller.reconcile.planning import PlanOptions, Prepared, index_target, prepare
from controller.reconcile.sources import open_source, same_database
from controller.reconcile.verify import verify

Fault = Callable[[str], None]


@dataclass(frozen=True)
class MigrationRequest:
    source: str
    target: str
    options: PlanOptions = field(default_factory=PlanOptions)
    migration_id: str | None = None
    approved_digest: str | None = None
    fault: Fault | None = None  # test hook: called at each step, may raise


@dataclass(frozen=True)
class MigrationResult:
    id: str
    status: str  # succeeded | noop | failed | rolled-back
    plan: Plan | None
    message: str = ""
    target_untouched: bool = True
    digest: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "digest": self.digest or (self.plan.digest if self.plan else ""),
        }
        if self.plan is not None:
            out["totals"] = self.plan.totals
            out["tables"] = [t.to_dict() for t in self.plan.tables]
            out["warnings"] = list(self.plan.warnings)
        if self.message:
            out["message"] = self.message
        if self.status == "failed":
            out["targetUntouched"] = self.target_untouched
        return out


def new_migration_id(digest: str) -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"m-{stamp}-{digest.removeprefix('sha256:')[:8]}"


def plan_only(source_spec: str, target_url: str, options: PlanOptions) -> Prepared:
    if same_database(source_spec, target_url):
        raise InvalidInput("source and target are the same database")
    target = Database(target_url)
    try:
        with open_source(source_spec) as source, target.reader() as snap:
            return prepare(source, snap, options)
    finally:
        target.dispose()


def _summary(plan: Plan) -> dict[str, Any]:
    return {
        "totals": plan.totals,
        "changedTables": [t.table for t in plan.tables if t.changes_anything],
        "tables": {
            t.table: {
                "rule": t.rule.value,
                "insert": t.insert,
                "update": t.update,
                "delete": t.delete,
                "schema": len(t.schema),
            }
            for t in plan.tables
            if t.changes_anything
        },
    }


def _apply(
    session: WriteSession, source: SnapshotSource, prepared: Prepared, fault: Fault | None
) -> None:
    plan = prepared.plan
    for table_plan in plan.tables:
        if table_plan.schema:
            session.execute_schema(table_plan, plan.source_dialect)
    session.refresh()
    if fault:
        fault("schema")
    for table_plan in plan.tables:
        if table_plan.changes is None or not (
            table_plan.insert or table_plan.update or table_plan.delete
        ):
            continue
        src_table = prepared.source_schema.tables[table_plan.table]
        session.write_rows(table_plan, src_table, partial(source.batches, table_plan.table), fault)
    if fault:
        fault("verify")
    after = {
        name: index_target(
            session, prepared.source_schema.tables[name], session.schema().table(name), tp.keyspec
        )
        for name, tp in ((t.table, t) for t in plan.tables)
        if tp.keyspec is not None and name in prepared.source_rows
    }
    verify(plan, prepared.source_rows, prepared.target_rows, after)


def migrate(request: MigrationRequest) -> MigrationResult:
    if same_database(request.source, request.target):
        raise InvalidInput("source and target are the same database")
    target = Database(request.target)
    started = now()
    prepared: Prepared | None = None
    migration_id = request.migration_id
    ddl_committed = False
    try:
        with open_source(request.source) as source, target.writer() as session:
            if migration_id:
                done = session.ledger_find(migration_id)
                if done is not None and done.result == "succeeded":
                    return MigrationResult(
                        migration_id,
                        "noop",
                        None,
                        digest=done.digest,
                        message="already applied: nothing changed",
                    )
            prepared = prepare(source, session, request.options)
            plan = prepared.plan
            migration_id = migration_id or new_migration_id(plan.digest)
            if request.approved_digest and request.approved_digest != plan.digest:
                raise CheckFailed(
                    f"the plan changed since it was approved (approved "
                    f"{request.approved_digest}, now {plan.digest})",
                    reason="PlanChanged",
                )
            session.prepare_ledger()
            if not plan.changes_anything:
                session.ledger_record(_entry(migration_id, plan, "succeeded", started))
                return MigrationResult(
                    migration_id, "noop", plan, message="the target already matches the source"
                )
            ddl_committed = target.dialect == "mysql" and plan.totals["schema"] > 0
            _apply(session, source, prepared, request.fault)
            if request.fault:
                request.fault("ledger")
            session.ledger_record(_entry(migration_id, plan, "succeeded", started))
        return MigrationResult(migration_id, "succeeded", plan)
    except (InvalidInput, CheckFailed):
        raise
    except FerryError as err:
        if prepared is None:
            raise
        untouched = not ddl_committed
        migration_id = migration_id or new_migration_id(prepared.plan.digest)
        _record_failure(target, migration_id, prepared.plan, started, err.message)
        state = (
            "the target is unchanged (the transaction was rolled back)"
            if untouched
            else "schema changes were committed by MySQL/MariaDB before the failure; "
            "row changes were rolled back"
        )
        return MigrationResult(
            migration_id,
            "failed",
            prepared.plan,
            message=f"{err.message}; {state}",
            target_untouched=untouched,
        )
    finally:
        target.dispose()


def _entry(migration_id: str, plan: Plan, result: str, started: str) -> LedgerEntry:
    return LedgerEntry(
        id=migration_id,
        digest=plan.digest,
        source_fingerprint=plan.source_fingerprint,
        result=result,
        backup_id=None,
        started_at=started,
        finished_at=now(),
        summary=_summary(plan),
    )


def _record_failure(
    target: Database, migration_id: str, plan: Plan, started: str, message: str
) -> None:
    entry = _entry(migration_id, plan, "failed", started)
    entry = replace(entry, summary={**entry.summary, "error": message[:2000]})
    try:
        with target.writer() as session:
            session.ledger_record(entry)
    except FerryError:
        pass  # best effort: the failure itself is what the caller must see
