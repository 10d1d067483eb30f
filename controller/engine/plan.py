"""The migration plan: a pure function of (source state, target state, rules).

A :class:`Plan` is data: typed, frozen, renderable without executing, with a
deterministic ``sha256:`` digest over everything that decides what would change
(per-table rule, key, schema operations, counts, and the fingerprints of the source
and target rows). Approving a digest therefore approves exactly one set of changes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.api.rules import OnConflict, Rule
from controller.engine.catalog import Category
from controller.engine.idmap import IdMap
from controller.engine.merge3 import Conflict
from controller.engine.model import INTEGER_KINDS, DatabaseSchema, TableSchema
from controller.engine.rowdiff import TableChanges, changes_fingerprint, diff_rows
from controller.engine.rowindex import RowIndex
from controller.engine.rules import Resolved
from controller.engine.schema_diff import SchemaOp, diff_table
from controller.errors import CheckFailed

PLAN_FORMAT = 2  # 2: row fingerprints cover the rows a plan changes, not every row
MAX_CONFLICTS_SHOWN = 100  # per table, in the plan (all of them count)


@dataclass(frozen=True)
class KeySpec:
    """How rows of one table are matched and compared."""

    key: tuple[str, ...]  # empty: keyless (whole-table compare)
    compared: tuple[str, ...]  # columns whose values decide "changed"
    pk: tuple[str, ...]
    natural: bool  # the key is not the primary key
    pk_reassignable: bool  # single auto-increment integer primary key
    ignored: tuple[str, ...] = ()  # not compared, but written with a row that changed


def key_spec(resolved: Resolved, source: TableSchema, target: TableSchema | None) -> KeySpec:
    """Decide the key of a table; raise when the rule needs a key the table lacks."""
    key = resolved.key or source.primary_key
    where = f"table {source.name}"
    for side, schema in (("source", source), ("target", target)):
        if schema is None:
            continue
        missing = [c for c in key if schema.column(c) is None]
        if missing:
            raise CheckFailed(
                f"{where}: key column(s) {', '.join(missing)} do not exist in the {side}",
                reason="BadKey",
            )
    if not key and resolved.rule in (Rule.UPSERT, Rule.INSERT_IGNORE):
        raise CheckFailed(
            f"{where}: rule {resolved.rule.value} needs a key, and the table has "
            "no primary key; name natural key columns with key: [...]",
            reason="NoKey",
        )
    natural = bool(resolved.key) and tuple(resolved.key) != source.primary_key
    ignored = tuple(
        c
        for c in source.column_names
        if c in resolved.ignore and c not in key and c not in source.primary_key
    )
    compared = tuple(
        c
        for c in source.column_names
        if not (natural and c in source.primary_key) and c not in ignored
    )
    pk_col = source.column(source.primary_key[0]) if len(source.primary_key) == 1 else None
    reassignable = bool(pk_col and pk_col.autoincrement and pk_col.type.kind in INTEGER_KINDS)
    return KeySpec(tuple(key), compared, source.primary_key, natural, reassignable, ignored)


@dataclass(frozen=True)
class MergeInfo:
    """A table merged three ways (:mod:`controller.engine.merge3`): against which base,
    where its rows came from, and its conflicts with how each was resolved. Part of the
    digest, so approving a plan approves its resolutions."""

    base: str  # "migration ID", or "none" (the plan's warnings say why)
    from_source: int
    from_target: int
    merged: int  # rows combined column by column
    conflicts: tuple[Conflict, ...]
    on_conflict: OnConflict

    @property
    def unresolved(self) -> int:
        return sum(1 for c in self.conflicts if not c.resolved)

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": "threeWay",
            "base": self.base,
            "fromSource": self.from_source,
            "fromTarget": self.from_target,
            "merged": self.merged,
            "onConflict": self.on_conflict.value,
            "conflictCount": len(self.conflicts),
            "conflicts": [c.to_dict() for c in self.conflicts[:MAX_CONFLICTS_SHOWN]],
        }


@dataclass(frozen=True)
class TablePlan:
    table: str
    rule: Rule
    category: Category
    why: str
    key: tuple[str, ...]
    natural_key: bool
    schema: tuple[SchemaOp, ...]
    insert: int
    update: int
    delete: int
    unchanged: int
    kept: int
    source_rows: str  # fingerprint of the source rows ("" when rows are not compared)
    target_rows: str
    warnings: tuple[str, ...] = ()
    ids_matched: int = 0  # rows matched by natural key to a target row with another ID
    ids_assigned: int = 0  # new rows given a fresh ID because theirs is taken
    ignored: tuple[str, ...] = ()  # columns that do not make a row "changed"
    merge: MergeInfo | None = None  # merged three ways (rules merge: threeWay)
    changes: TableChanges | None = field(default=None, compare=False, repr=False)
    keyspec: KeySpec | None = field(default=None, compare=False, repr=False)

    @property
    def changes_anything(self) -> bool:
        return bool(self.schema or self.insert or self.update or self.delete)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "table": self.table,
            "rule": self.rule.value,
            "category": self.category.value,
            "insert": self.insert,
            "update": self.update,
            "delete": self.delete,
            "unchanged": self.unchanged,
            "kept": self.kept,
            "schema": [op.to_dict() for op in self.schema],
        }
        if self.key:
            out["key"] = list(self.key)
        if self.ignored:
            out["ignore"] = list(self.ignored)
        if self.ids_matched or self.ids_assigned:
            out["ids"] = {"matched": self.ids_matched, "assigned": self.ids_assigned}
        if self.warnings:
            out["warnings"] = list(self.warnings)
        if self.merge is not None:
            out["merge"] = self.merge.to_dict()
        return out


@dataclass(frozen=True)
class Plan:
    source_dialect: str
    target_dialect: str
    tables: tuple[TablePlan, ...]
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    source_fingerprint: str
    target_fingerprint: str
    digest: str

    @property
    def totals(self) -> dict[str, int]:
        return {
            "insert": sum(t.insert for t in self.tables),
            "update": sum(t.update for t in self.tables),
            "delete": sum(t.delete for t in self.tables),
            "unchanged": sum(t.unchanged for t in self.tables),
            "schema": sum(len(t.schema) for t in self.tables),
        }

    @property
    def changes_anything(self) -> bool:
        return any(t.changes_anything for t in self.tables)

    def table(self, name: str) -> TablePlan | None:
        for t in self.tables:
            if t.table == name:
                return t
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": PLAN_FORMAT,
            "digest": self.digest,
            "sourceDialect": self.source_dialect,
            "targetDialect": self.target_dialect,
            "sourceFingerprint": self.source_fingerprint,
            "targetFingerprint": self.target_fingerprint,
            "totals": self.totals,
            "tables": [t.to_dict() for t in self.tables],
            "warnings": list(self.warnings),
            "notes": list(self.notes),
        }


def stale_approval(approved: str, current: str) -> str:
    """Why ``approved`` does not approve the plan whose digest is ``current``. A digest
    does not say under which plan format it was made, so both causes are named."""
    return (
        f"the approved digest {approved} no longer matches the plan {current} (plan "
        f"format {PLAN_FORMAT}): the source or target changed, or the digest was made "
        f"under another plan format"
    )


def _digest(tables: list[TablePlan], source_fp: str, target_fp: str) -> str:
    payload = {
        "format": PLAN_FORMAT,
        "source": source_fp,
        "target": target_fp,
        "tables": [
            {
                **t.to_dict(),
                "sourceRows": t.source_rows,
                "targetRows": t.target_rows,
                "warnings": None,
            }
            for t in tables
        ],
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _ids_note(t: TablePlan) -> str:
    parts = []
    if t.ids_matched:
        parts.append(f"{t.ids_matched} row(s) matched by natural key keep the target's IDs")
    if t.ids_assigned:
        parts.append(f"{t.ids_assigned} new row(s) get a fresh ID, theirs being taken")
    return f"{t.table}: " + ", ".join(parts) + "; references to them are rewritten"


def _combined(parts: list[tuple[str, str]]) -> str:
    h = hashlib.sha256()
    for name, fp in sorted(parts):
        h.update(f"{name}\x1f{fp}\x1e".encode())
    return h.hexdigest()


def schema_fingerprint(table: TableSchema) -> str:
    text = json.dumps(table.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _Inputs:
    """What every table's part of the plan is computed from."""

    source: DatabaseSchema
    target: DatabaseSchema
    keyspecs: dict[str, KeySpec]
    source_rows: dict[str, RowIndex]
    target_rows: dict[str, RowIndex]
    allow_destructive: bool
    id_maps: Mapping[str, IdMap]
    merges: Mapping[str, MergeInfo]


