"""Compare two row indexes under a rule and list what must change.

Pure: given the source and target :class:`RowIndex` of one table and its rule, say
which source rows to insert or update, which target rows to delete, and which inserts
need a new primary key because their natural key is new but their ID is taken (the
merged-release case: IDs collide between development environments).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from controller.api.rules import Rule
from controller.engine.rowindex import CanonKey, RowIndex


@dataclass
class TableChanges:
    inserts: dict[CanonKey, bytes] = field(default_factory=dict)  # source key → expected digest
    updates: dict[CanonKey, tuple[Any, ...]] = field(default_factory=dict)  # → target raw key
    update_digests: dict[CanonKey, bytes] = field(default_factory=dict)
    deletes: list[tuple[Any, ...]] = field(default_factory=list)  # target raw keys
    delete_digests: dict[CanonKey, bytes] = field(default_factory=dict)  # what they hold
    remap: set[CanonKey] = field(default_factory=set)  # inserts that need a fresh ID
    replace_all: bool = False  # keyless overwrite: delete every row, insert every row
    unchanged: int = 0
    kept: int = 0  # target rows the rule leaves alone (upsert, insert-ignore)
    conflicts: list[str] = field(default_factory=list)  # IDs taken and not re-assignable

    @property
    def counts(self) -> tuple[int, int, int]:
        return len(self.inserts), len(self.updates), len(self.deletes)


def diff_rows(
    rule: Rule,
    source: RowIndex,
    target: RowIndex,
    *,
    natural_key: bool,
    pk_reassignable: bool,
) -> TableChanges:
    changes = TableChanges()
    if not rule.moves_rows:
        return changes
    if not source.key_columns:
        return _keyless(source, target)
    for key, entry in source.rows.items():
        existing = target.rows.get(key)
        if existing is None:
            changes.inserts[key] = entry.digest
        elif existing.digest == entry.digest or rule is Rule.INSERT_IGNORE:
            changes.unchanged += 1
        else:
            changes.updates[key] = existing.key
            changes.update_digests[key] = entry.digest
    for key, existing in target.rows.items():
        if key in source.rows:
            continue
        if rule is Rule.OVERWRITE:
            changes.deletes.append(existing.key)
            changes.delete_digests[key] = existing.digest
        else:
            changes.kept += 1
    changes.unchanged += min(source.settled, target.settled)
    if natural_key:
        _plan_id_collisions(changes, source, target, pk_reassignable)
    return changes


def _keyless(source: RowIndex, target: RowIndex) -> TableChanges:
    """Only overwrite reaches here (upsert/insert-ignore need a key): the two sides are
    compared as multisets, and a difference replaces every row."""
    changes = TableChanges()
    if source.keyless == target.keyless:
        changes.unchanged = source.count
    else:
        changes.replace_all = True
        changes.deletes = [() for _ in range(target.count)]
        changes.inserts = {(str(i),): b"" for i in range(source.count)}
    return changes


def _plan_id_collisions(
    changes: TableChanges, source: RowIndex, target: RowIndex, pk_reassignable: bool
) -> None:
    deleted = set(changes.deletes)
    taken = {repr(e.pk) for e in target.rows.values() if e.key not in deleted}
    for key in changes.inserts:
        pk = source.rows[key].pk
        if not pk or repr(pk) not in taken:
            continue
        if pk_reassignable:
            changes.remap.add(key)
        else:
            changes.conflicts.append(
                f"row with key {key!r} has primary key {pk!r}, already used by another row "
                "in the target, and the primary key cannot be re-assigned"
            )


def changes_fingerprint(changes: TableChanges, source: RowIndex, target: RowIndex) -> str:
    """A fingerprint of what the row diff decided, from the rows it changes: inserted,
    updated (both sides) and deleted rows with their digests, and the counts.

    It is the same whether every row was compared in Python or in-database digests set
    the identical rows aside, so an approval holds across both paths; a row that no
    rule would touch does not move it. Keyless tables use both sides' whole indexes.
    """
    h = hashlib.sha256()
    if not source.key_columns:
        h.update(f"keyless\x1f{source.fingerprint()}\x1f{target.fingerprint()}".encode())
        return h.hexdigest()
    counts = (source.count, target.count, changes.unchanged, changes.kept)
    h.update(("counts:" + ",".join(map(str, counts)) + "\x1e").encode())
    for key in sorted(changes.inserts):
        h.update(b"I" + repr(key).encode() + b"\x1f" + changes.inserts[key])
    for key in sorted(changes.updates):
        h.update(b"U" + repr(key).encode() + b"\x1f" + changes.update_digests[key])
        h.update(target.rows[key].digest)
    for key in sorted(changes.delete_digests):
        h.update(b"D" + repr(key).encode() + b"\x1f" + changes.delete_digests[key])
    for key in sorted(changes.remap):
        h.update(b"R" + repr(key).encode())
    return h.hexdigest()
