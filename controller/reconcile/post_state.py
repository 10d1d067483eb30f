"""What a migration left behind, kept beside its pre-migration backup.

After a migration, the row digests of every table it changed are stored (compressed)
next to the backup. A scoped rollback compares them with the target's rows at that
time, so edits made after the migration are reported before anything is restored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import zstandard

from controller.engine.model import ColumnType, TableSchema
from controller.engine.plan import KeySpec
from controller.engine.rowindex import RowIndex
from controller.engine.source import SnapshotSource
from controller.reconcile.planning import index_as


@dataclass(frozen=True)
class TableState:
    key: tuple[str, ...]
    compared: tuple[str, ...]
    pk: tuple[str, ...]
    types: dict[str, ColumnType]
    rows: dict[tuple[str, ...], str]  # canonical key → hex digest
    keyless: dict[str, int]  # hex digest → count, for tables without a key


def encode(states: dict[str, tuple[RowIndex, tuple[str, ...], dict[str, ColumnType]]]) -> bytes:
    doc: dict[str, Any] = {}
    for table, (index, pk, types) in states.items():
        doc[table] = {
            "key": list(index.key_columns),
            "compared": list(index.compared_columns),
            "pk": list(pk),
            "types": {c: t.to_dict() for c, t in types.items()},
            "rows": [[list(k), e.digest.hex()] for k, e in sorted(index.rows.items())],
            "keyless": {d.hex(): n for d, n in sorted(index.keyless.items())},
        }
    return zstandard.ZstdCompressor().compress(json.dumps(doc).encode())


def decode(data: bytes) -> dict[str, TableState]:
    doc = json.loads(zstandard.ZstdDecompressor().decompress(data))
    return {
        table: TableState(
            key=tuple(t["key"]),
            compared=tuple(t["compared"]),
            pk=tuple(t["pk"]),
            types={c: ColumnType.from_dict(v) for c, v in t["types"].items()},
            rows={tuple(k): d for k, d in t["rows"]},
            keyless=dict(t["keyless"]),
        )
        for table, t in doc.items()
    }


def current_index(target: SnapshotSource, table: TableSchema, state: TableState) -> RowIndex:
    keyspec = KeySpec(state.key, state.compared, state.pk, natural=False, pk_reassignable=False)
    return index_as(target, table, keyspec, state.types)


def drift(state: TableState, now: RowIndex, limit: int = 20) -> list[str]:
    """Rows that differ from what the migration left: changed, added or removed."""
    if not state.key:
        after = {bytes.fromhex(d): n for d, n in state.keyless.items()}
        return [] if dict(now.keyless) == after else ["rows differ (table has no key)"]
    found = []
    for key, digest in state.rows.items():
        entry = now.rows.get(key)
        if entry is None:
            found.append(f"row {_show(key)} was deleted after the migration")
        elif entry.digest.hex() != digest:
            found.append(f"row {_show(key)} was changed after the migration")
    found += [
        f"row {_show(key)} was added after the migration"
        for key in now.rows
        if key not in state.rows
    ]
    if len(found) > limit:
        return [*found[:limit], f"… and {len(found) - limit} more"]
    return found


def _show(key: tuple[str, ...]) -> str:
    parts = [k.split(":", 1)[-1] for k in key]
    return "(" + ", ".join(parts) + ")"
