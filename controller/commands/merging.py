"""Merged releases: each table merged three ways against the base of its (source, target).

The merge itself is pure (:mod:`controller.engine.merge3`); this module finds the base,
reads both sides' rows for it, and stores the next base. It is here because the base
lives in the backup store and is named by the target's ledger.

**The base** of a (source, target) pair is the source's rows as the last three-way merge
from that source promoted them: the canonical values of the compared columns, with IDs
already mapped to the target's. It is stored beside that migration's backup as
``base/<migration>.json.zst`` (:mod:`controller.backups.layout`; sealed and encrypted
like every extra of the store) and named by the migration's ledger row (format 3:
``source`` and ``base``). A base of format 2 also holds, for the rows of tables
matched by a natural key, the source's ID and the target's, which pair a row renamed
since (:mod:`controller.commands.base_pairing`); format 1 is still read. A promotion
that changes nothing takes no backup; its base is stored beside the target's newest
backup instead.

Without one (the first merge from a source, a ledger row of format 2 or older, no store,
a base pruned with its backup) the plan says why and merges without a base: every
difference between rows both sides hold is a conflict unless ``onConflict`` resolves it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import zstandard

from controller.api.rules import OnConflict, Rule
from controller.backups import layout
from controller.backups.manifest import Manifest
from controller.backups.store import BackupStore
from controller.commands.base_pairing import BaseIds, pair_through_base, pk_type, source_ids
from controller.commands.route_pairs import merged_route_problems, route_conflicts
from controller.db import ledger
from controller.engine import checks
from controller.engine.idmapping import IdMapping
from controller.engine.indexing import source_shape
from controller.engine.merge3 import Rows, TableMerge, merge_table, resolve
from controller.engine.merge3_renames import Renames, rekey
from controller.engine.merge3_tree import tree_problems
from controller.engine.model import INTEGER_KINDS, DatabaseSchema, TableSchema
from controller.engine.plan import KeySpec, MergeInfo
from controller.engine.profiles import LEDGER_TABLE
from controller.engine.route_mapping import ROUTE_TABLES
from controller.engine.route_pairing import Collision
from controller.engine.rowindex import CanonKey, RowIndex, RowShape, build_index
from controller.engine.rules import Resolved
from controller.engine.source import SnapshotSource
from controller.engine.values import canonical, canonicalizer
from controller.engine.workflow_mapping import (
    WorkflowMapping,
    map_workflows,
    merge_problems,
    retire,
)
from controller.engine.workflow_pairing import NODES, WORKFLOWS
from controller.errors import FerryError, InvalidInput
from controller.gitsource.repository import redact_url

# 2: a row of a table matched by a natural key also holds its source and target IDs
# (:mod:`controller.commands.base_pairing`); 1 is still read, and pairs by key alone.
BASE_FORMAT = 2
_READ_FORMATS = (1, 2)
# Trees NocoBase keeps in a closure table: (closure table, node table, node key column).
TREES = (
    ("uiSchemaTreePath", "uiSchemas", "x-uid"),
    ("flowModelTreePath", "flowModels", "uid"),
)
_GIT = "git+"
_LISTED = 12


def source_identity(spec: str) -> str:
    """A stable name for a source: its URL without credentials (a password rotation or
    a Git revision does not make it another source), a SQLite file or a snapshot
    directory by its resolved path."""
    if spec.startswith(_GIT):
        url, _, fragment = spec.rpartition("#") if "#" in spec else (spec, "", "")
        path = [p for p in fragment.split("&") if p.startswith("path=")]
        text = redact_url(url) + "#" + "".join(path)
    elif spec.startswith("sqlite:///"):
        text = "sqlite:///" + str(Path(spec.removeprefix("sqlite:///")).resolve())
    elif "://" in spec:
        text = redact_url(spec)
    else:
        text = str(Path(spec).resolve())
    return "source:" + hashlib.sha256(text.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Base:
    label: str  # what the plan says: the migration it comes from, or why there is none
    tables: Mapping[str, Rows] | None = None  # None: merged without a base
    ids: BaseIds = field(default_factory=dict)  # format 2: key → (source ID, target ID)


def encode_base(migration_id: str, tables: Mapping[str, Rows], ids: BaseIds | None = None) -> bytes:
    held = ids or {}

    def row(name: str, key: CanonKey, values: Mapping[str, str]) -> list[Any]:
        pair = held.get(name, {}).get(key)
        return [list(key), dict(values), *([list(pair)] if pair is not None else [])]

    doc = {
        "format": BASE_FORMAT,
        "migration": migration_id,
        "tables": {
            name: [row(name, k, v) for k, v in sorted(rows.items())]
            for name, rows in sorted(tables.items())
        },
    }
    return zstandard.ZstdCompressor().compress(json.dumps(doc, sort_keys=True).encode())


def decode_base(data: bytes) -> tuple[dict[str, Rows], dict[str, dict[CanonKey, tuple[str, str]]]]:
    """The stored base: its rows, and (format 2) the IDs of the rows that have them;
    ValueError when it cannot be read as one."""
    try:
        doc = json.loads(zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 31))
        if not isinstance(doc, dict) or doc.get("format") not in _READ_FORMATS:
            raise ValueError("not a base of a known format")
        tables: dict[str, Rows] = {}
        ids: dict[str, dict[CanonKey, tuple[str, str]]] = {}
        for name, rows in doc["tables"].items():
            tables[str(name)] = {
                tuple(map(str, r[0])): {str(c): str(v) for c, v in r[1].items()} for r in rows
            }
            pairs = {
                tuple(map(str, r[0])): (str(r[2][0]), str(r[2][1]))
                for r in rows
                if doc["format"] >= 2 and len(r) > 2
            }
            if pairs:
                ids[str(name)] = pairs
        return tables, ids
    except (KeyError, TypeError, AttributeError, IndexError, zstandard.ZstdError) as err:
        raise ValueError(str(err)) from err


def _ledger(target: SnapshotSource) -> list[ledger.LedgerEntry]:
    if target.schema().table(LEDGER_TABLE) is None:
        return []
    cols = list(ledger.COLUMNS)
    return [
        ledger.entry_of(dict(zip(cols, row, strict=True)))
        for batch in target.batches(LEDGER_TABLE, cols)
        for row in batch
    ]


def find_base(target: SnapshotSource, source_id: str, store: BackupStore | None) -> Base:
    """The base of (``source_id``, ``target``), or why there is none."""
    last = ledger.latest_from(_ledger(target), source_id)
    if last is None:
        return Base("none: no three-way merge from this source is recorded in the target")
    where = last.summary.get("base")
    if not isinstance(where, dict) or not where.get("backupId"):
        return Base(f"none: migration {last.id} stored no base (it had no backup store)")
    if store is None:
        return Base(f"none: the base of migration {last.id} is in a backup store, none given")
    try:
        manifest = store.manifest(str(where["backupId"]))
        data = store.get_extra(manifest, layout.object_key(where.get("key"), "base key"))
        if data is None:
            raise ValueError("absent")
        tables, ids = decode_base(data)
        return Base(f"migration {last.id}", tables, ids)
    except (FerryError, ValueError) as err:
        reason = err.message if isinstance(err, FerryError) else str(err)
        return Base(f"none: the base of migration {last.id} cannot be read ({reason[:200]})")


def store_base(
    store: BackupStore,
    manifest: Manifest | None,
    environment: str,
    migration_id: str,
    tables: Mapping[str, Rows],
    ids: BaseIds | None = None,
) -> dict[str, Any]:
    """Store the next base beside ``manifest`` (the migration's backup), or beside the
    target's newest backup when the migration took none; the ledger summary's part."""
    if manifest is None:
        manifests = store.manifests(layout.environment(environment))
        if not manifests:
            return {}
        manifest = max(manifests, key=lambda m: (m.created_at, m.id))
    key = layout.base_key(migration_id)
    store.put_extra(manifest, key, encode_base(migration_id, tables, ids))
    return {"base": {"backupId": manifest.id, "key": key}}


@dataclass
class Merging:
    """What planning takes from the merge: per merged table its rows, index and summary."""

    base: Base
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)  # merged raw rows
    indexes: dict[str, RowIndex] = field(default_factory=dict)
    infos: dict[str, MergeInfo] = field(default_factory=dict)
    next_base: dict[str, Rows] = field(default_factory=dict)  # the source's rows, as promoted
    next_ids: dict[str, dict[CanonKey, tuple[str, str]]] = field(default_factory=dict)
    renames: dict[str, Renames] = field(default_factory=dict)  # paired through the base
    resolved: dict[str, Resolved] = field(default_factory=dict)  # merged as overwrite
    warnings: list[str] = field(default_factory=list)
    broken_trees: list[str] = field(default_factory=list)  # orphans, two parents, loops
    # both sides' rows of the tables in TREES: a tree already broken there is not the merge's
    sides: dict[str, tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = field(
        default_factory=dict
    )

    @property
    def unresolved(self) -> list[str]:
        return [
            c.describe() for info in self.infos.values() for c in info.conflicts if not c.resolved
        ]


def _side(
    shape: RowShape,
    types: Sequence[Any],
    batches: Any,
    compared: Sequence[str],
    columns: Sequence[str],
) -> tuple[dict[CanonKey, tuple[Any, ...]], dict[CanonKey, dict[str, str]]]:
    """One side's raw rows and canonical compared values, by key."""
    pos = {c: i for i, c in enumerate(columns)}
    canons = [
        (c, pos[c], canonicalizer(t)) for c, t in zip(columns, types, strict=True) if c in compared
    ]
    raw: dict[CanonKey, tuple[Any, ...]] = {}
    values: dict[CanonKey, dict[str, str]] = {}
    for batch in batches:
        for row in batch:
            key = shape.canon_key(shape.raw_key(row))
            if key in raw:
                raise InvalidInput(
                    f"table {shape.table}: key ({', '.join(shape.key_columns)}) is not unique "
                    f"in the {shape.side}"
                )
            raw[key] = tuple(row)
            values[key] = {c: canon(row[i]) for c, i, canon in canons}
    return raw, values


def _target_batches(target: SnapshotSource, table: TableSchema, columns: Sequence[str]) -> Any:
    """The target's rows in the source's column order (NULL where the target lacks one)."""
    tgt = target.schema().table(table.name)
    if tgt is None:
        return
    present = [c for c in columns if tgt.column(c) is not None]
    at = {c: i for i, c in enumerate(present)}
    for batch in target.batches(table.name, present):
        yield [tuple(row[at[c]] if c in at else None for c in columns) for row in batch]


def _record_ids(
    merging: Merging,
    table: TableSchema,
    ks: KeySpec,
    raw: Mapping[CanonKey, tuple[Any, ...]],
    ids: IdMapping,
) -> None:
    """The next base's IDs of a table matched by a natural key: per row the source's
    own ID and the one it has in the target."""
    if not ks.natural or len(ks.pk) != 1:
        return
    pk, at = pk_type(table, ks), table.column_names.index(ks.pk[0])
    own = source_ids(ids, table.name, pk)
    pairs = {}
    for key, row in raw.items():
        target_id = canonical(row[at], pk)
        pairs[key] = (own.get(target_id, target_id), target_id)
    merging.next_ids[table.name] = pairs


def _merge_one(
    merging: Merging,
    sides: tuple[SnapshotSource, SnapshotSource],
    res: Resolved,
    ks: KeySpec,
    ids: IdMapping,
) -> None:
    source, target = sides
    table = source.schema().tables[res.table]
    columns, types = table.column_names, [c.type for c in table.columns]
    shape = source_shape(table, ks)
    src_raw, src = _side(shape, types, ids.rows(source, table.name, columns), ks.compared, columns)
    tgt_raw, tgt = _side(
        shape, types, _target_batches(target, table, columns), ks.compared, columns
    )
    merging.next_base[table.name] = src
    _record_ids(merging, table, ks, src_raw, ids)
    renames = merging.renames.get(table.name)
    if renames:  # rows renamed since the base: merged under the base's key
        src_raw, src = rekey(src_raw, renames.source), rekey(src, renames.source)
        tgt_raw, tgt = rekey(tgt_raw, renames.target), rekey(tgt, renames.target)
    base = merging.base.tables.get(table.name) if merging.base.tables is not None else None
    merge: TableMerge = merge_table(table.name, base, src, tgt, res.on_conflict)
    rows = resolve(merge, src_raw, tgt_raw, columns)
    merging.rows[table.name] = rows
    if any(table.name in tree[:2] for tree in TREES) or table.name in ROUTE_TABLES:
        merging.sides[table.name] = (list(src_raw.values()), list(tgt_raw.values()))
    merging.indexes[table.name] = build_index(shape, [rows], scan_env=True)
    if base is not None:
        label = merging.base.label
    else:
        label = "none (new table)" if merging.base.tables is not None else "none"
    merging.infos[table.name] = MergeInfo(
        base=label,
        from_source=merge.from_source,
        from_target=merge.from_target,
        merged=merge.merged,
        conflicts=tuple(merge.conflicts),
        on_conflict=res.on_conflict,
    )
    why = f"{res.why}; three-way merge ({res.rule.value} rows against the base)"
    merging.resolved[table.name] = replace(res, rule=Rule.OVERWRITE, why=why)


def merge_tables(
    sides: tuple[SnapshotSource, SnapshotSource],
    moved: Sequence[str],
    resolved: Mapping[str, Resolved],
    keyspecs: Mapping[str, KeySpec],
    ids: IdMapping,
    base: Base,
    workflows: WorkflowMapping | None = None,
    routes: Sequence[Collision] = (),
) -> Merging:
    """Merge every table whose rule moves rows by key (overwrite, upsert); a table
    without a key to pair rows on keeps its rule, and the plan says so. ``workflows``:
    the pairing planning already made (:func:`pair_workflows`); made here when None;
    ``routes``: route IDs both sides hold for routes no key tells apart (conflicts)."""
    merging = Merging(base)
    if workflows is None:
        workflows = pair_workflows(sides, moved, ids)
        merging.warnings += workflows.warnings
    if base.tables is None:
        merging.warnings.append(
            f"three-way merge without a base ({base.label.removeprefix('none: ')})"
        )
    merged = [n for n in moved if resolved[n].rule in (Rule.OVERWRITE, Rule.UPSERT)]
    merging.renames, renamed = pair_through_base(sides, merged, keyspecs, ids, base.ids)
    merging.warnings += renamed
    for name in moved:
        res, ks = resolved[name], keyspecs[name]
        if res.rule not in (Rule.OVERWRITE, Rule.UPSERT):
            continue
        if not ks.key:
            merging.warnings.append(
                f"{name}: no key to pair rows on; not merged three ways, "
                f"its rule {res.rule.value} applies"
            )
            continue
        _merge_one(merging, sides, res, ks, ids)
    route_conflicts(merging.infos, routes, sides[0].schema())
    _by_id_only(merging, keyspecs, sides[0].schema(), workflows.tables)
    _check_trees(merging, sides[0])
    _check_workflows(merging, sides[0].schema(), workflows, keyspecs)
    merging.broken_trees += merged_route_problems(merging.rows, merging.sides, sides[0].schema())
    return merging


def pair_workflows(
    sides: tuple[SnapshotSource, SnapshotSource],
    moved: Sequence[str],
    ids: IdMapping,
    *,
    strict: bool = True,
) -> WorkflowMapping:
    """Workflows and nodes paired by key (their IDs remapped in ``ids``); refused when
    a side's rows cannot be paired or its node chains are broken. Not ``strict`` (a
    one-way ``overwrite``: the target's rows become the source's, so rows matched by ID
    are right there too): matched by ID instead, and the plan says why. The warnings
    are the caller's to put in the plan."""
    found = map_workflows(*sides, moved, ids)
    problems = [*found.problems.keys, *found.problems.chains]
    if problems and not strict:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        found.warnings.append(
            f"{WORKFLOWS}: not paired by key, matched by ID as overwrite allows: "
            f"{problems[0]}{more}"
        )
        return found
    checks.require(found.problems.keys, reason="BadKey")
    checks.require(found.problems.chains, reason="BrokenTree")
    return found


def _check_workflows(
    merging: Merging,
    schema: DatabaseSchema,
    found: WorkflowMapping,
    keyspecs: Mapping[str, KeySpec],
) -> None:
    """Broken node chains, and two current revisions of one workflow: a conflict that
    the table's ``onConflict`` resolves by retiring the other side's revision."""
    rows = (merging.rows.get(WORKFLOWS), merging.rows.get(NODES))
    if not found.tables or rows[0] is None or rows[1] is None:
        return
    info = merging.infos[WORKFLOWS]
    chains, conflicts = merge_problems(schema, (rows[0], rows[1]), found, info.on_conflict)
    merging.broken_trees += chains
    merging.infos[WORKFLOWS] = replace(info, conflicts=info.conflicts + tuple(conflicts))
    if conflicts and info.on_conflict is not OnConflict.FAIL:
        table = schema.tables[WORKFLOWS]
        merged = retire(table, rows[0], found, info.on_conflict)
        merging.rows[WORKFLOWS] = merged
        shape = source_shape(table, keyspecs[WORKFLOWS])
        merging.indexes[WORKFLOWS] = build_index(shape, [merged], scan_env=True)


def _by_id_only(
    merging: Merging,
    keyspecs: Mapping[str, KeySpec],
    schema: DatabaseSchema,
    paired: Sequence[str] = (),
) -> None:
    """Say which merged tables pair rows only by a generated integer ID with no base for
    them: two installations number their rows each on their own, so a shared ID proves
    nothing there. Rows of one lineage (copies of one production) share IDs rightly.
    ``paired``: tables paired by another key (workflows)."""
    found = []
    for name in sorted(set(merging.infos) - set(paired)):
        ks, table = keyspecs[name], schema.tables[name]
        columns = [table.column(c) for c in ks.key]
        integer = all(c is not None and c.type.kind in INTEGER_KINDS for c in columns)
        has_base = merging.base.tables is not None and name in merging.base.tables
        if not ks.natural and integer and not has_base:
            found.append(name)
    if found:
        shown = ", ".join(found[:_LISTED]) + (
            f" and {len(found) - _LISTED} more" if len(found) > _LISTED else ""
        )
        merging.warnings.append(
            f"paired by generated ID alone, with no base: {shown}; rows of independent "
            "installations that share an ID are taken as the same row (declare a natural "
            "key for those tables, or resolve the conflicts this gives)"
        )


def _column(rows: list[tuple[Any, ...]], table: TableSchema, *names: str) -> list[tuple[Any, ...]]:
    at = [table.column_names.index(n) for n in names]
    return [tuple(row[i] for i in at) for row in rows]


def _tree_problems(
    tree: tuple[str, str, str], tables: tuple[TableSchema, TableSchema], rows: tuple[Any, Any]
) -> list[str]:
    """The problems of one side's (or the merge's) tree: node rows, closure rows."""
    closure, nodes_table, uid = tree
    n_table, c_table = tables
    keys = {str(k) for (k,) in _column(rows[0], n_table, uid)}
    paths = _column(rows[1], c_table, "ancestor", "descendant", "depth")
    return tree_problems(closure, nodes_table, keys, paths)


def _check_trees(merging: Merging, source: SnapshotSource) -> None:
    """A merge of both a tree's nodes and its closure table must leave a tree; a problem
    one side already had is not the merge's and is left to that side."""
    schema = source.schema()
    for tree in TREES:
        closure, nodes_table, uid = tree
        paths, nodes = merging.rows.get(closure), merging.rows.get(nodes_table)
        c_table, n_table = schema.table(closure), schema.table(nodes_table)
        if paths is None or nodes is None or c_table is None or n_table is None:
            continue
        wanted = ("ancestor", "descendant", "depth")
        if n_table.column(uid) is None or any(c_table.column(c) is None for c in wanted):
            continue
        tables = (n_table, c_table)
        before: set[str] = set()
        for side in (0, 1):
            pair = (merging.sides[nodes_table][side], merging.sides[closure][side])
            before.update(_tree_problems(tree, tables, pair))
        found = _tree_problems(tree, tables, (nodes, paths))
        merging.broken_trees += [p for p in found if p not in before]