def _row_changes(
    inputs: _Inputs, name: str, res: Resolved, ks: KeySpec | None
) -> tuple[TableChanges | None, str, str]:
    """The row diff of one table and the fingerprints of both sides ("" when rows are
    not compared); the source's covers its ID map, so approving it approves the map."""
    if not res.rule.moves_rows or ks is None:
        return None, "", ""
    src_idx, tgt_idx = inputs.source_rows[name], inputs.target_rows[name]
    changes = diff_rows(
        res.rule,
        src_idx,
        tgt_idx,
        natural_key=ks.natural,
        pk_reassignable=ks.pk_reassignable,
    )
    src_fp = changes_fingerprint(changes, src_idx, tgt_idx)
    tgt_fp = f"rows:{tgt_idx.count}"
    id_map = inputs.id_maps.get(name)
    if id_map is not None:
        src_fp = hashlib.sha256((src_fp + id_map.fingerprint()).encode()).hexdigest()
    return changes, src_fp, tgt_fp


def _plan_table(inputs: _Inputs, name: str, res: Resolved) -> tuple[TablePlan, list[str]]:
    """One table's part of the plan, and the problems that refuse it."""
    sd = diff_table(
        inputs.source.tables[name],
        inputs.target.table(name),
        allow_destructive=inputs.allow_destructive,
        moves_rows=res.rule.moves_rows,
        dynamic_types=inputs.target.dialect == "sqlite",
    )
    problems = list(sd.problems)
    table_warnings = list(sd.warnings)
    ks = inputs.keyspecs.get(name)
    changes, src_fp, tgt_fp = _row_changes(inputs, name, res, ks)
    if changes is not None:
        problems += [f"table {name}: {c}" for c in changes.conflicts]
        if changes.remap:
            table_warnings.append(
                f"{len(changes.remap)} inserted row(s) get a new primary "
                "key because theirs is taken in the target"
            )
    ins, upd, dele = changes.counts if changes else (0, 0, 0)
    id_map = inputs.id_maps.get(name)
    moves = bool(ks) and res.rule.moves_rows
    plan = TablePlan(
        table=name,
        rule=res.rule,
        category=res.category,
        why=res.why,
        key=ks.key if ks and moves else (),
        natural_key=bool(ks and ks.natural),
        schema=sd.ops,
        insert=ins,
        update=upd,
        delete=dele,
        unchanged=changes.unchanged if changes else 0,
        kept=changes.kept if changes else 0,
        source_rows=src_fp,
        target_rows=tgt_fp,
        warnings=tuple(table_warnings),
        ids_matched=id_map.matched if id_map else 0,
        ids_assigned=id_map.assigned if id_map else 0,
        ignored=ks.ignored if ks and moves else (),
        merge=inputs.merges.get(name),
        changes=changes,
        keyspec=ks,
    )
    return plan, problems


