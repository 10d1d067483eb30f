"""Read both sides and build the plan: classify, resolve rules, index rows, check.

Shared by ``ferry plan``, ``ferry migrate`` and the Migration handler. Reads only; the
target may be a read snapshot or the locked write session that will apply the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.api.rules import Merge, Rule, RulesSpec
from controller.backups.store import BackupStore
from controller.commands import nocobase_facts
from controller.commands.merging import Base, Merging, find_base, merge_tables, pair_workflows
from controller.commands.route_pairs import base_ids, pair_routes
from controller.engine import checks
from controller.engine.buckets import DigestSource
from controller.engine.catalog import nocobase_catalog
from controller.engine.idmapping import IdMapping, map_ids
from controller.engine.indexing import (
    hashes_in_place,
    index_differences,
    index_target,
    source_shape,
)
from controller.engine.model import DatabaseSchema
from controller.engine.plan import KeySpec, Plan, build_plan, key_spec
from controller.engine.profiles import Profile, classify, collection_tables
from controller.engine.progress import NO_PROGRESS, PLANNING, Progress
from controller.engine.references import NOCOBASE_PATHS, References, merged, profile_references
from controller.engine.route_pairing import Collision
from controller.engine.rowindex import RowIndex, build_index
from controller.engine.rules import Resolved, resolve_rules
from controller.engine.source import SnapshotSource
from controller.engine.uischema_mapping import map_ui_schemas
from controller.engine.workflow_mapping import WorkflowMapping, upsert_problems
from controller.engine.workflow_pairing import WORKFLOWS
from controller.errors import CheckFailed, InvalidInput


@dataclass(frozen=True)
class PlanOptions:
    rules: RulesSpec = field(default_factory=RulesSpec)
    profile: Profile = Profile.NOCOBASE
    variables: frozenset[str] | None = None  # names declared for the target, if known
    # merge: threeWay only: the source's stable identity (merging.source_identity; the
    # commands fill it in from the source's spec) and the store holding the bases
    source_id: str | None = None
    base_store: BackupStore | None = None


@dataclass
class Prepared:
    plan: Plan
    source_schema: DatabaseSchema
    target_schema: DatabaseSchema
    source_rows: dict[str, RowIndex]
    target_rows: dict[str, RowIndex]
    ids: IdMapping = field(default_factory=IdMapping)
    merging: Merging | None = None  # merge: threeWay

    def merged_rows(self, table: str) -> list[tuple[Any, ...]] | None:
        """The rows a three-way merge decided for ``table`` (what the writer writes)."""
        return self.merging.rows.get(table) if self.merging is not None else None


def _all_rows(source: SnapshotSource, table: str, columns: list[str]) -> list[tuple[object, ...]]:
    return [row for batch in source.batches(table, columns) for row in batch]


def collections_of(source: SnapshotSource, schema: DatabaseSchema) -> list[str]:
    table = schema.table("collections")
    if table is None or table.column("name") is None:
        return []
    if table.column("options") is None:
        return collection_tables((r[0], None) for r in _all_rows(source, table.name, ["name"]))
    return collection_tables(
        (r[0], r[1]) for r in _all_rows(source, table.name, ["name", "options"])
    )


def _target_variables(target: SnapshotSource, schema: DatabaseSchema) -> frozenset[str] | None:
    for name in ("environmentVariables", "environment_variables"):
        table = schema.table(name)
        if table is not None and table.column("name") is not None:
            return frozenset(str(r[0]) for r in _all_rows(target, name, ["name"]))
    return None


def _resolve(
    source: SnapshotSource, target: SnapshotSource, options: PlanOptions
) -> tuple[dict[str, Resolved], list[str]]:
    """Classify every table of both sides and resolve its rule; refuse incompatible
    sides (dialect, naming settings, schemas the rules would sync)."""
    src_schema, tgt_schema = source.schema(), target.schema()
    nocobase = options.profile is Profile.NOCOBASE
    # NocoBase's own checks first: naming settings, versions, plugins.
    early = nocobase_facts.check(source, target, strict=options.rules.strict) if nocobase else []
    collections = (
        collections_of(source, src_schema) + collections_of(target, tgt_schema) if nocobase else []
    )
    classes = classify(
        options.profile, set(src_schema.tables) | set(tgt_schema.tables), collections
    )
    resolved, warnings = resolve_rules(classes, options.rules)
    naming = nocobase_catalog().naming if nocobase else (lambda _t: None)
    problems = checks.compatibility_problems(
        src_schema,
        tgt_schema,
        [n for n, r in resolved.items() if r.rule.syncs_schema],
        source_naming=naming(set(src_schema.tables)),
        target_naming=naming(set(tgt_schema.tables)),
    )
    checks.require(problems, reason="Incompatible")
    return resolved, early + warnings


def _keyspecs(
    moved: list[str], resolved: dict[str, Resolved], source: DatabaseSchema, target: DatabaseSchema
) -> dict[str, KeySpec]:
    keyspecs: dict[str, KeySpec] = {}
    problems: list[str] = []
    for name in moved:
        try:
            keyspecs[name] = key_spec(resolved[name], source.tables[name], target.table(name))
        except CheckFailed as err:  # every table's key problem, not only the first
            problems += err.problems
    checks.require(problems, reason="BadKey")
    return keyspecs


def _check_variables(
    target: SnapshotSource, referenced: set[str], options: PlanOptions, warnings: list[str]
) -> None:
    """Variables the migrated rows reference must exist in the target (named, not valued);
    where the target's cannot be read, a generic target is warned about instead."""
    nocobase = options.profile is Profile.NOCOBASE
    available = options.variables
    if available is None and nocobase:
        available = _target_variables(target, target.schema())
    if referenced and available is None and not nocobase:
        warnings.append(
            "migrated rows reference variables ("
            + ", ".join(sorted(referenced))
            + ") that cannot be checked: pass --variables FILE"
        )
        return
    checks.require(checks.variables_problems(referenced, available), reason="MissingVariables")


