"""Follow rows whose IDs differ between source and target.

When a table is matched by a natural key, a source row and the target row it matches
may carry different IDs: every environment generates its own (the merged release). An
:class:`IdMap` says, for one such table, which source ID stands for which target ID,
and gives a fresh ID to a new row whose ID is already taken in the target. A
:class:`Translation` rewrites a table's rows through the maps of the tables it
references (its own primary key included) before they are compared or written, so the
plan, the write and the verification all see the IDs the target will hold.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from controller.engine.model import INTEGER_KINDS, ColumnType
from controller.engine.rowindex import CanonKey
from controller.engine.source import Batch
from controller.engine.values import canonical


@dataclass(frozen=True)
class IdMap:
    table: str
    pk_type: ColumnType
    ids: Mapping[str, Any]  # canonical source ID → the target's ID, only where they differ
    matched: int = 0  # source rows matched to a target row with another ID
    assigned: int = 0  # new source rows given a fresh ID because theirs is taken

    def fingerprint(self) -> str:
        """Which source ID becomes which target ID: part of the plan's digest."""
        h = hashlib.sha256()
        for source_id, target_id in sorted(self.ids.items()):
            h.update(f"{source_id}\x1f{target_id!r}\x1e".encode())
        return h.hexdigest()

    def target_id(self, value: Any) -> Any:
        if value is None:
            return None
        return self.ids.get(canonical(value, self.pk_type), value)


def match_ids(
    table: str,
    pk_type: ColumnType,
    source: Iterable[tuple[CanonKey, Any]],
    target: Iterable[tuple[CanonKey, Any]],
    *,
    frees_unmatched: bool,
) -> tuple[IdMap, list[str]]:
    """Map source IDs to target IDs through (natural key, ID) pairs of both sides.

    A source row whose key is in the target takes that row's ID. A new row keeps its ID
    unless a target row that stays holds it (``frees_unmatched``: the rule deletes the
    target rows the source lacks, so their IDs are free); then an integer ID is replaced
    by one above every ID of both sides, and any other ID is a conflict, returned.
    """
    target_ids = dict(target)
    rows = list(source)
    keys = {key for key, _ in rows}
    taken = {
        canonical(pk, pk_type)
        for key, pk in target_ids.items()
        if key in keys or not frees_unmatched
    }
    ids: dict[str, Any] = {}
    conflicts: list[str] = []
    matched = assigned = 0
    fresh: int | None = None
    for key, pk in rows:
        own = canonical(pk, pk_type)
        existing = target_ids.get(key)
        if existing is not None:
            if canonical(existing, pk_type) != own:
                ids[own] = existing
                matched += 1
            continue
        if own not in taken:
            continue
        if pk_type.kind not in INTEGER_KINDS:
            conflicts.append(
                f"table {table}: new row {key!r} has ID {pk!r}, already used by another "
                "row of the target, and a non-integer ID cannot be replaced"
            )
            continue
        if fresh is None:
            fresh = 1 + max(int(v) for v in [*target_ids.values(), *(p for _, p in rows)])
        ids[own] = fresh
        fresh += 1
        assigned += 1
    return IdMap(table, pk_type, ids, matched, assigned), conflicts


@dataclass(frozen=True)
class Translation:
    """How one table's rows are rewritten: column → the map of the table it references."""

    table: str
    columns: Mapping[str, IdMap]

    def rows(self, batches: Iterable[Batch], columns: Sequence[str]) -> Iterator[Batch]:
        """``batches`` (tuples in ``columns`` order) with referenced IDs replaced."""
        at = [(i, self.columns[c]) for i, c in enumerate(columns) if c in self.columns]
        if not at or not any(m.ids for _, m in at):
            yield from batches
            return
        for batch in batches:
            out: Batch = []
            for row in batch:
                values = list(row)
                for i, id_map in at:
                    values[i] = id_map.target_id(values[i])
                out.append(tuple(values))
            yield out
