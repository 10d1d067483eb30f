"""Rows whose natural key changed since the base, paired through the IDs the base holds.

A three-way merge pairs a table's rows by key. For a table matched by a natural key
(``collections`` by ``name``), a row one side renamed since the base would look like a
deletion of the old key plus an insertion of the new one, and an edit the other side
made to the old key would conflict with that "deletion". A base of format 2 records,
for each of its rows, the source's ID of that row and the ID it has in the target.
Through them a base row finds what became of it on each side, under whatever key:
the source row that still has its source ID, the target row that still has its target
ID. Both are then merged with the base row as one row, under the base's key, so a
rename on one side and an edit on the other merge column by column (the key columns
are compared columns like any other).

Not paired, and merged by key as before (the plan says which): a rename whose old or
new key another row holds on either side (a key reused, two rows swapping keys), where
pairing by ID and pairing by key would disagree. Pure: keys and IDs are canonical.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from controller.engine.rowindex import CanonKey

V = TypeVar("V")


@dataclass
class Renames:
    """How the sides' rows are re-keyed for the merge, and the IDs that follow."""

    source: dict[CanonKey, CanonKey] = field(default_factory=dict)  # current key → base key
    target: dict[CanonKey, CanonKey] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # source ID → the target row's ID
    unpaired: list[CanonKey] = field(default_factory=list)  # base keys left to the key

    def __bool__(self) -> bool:
        return bool(self.source or self.target or self.unpaired)


def _held_by_other(side: Mapping[CanonKey, str], key: CanonKey | None, own: str) -> bool:
    """``key`` is held on ``side`` by a row other than the one of ID ``own``."""
    return key is not None and side.get(key) not in (None, own)


def pair_renamed(
    base_ids: Mapping[CanonKey, tuple[str, str]],
    source: Mapping[CanonKey, str],
    target: Mapping[CanonKey, str],
) -> Renames:
    """``base_ids``: base key → (source ID, target ID); ``source`` and ``target``: each
    side's key → ID (the source's own IDs, not mapped to the target's)."""
    at_source = {pk: key for key, pk in source.items()}
    at_target = {pk: key for key, pk in target.items()}
    out = Renames()
    for base_key, (source_id, target_id) in sorted(base_ids.items()):
        now_source, now_target = at_source.get(source_id), at_target.get(target_id)
        if now_source in (None, base_key) and now_target in (None, base_key):
            continue  # not renamed (or deleted: the merge sees that by key)
        if (
            _held_by_other(source, base_key, source_id)
            or _held_by_other(target, base_key, target_id)
            or _held_by_other(target, now_source, target_id)
            or _held_by_other(source, now_target, source_id)
        ):
            out.unpaired.append(base_key)
            continue
        if now_source is not None and now_source != base_key:
            out.source[now_source] = base_key
        if now_target is not None and now_target != base_key:
            out.target[now_target] = base_key
        if now_source is not None and now_target is not None:
            out.ids[source_id] = target_id
    return out


def rekey(rows: Mapping[CanonKey, V], moves: Mapping[CanonKey, CanonKey]) -> dict[CanonKey, V]:
    """``rows`` with the keys in ``moves`` filed under the key they move to."""
    return {moves.get(key, key): value for key, value in rows.items()}
