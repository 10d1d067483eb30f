"""The ledger table in each target: which migrations were applied, exactly once.

A migration's ledger row is written in the same transaction as its changes, so after
a crash the row exists exactly when the changes do. A migration ID that already
succeeded is never applied again.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from controller.engine.profiles import LEDGER_TABLE

# Format 2: results include "undone" (a restore put back what the migration changed),
# and the record of what a migration wrote (its post-state) is format 2 as well. The
# table's columns are those of format 1; summaries of format 2 say so in "format".
# Format 3: a summary names its source ("source": a stable identity of the source, see
# controller.commands.merging) and, for a three-way merge, where the base it promoted is
# stored ("base": {"backupId", "key"}). A row of an older format names no source: it is
# never the base of any (source, target) pair, so the first three-way merge from each
# source after an upgrade is merged without a base (and says so), never against rows
# another source promoted.
FORMAT = 3
SUCCEEDED, ROLLED_BACK, UNDONE = "succeeded", "rolled-back", "undone"

_md = sa.MetaData()
ledger = sa.Table(
    LEDGER_TABLE,
    _md,
    sa.Column("id", sa.String(190), primary_key=True),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("source_fingerprint", sa.String(80), nullable=False),
    sa.Column("result", sa.String(20), nullable=False),
    sa.Column("backup_id", sa.String(190)),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
    sa.Column("summary", sa.Text()),
)


@dataclass(frozen=True)
class LedgerEntry:
    id: str
    digest: str
    source_fingerprint: str
    result: str
    backup_id: str | None
    started_at: str
    finished_at: str | None
    summary: dict[str, Any]


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def ensure(conn: sa.Connection) -> None:
    ledger.create(conn, checkfirst=True)


def find(conn: sa.Connection, migration_id: str) -> LedgerEntry | None:
    if not sa.inspect(conn).has_table(LEDGER_TABLE):
        return None
    row = conn.execute(sa.select(ledger).where(ledger.c.id == migration_id)).mappings().first()
    if row is None:
        return None
    return entry_of(row)


COLUMNS = tuple(c.name for c in ledger.columns)


def entry_of(row: Mapping[str, Any] | sa.RowMapping) -> LedgerEntry:
    """A ledger row (a mapping of :data:`COLUMNS`) as an entry; a summary that is not a
    JSON object reads as empty."""
    try:
        summary = json.loads(row["summary"] or "{}")
    except ValueError:
        summary = {}
    return LedgerEntry(
        id=row["id"],
        digest=row["digest"],
        source_fingerprint=row["source_fingerprint"],
        result=row["result"],
        backup_id=row["backup_id"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        summary=summary if isinstance(summary, dict) else {},
    )


def latest_from(entries: Iterable[LedgerEntry], source: str) -> LedgerEntry | None:
    """The last migration from ``source`` that the target still holds: succeeded (not
    rolled back or undone), of format 3 or later, and naming that source."""
    mine = [
        e
        for e in entries
        if e.result == SUCCEEDED
        and isinstance(e.summary.get("format"), int)
        and e.summary["format"] >= 3
        and e.summary.get("source") == source
    ]
    return max(mine, key=lambda e: (e.started_at, e.id), default=None)


def record(conn: sa.Connection, entry: LedgerEntry) -> None:
    values = {
        "digest": entry.digest,
        "source_fingerprint": entry.source_fingerprint,
        "result": entry.result,
        "backup_id": entry.backup_id,
        "started_at": entry.started_at,
        "finished_at": entry.finished_at,
        "summary": json.dumps({"format": FORMAT, **entry.summary}, sort_keys=True),
    }
    updated = conn.execute(sa.update(ledger).where(ledger.c.id == entry.id).values(values))
    if updated.rowcount == 0:
        conn.execute(sa.insert(ledger).values(id=entry.id, **values))


def mark_undone(
    conn: sa.Connection, backup_id: str, taken_at: str, tables: set[str] | None, at: str
) -> list[str]:
    """Migrations a restore of backup ``backup_id`` (taken at ``taken_at``) undid: those it
    was the pre-migration backup of, and those applied after it, where they changed any
    of the restored ``tables`` (None: the whole database). Re-running one applies it again.
    """
    if not sa.inspect(conn).has_table(LEDGER_TABLE):
        return []
    undone = []
    for row in conn.execute(sa.select(ledger).where(ledger.c.result == SUCCEEDED)).mappings():
        if row["backup_id"] != backup_id and row["started_at"] < taken_at:
            continue
        summary = json.loads(row["summary"] or "{}")
        changed = set(summary.get("changedTables", []))
        if tables is not None and not changed & tables:
            continue
        summary["undoneBy"] = {"backupId": backup_id, "at": at}
        conn.execute(
            sa.update(ledger)
            .where(ledger.c.id == row["id"])
            .values(result=UNDONE, finished_at=at, summary=json.dumps(summary, sort_keys=True))
        )
        undone.append(str(row["id"]))
    return sorted(undone)
