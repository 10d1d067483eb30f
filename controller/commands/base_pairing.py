"""Pair rows renamed since the base through the IDs a base of format 2 records.

The pairing itself is pure (:mod:`controller.engine.merge3_renames`); this module reads
each side's (key, ID) pairs of the tables it applies to, and makes the ID map follow:
a source row paired with a target row takes that row's ID, in its own table and in
every column that references it, so a renamed row is written as the target's row
changed, not as a new row beside it.

It applies to a table merged three ways, matched by a natural key, with a one-column
primary key and IDs in the base. A table whose IDs another moved table holds in its
natural key is left to its key: that table's rows were already paired by keys made of
the IDs as they were, and re-pairing them here could give two rows one key.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from controller.engine.idmap import IdMap, Translation
from controller.engine.idmapping import IdMapping, key_pairs
from controller.engine.merge3 import show_key
from controller.engine.merge3_renames import Renames, pair_renamed
from controller.engine.model import TableSchema
from controller.engine.plan import KeySpec
from controller.engine.rowindex import CanonKey
from controller.engine.source import SnapshotSource
from controller.engine.values import canonical

BaseIds = Mapping[str, Mapping[CanonKey, tuple[str, str]]]  # table → key → (source, target)
_LISTED = 8


def pk_type(table: TableSchema, ks: KeySpec) -> Any:
    return table.column(ks.pk[0]).type  # type: ignore[union-attr]


def source_ids(ids: IdMapping, table: str, pk: Any) -> dict[str, str]:
    """The target's ID (canonical) → the source's own, for the rows ``ids`` mapped."""
    found = ids.maps.get(table)
    if found is None:
        return {}
    return {canonical(t, pk): s for s, t in found.ids.items()}


def _in_a_key(table: str, ids: IdMapping, keyspecs: Mapping[str, KeySpec]) -> bool:
    """Another moved table holds ``table``'s IDs in its natural key."""
    own = ids.maps.get(table)
    if own is None:
        return False
    for other, translation in ids.translations.items():
        ks = keyspecs.get(other)
        if other == table or ks is None or not ks.natural:
            continue
        if any(c in ks.key and m.ids is own.ids for c, m in translation.columns.items()):
            return True
    return False


def _extend(ids: IdMapping, table: str, pk: tuple[str, Any], pairs: Mapping[str, Any]) -> None:
    """Add ``pairs`` (canonical source ID → the target's raw ID) to ``table``'s map and
    to every translation that follows it (references, paths, IDs inside JSON); ``pk``:
    the primary key column and its type."""
    column, pk_type = pk
    old = ids.maps.get(table)
    before = old.ids if old is not None else {}
    pairs = {
        s: t
        for s, t in pairs.items()
        if (canonical(before[s], pk_type) if s in before else s) != canonical(t, pk_type)
    }
    if not pairs:
        return
    merged = {**before, **pairs}
    if old is None:
        ids.maps[table] = IdMap(table, pk_type, merged, matched=len(pairs))
        own = ids.translations.get(table)
        columns = {**(own.columns if own else {}), column: ids.maps[table]}
        ids.translations[table] = Translation(table, columns)
        return
    fresh = sum(1 for s in pairs if s in before)  # were given a fresh ID, now the target's
    ids.maps[table] = replace(
        old, ids=merged, matched=old.matched + len(pairs), assigned=old.assigned - fresh
    )
    for name, translation in list(ids.translations.items()):
        columns = {
            c: replace(m, ids=merged) if m.ids is old.ids else m
            for c, m in translation.columns.items()
        }
        ids.translations[name] = Translation(name, columns)


def _renames(
    sides: tuple[SnapshotSource, SnapshotSource],
    name: str,
    ks: KeySpec,
    ids: IdMapping,
    held: Mapping[CanonKey, tuple[str, str]],
) -> tuple[Renames, dict[str, Any]]:
    """One table's renames, and the target's raw ID of each source ID paired."""
    source, target = sides
    table, other = source.schema().tables[name], target.schema().table(name)
    assert other is not None
    pk = pk_type(table, ks)
    own = source_ids(ids, name, pk)
    translation = ids.translations.get(name)
    at_source = {
        key: own.get(canonical(raw, pk), canonical(raw, pk))
        for key, raw in key_pairs(source, table, table, ks, translation, "source")
    }
    raw_target = dict(key_pairs(target, other, table, ks, None, "target"))
    renames = pair_renamed(held, at_source, {k: canonical(v, pk) for k, v in raw_target.items()})
    by_id = {canonical(raw, pk): raw for raw in raw_target.values()}
    return renames, {s: by_id[t] for s, t in renames.ids.items()}


def _listed(keys: Sequence[CanonKey]) -> str:
    more = f" and {len(keys) - _LISTED} more" if len(keys) > _LISTED else ""
    return ", ".join(map(show_key, keys[:_LISTED])) + more


def pair_through_base(
    sides: tuple[SnapshotSource, SnapshotSource],
    tables: Sequence[str],
    keyspecs: Mapping[str, KeySpec],
    ids: IdMapping,
    base_ids: BaseIds,
) -> tuple[dict[str, Renames], list[str]]:
    """Per table, how its rows are re-keyed for the merge; the plan's warnings."""
    out: dict[str, Renames] = {}
    warnings: list[str] = []
    for name in tables:
        ks, held = keyspecs[name], base_ids.get(name)
        if not held or not ks.natural or len(ks.pk) != 1 or sides[1].schema().table(name) is None:
            continue
        renames, paired = _renames(sides, name, ks, ids, held)
        if not renames:
            continue
        if _in_a_key(name, ids, keyspecs):
            renamed = sorted({*renames.source.values(), *renames.target.values()})
            warnings.append(
                f"{name}: renamed since the base, but another table's key holds its IDs, "
                f"so merged by key: {_listed([*renamed, *renames.unpaired])}"
            )
            continue
        _extend(ids, name, (ks.pk[0], pk_type(sides[0].schema().tables[name], ks)), paired)
        if renames.unpaired:
            warnings.append(
                f"{name}: renamed since the base, but another row holds the old or new "
                f"key, so merged by key: {_listed(renames.unpaired)}"
            )
        out[name] = renames
    return out, warnings
