"""Scoped rollback: undo exactly what one migration changed, keep everything else.

The migration's ledger row names its pre-migration backup and the tables it changed
or created. Before restoring those tables, the target's rows are compared with what the
migration left (stored beside the backup): edits made since are listed, and the
rollback stops unless forced. Tables the migration did not touch keep every row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from controller.backups import layout
from controller.backups.manifest import Manifest
from controller.backups.store import BackupStore
from controller.db.database import Database, ReadSnapshot
from controller.db.ledger import now
from controller.errors import CheckFailed, InvalidInput
from controller.reconcile import post_state
from controller.reconcile.backup import restore


@dataclass(frozen=True)
class RollbackResult:
    migration_id: str
    backup_id: str
    tables: tuple[str, ...]
    dropped: tuple[str, ...]
    later_edits: tuple[str, ...]
    safety_backup: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "migration": self.migration_id,
            "backupId": self.backup_id,
            "safetyBackupId": self.safety_backup,
            "status": "rolled-back",
            "tables": list(self.tables),
            "dropped": list(self.dropped),
            "laterEdits": list(self.later_edits),
        }


def rollback(
    store: BackupStore, migration_id: str, url: str, *, force: bool = False
) -> RollbackResult:
    db = Database(url)
    try:
        with db.reader() as snap:
            entry = snap.ledger_find(migration_id)
            if entry is None:
                raise InvalidInput(f"migration {migration_id!r} is not in the target's ledger")
            if entry.result != "succeeded":
                raise InvalidInput(
                    f"migration {migration_id} is {entry.result}: there is "
                    "nothing of it to roll back"
                )
            if not entry.backup_id:
                raise InvalidInput(
                    f"migration {migration_id} ran without a pre-migration "
                    "backup; restore a backup instead"
                )
            manifest = store.manifest(entry.backup_id)
            changed = list(entry.summary.get("changedTables", []))
            created = [
                t for t in entry.summary.get("createdTables", []) if t not in manifest.tables
            ]
            edits = _later_edits(store, manifest, migration_id, snap, changed)
            tables_summary = entry.summary.get("tables", {})
            empty_when_created = [t for t in created if not tables_summary.get(t, {}).get("insert")]
            edits += _rows_in_created_tables(snap, empty_when_created, manifest)
    finally:
        db.dispose()
    if edits and not force:
        raise CheckFailed(
            f"rows changed after migration {migration_id}; nothing was restored "
            "(use --force to roll back anyway)",
            problems=edits,
            reason="ChangedSinceMigration",
        )
    tables = [t for t in changed if t in manifest.tables]
    restored = restore(store, manifest.id, url, tables=tables, whole=False, drop=created)
    db = Database(url)
    try:
        with db.writer() as session:
            session.ledger_record(
                replace(
                    entry,
                    result="rolled-back",
                    finished_at=now(),
                    summary={**entry.summary, "rolledBackAt": now()},
                )
            )
    finally:
        db.dispose()
    return RollbackResult(
        migration_id,
        manifest.id,
        tuple(tables),
        tuple(created),
        tuple(edits),
        restored.safety_backup,
    )


def _rows_in_created_tables(
    snap: ReadSnapshot, created: list[str], manifest: Manifest
) -> list[str]:
    """Tables the migration created empty are dropped by its rollback: rows written into
    them since would be lost, so they count as later edits."""
    found = []
    schema = snap.schema()
    for name in created:
        table = schema.table(name)
        if table is None or name in manifest.tables or not table.columns:
            continue
        count = sum(len(batch) for batch in snap.batches(name, [table.columns[0].name]))
        if count:
            found.append(
                f"{name}: created by the migration, now holds {count} row(s) written "
                "since; rolling back drops the table"
            )
    return found


def _later_edits(
    store: BackupStore,
    manifest: Manifest,
    migration_id: str,
    snap: ReadSnapshot,
    changed: list[str],
) -> list[str]:
    data = store.get_extra(manifest, layout.post_state_key(migration_id))
    if data is None:
        return [
            f"the state migration {migration_id} left is unknown, so later edits cannot "
            "be ruled out"
        ]
    states = post_state.decode(data)
    edits = []
    schema = snap.schema()
    for table in changed:
        state = states.get(table)
        current = schema.table(table)
        if state is None or current is None:
            continue
        edits += [
            f"{table}: {d}"
            for d in post_state.drift(state, post_state.current_index(snap, current, state))
        ]
    return edits
