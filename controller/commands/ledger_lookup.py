"""What a target's ledger says about one migration, read without taking its write lock.

The operator's application steps need it after a crash: a rollback that committed just
before the operator died must not be attempted again (the rollback refuses a migration
that is no longer ``succeeded``), and the restarted flow must know it happened.
"""

from __future__ import annotations

from controller.db.database import Database


def ledger_result(url: str, migration_id: str) -> str | None:
    """``succeeded``, ``rolled-back`` … of ``migration_id`` in the database at ``url``,
    or None when the ledger has no such row."""
    db = Database(url)
    try:
        with db.reader() as snapshot:
            entry = snapshot.ledger_find(migration_id)
    finally:
        db.dispose()
    return entry.result if entry is not None else None