def _index_table(
    source: SnapshotSource,
    target: SnapshotSource,
    name: str,
    keyspecs: dict[str, KeySpec],
    ids: IdMapping,
) -> tuple[RowIndex, RowIndex]:
    """Both sides' indexes of one table: by in-database digests where the two sides
    allow it (only the rows of differing buckets are read), else every row in Python."""
    src_table, ks = source.schema().tables[name], keyspecs[name]
    tgt_table = target.schema().table(name)
    in_place = name not in ids.translations and hashes_in_place(
        source, target, src_table, tgt_table, ks
    )
    if in_place:
        assert isinstance(source, DigestSource) and isinstance(target, DigestSource)
        assert tgt_table is not None
        return index_differences(source, target, src_table, tgt_table, ks)
    source_index = build_index(
        source_shape(src_table, ks),
        ids.rows(source, name, src_table.column_names),
        scan_env=True,
    )
    return source_index, index_target(target, src_table, tgt_table, ks)


def _base(target: SnapshotSource, options: PlanOptions) -> Base | None:
    """A three-way merge's base (or why there is none); None for any other promotion."""
    if options.rules.merge is not Merge.THREE_WAY:
        return None
    if not options.source_id:
        raise InvalidInput("a three-way merge needs the source's identity")
    return find_base(target, options.source_id, options.base_store)


@dataclass
class _Paired:
    """What pairing NocoBase rows by their natural keys gave the merge and the plan."""

    workflows: WorkflowMapping = field(default_factory=WorkflowMapping)
    collisions: list[Collision] = field(default_factory=list)  # routes, for the merge
    warnings: list[str] = field(default_factory=list)


def _merge(
    sides: tuple[SnapshotSource, SnapshotSource],
    moved: list[str],
    resolved: dict[str, Resolved],
    keyspecs: dict[str, KeySpec],
    ids: IdMapping,
    base: Base | None,
    paired: _Paired,
) -> Merging | None:
    if base is None:
        return None
    merging = merge_tables(
        sides, moved, resolved, keyspecs, ids, base, paired.workflows, paired.collisions
    )
    resolved.update(merging.resolved)
    return merging