def _fingerprints(
    tables: list[TablePlan], source: DatabaseSchema, target: DatabaseSchema
) -> tuple[str, str]:
    """Both sides' fingerprints over the planned tables: schema and rows."""
    source_fp = _combined(
        [(t.table, schema_fingerprint(source.tables[t.table]) + t.source_rows) for t in tables]
    )
    target_fp = _combined(
        [
            (
                t.table,
                (schema_fingerprint(target.tables[t.table]) if t.table in target.tables else "-")
                + t.target_rows,
            )
            for t in tables
        ]
    )
    return source_fp, target_fp


def _notes(tables: list[TablePlan], target: DatabaseSchema) -> list[str]:
    notes = [_ids_note(t) for t in tables if t.ids_matched or t.ids_assigned]
    if target.dialect == "mysql" and any(t.schema for t in tables):
        notes.append(
            "MySQL/MariaDB commit DDL implicitly: schema changes cannot be rolled back "
            "by the transaction; the pre-migration backup is the rollback"
        )
    return notes


def build_plan(
    source: DatabaseSchema,
    target: DatabaseSchema,
    resolutions: dict[str, Resolved],
    keyspecs: dict[str, KeySpec],
    source_rows: dict[str, RowIndex],
    target_rows: dict[str, RowIndex],
    *,
    allow_destructive: bool,
    warnings: list[str],
    id_maps: Mapping[str, IdMap] | None = None,
    merges: Mapping[str, MergeInfo] | None = None,
) -> Plan:
    """Assemble the plan. ``*_rows`` hold indexes of the tables whose rule moves rows."""
    inputs = _Inputs(
        source,
        target,
        keyspecs,
        source_rows,
        target_rows,
        allow_destructive,
        id_maps or {},
        merges or {},
    )
    tables: list[TablePlan] = []
    all_warnings = list(warnings)
    problems: list[str] = []
    for name in sorted(source.tables):
        res = resolutions.get(name)
        if res is None or res.rule is Rule.SKIP:
            continue
        table, table_problems = _plan_table(inputs, name, res)
        tables.append(table)
        problems += table_problems
        all_warnings += [f"{name}: {w}" for w in table.warnings]
    for name in sorted(set(target.tables) - set(source.tables)):
        res = resolutions.get(name)
        if res is not None and res.category is not Category.INTERNAL:
            all_warnings.append(f"{name}: extra table in the target, kept")
    if problems:
        raise CheckFailed("; ".join(problems), problems=problems, reason="SchemaConflict")
    source_fp, target_fp = _fingerprints(tables, source, target)
    return Plan(
        source_dialect=source.dialect,
        target_dialect=target.dialect,
        tables=tuple(tables),
        warnings=tuple(all_warnings),
        notes=tuple(_notes(tables, target)),
        source_fingerprint="sha256:" + source_fp,
        target_fingerprint="sha256:" + target_fp,
        digest=_digest(tables, source_fp, target_fp),
    )
