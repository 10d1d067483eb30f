"""What a target's ledger says about one migration, read without taking its write lock.

The operator's application steps need it after a crash: a rollback that committed just
before the operator died must not be attempted again (the rollback refuses a migration
that is no longer ``succeeded``), and the restarted flow must know it happened.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.db.database import Database


@dataclass(frozen=True)
class Recorded:
    """A migration's ledger row, as much of it as decides how the migration ended."""

    result: str  # succeeded | failed | rolled-back
    backup_id: str | None  # its pre-migration backup
    error: str  # what failed (a failed or rolled-back row), else ""


def ledger_record(url: str, migration_id: str) -> Recorded | None:
    """``migration_id``'s row in the ledger of the database at ``url``, or None when
    the ledger has no such row: nothing of that migration committed."""
    db = Database(url)
    try:
        with db.reader() as snapshot:
            entry = snapshot.ledger_find(migration_id)
    finally:
        db.dispose()
    if entry is None:
        return None
    error = (entry.summary or {}).get("error")
    return Recorded(entry.result, entry.backup_id, str(error or ""))


def ledger_result(url: str, migration_id: str) -> str | None:
    """``succeeded``, ``rolled-back`` … of ``migration_id`` in the database at ``url``,
    or None when the ledger has no such row."""
    recorded = ledger_record(url, migration_id)
    return recorded.result if recorded is not None else None