def _pair_nocobase(
    sides: tuple[SnapshotSource, SnapshotSource],
    options: PlanOptions,
    moved: list[str],
    resolved: dict[str, Resolved],
    ids: IdMapping,
    links: tuple[References, References],
    base: Base | None,
) -> _Paired:
    """UI schema nodes paired by position, workflows and nodes by key, routes by UI
    schema (each adds ID maps to ``ids``), for every promotion with the ``nocobase``
    profile. An upsert outside a three-way merge is refused where it would break a
    workflow; a one-way overwrite whose workflows cannot be paired by key matches them
    by ID."""
    if options.profile is not Profile.NOCOBASE:
        return _Paired()
    warnings = map_ui_schemas(*sides, moved, ids)
    three_way = base is not None
    rule = resolved[WORKFLOWS].rule if WORKFLOWS in resolved else None
    strict = three_way or rule is not Rule.OVERWRITE
    workflows = pair_workflows(sides, moved, ids, strict=strict)
    if workflows.tables and not three_way and rule is Rule.UPSERT:
        checks.require(upsert_problems(workflows), reason="BadKey")
    held = base_ids(base.tables) if base is not None else None
    collisions, routed = pair_routes(sides, moved, resolved, ids, links, held)
    return _Paired(workflows, collisions, warnings + workflows.warnings + routed)


def _index_all(
    sides: tuple[SnapshotSource, SnapshotSource],
    moved: list[str],
    keyspecs: dict[str, KeySpec],
    ids: IdMapping,
    merging: Merging | None,
    progress: Progress,
) -> tuple[dict[str, RowIndex], dict[str, RowIndex]]:
    source, target = sides
    source_rows: dict[str, RowIndex] = {}
    target_rows: dict[str, RowIndex] = {}
    progress.start(PLANNING, len(moved))
    for name in moved:
        if merging is not None and name in merging.indexes:
            table = source.schema().tables[name]
            source_rows[name] = merging.indexes[name]
            target_rows[name] = index_target(
                target, table, target.schema().table(name), keyspecs[name]
            )
        else:
            source_rows[name], target_rows[name] = _index_table(source, target, name, keyspecs, ids)
        progress.table(name, source_rows[name].count)
    progress.done()
    return source_rows, target_rows


MAX_CONFLICTS_LISTED = 50


def _listed(conflicts: list[str]) -> list[str]:
    """The unresolved conflicts a refusal lists: the first ones, and how many more."""
    if len(conflicts) <= MAX_CONFLICTS_LISTED:
        return conflicts
    more = len(conflicts) - MAX_CONFLICTS_LISTED
    return [*conflicts[:MAX_CONFLICTS_LISTED], f"… and {more} more conflict(s)"]


def prepare(
    source: SnapshotSource,
    target: SnapshotSource,
    options: PlanOptions,
    progress: Progress = NO_PROGRESS,
) -> Prepared:
    src_schema, tgt_schema = source.schema(), target.schema()
    resolved, warnings = _resolve(source, target, options)
    moved = sorted(
        name for name, res in resolved.items() if res.rule.moves_rows and name in src_schema.tables
    )
    keyspecs = _keyspecs(moved, resolved, src_schema, tgt_schema)
    references = merged(
        profile_references(options.profile, src_schema),
        {name: resolved[name].references for name in moved if resolved[name].references},
    )
    links = references, profile_references(options.profile, src_schema, NOCOBASE_PATHS)
    ids = map_ids(
        source,
        target,
        (src_schema, tgt_schema),
        keyspecs,
        references,
        {name: resolved[name].rule is Rule.OVERWRITE for name in moved},
        links[1],
    )
    checks.require(ids.problems, reason="BadReference")
    checks.require(ids.conflicts, reason="IdConflict")
    base = _base(target, options)
    paired = _pair_nocobase((source, target), options, moved, resolved, ids, links, base)
    warnings += paired.warnings
    merging = _merge((source, target), moved, resolved, keyspecs, ids, base, paired)
    warnings += merging.warnings if merging is not None else []
    source_rows, target_rows = _index_all((source, target), moved, keyspecs, ids, merging, progress)
    referenced = set().union(*(index.env_refs for index in source_rows.values()))
    _check_variables(target, referenced, options, warnings)
    plan = build_plan(
        src_schema,
        tgt_schema,
        resolved,
        keyspecs,
        source_rows,
        target_rows,
        allow_destructive=options.rules.allow_destructive,
        warnings=warnings,
        id_maps=ids.maps,
        merges=merging.infos if merging is not None else None,
    )
    if merging is not None:
        checks.require(_listed(merging.unresolved), reason="MergeConflict")
        checks.require(merging.broken_trees, reason="BrokenTree")
    return Prepared(plan, src_schema, tgt_schema, source_rows, target_rows, ids, merging)
