"""Remap the IDs of NocoBase workflows and nodes paired by key (:mod:`.workflow_pairing`).

When ``workflows`` and ``flow_nodes`` both move in a merged release, each source
workflow and node takes the ID of the target row it pairs with, or a fresh one where its
own is held by another target row; every column that holds one of those IDs follows: a
node's ``workflowId``, ``upstreamId`` and ``downstreamId``, and the workflow's categories
(``workflowCategoryRelations.workflowId``), and node IDs inside a node's ``config``
(:class:`ConfigMap`). The maps are :class:`IdMap` objects, so they are in the plan's
digest.

Not remapped, on purpose: ``executions``, ``jobs``, ``workflowStats``,
``workflowVersionStats`` and the task tables hold workflow and node IDs too, but they
are what ran in an environment (business or runtime data, never promoted), and target
rows keep their IDs, so the target's history still points at its own rows. Otherwise
trigger and node ``config`` name workflows and nodes by ``key`` (custom action triggers'
``workflowKey``, ``$jobsMapByNodeKey``), which pairing never changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from controller.api.rules import OnConflict
from controller.engine import spelled
from controller.engine.beside import at_once
from controller.engine.catalog import underscored
from controller.engine.idmap import IdMap
from controller.engine.idmapping import IdMapping
from controller.engine.merge3 import Conflict
from controller.engine.model import INTEGER_KINDS, DatabaseSchema, TableSchema
from controller.engine.source import SnapshotSource
from controller.engine.values import canonical
from controller.engine.workflow_pairing import (
    NODES,
    WORKFLOWS,
    Node,
    Pairing,
    Problems,
    Side,
    Workflow,
    pair,
    problems,
    two_current,
)

WORKFLOW_COLUMNS = ("id", "key", "current")
NODE_COLUMNS = ("id", "key", "workflowId", "upstreamId", "downstreamId")
CREATED = "createdAt"
CATEGORIES = ("workflowCategoryRelations", "workflowId")
TEMP_FIELDS = "tempAssociationFields"
_TRUE = ("1", "true", "t")


@dataclass
class WorkflowMapping:
    """What pairing workflows gave: the tables it paired (empty: not paired, and the
    plan's warnings say why), and what it refused."""

    tables: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)
    problems: Problems = field(default_factory=Problems)
    sides: tuple[Side, Side] | None = None  # the source's IDs as mapped, the target's


def _columns(schema: DatabaseSchema, table: str, names: Sequence[str]) -> list[str] | None:
    return spelled.columns(schema, table, names)


def _int(value: Any, table: str = NODES) -> int | None:
    return spelled.int_id(value, table)


def workflows_of(
    rows: Iterable[Sequence[Any]], created_type: Any | None = None
) -> Iterator[Workflow]:
    """Rows of (id, key, current[, createdAt]) as workflows."""
    for row in rows:
        created = canonical(row[3], created_type) if created_type is not None else None
        current = row[2] is not None and str(row[2]).lower() in _TRUE
        key = None if row[1] is None else str(row[1])
        yield Workflow(_int(row[0], WORKFLOWS) or 0, key, current, created)


def nodes_of(rows: Iterable[Sequence[Any]]) -> Iterator[Node]:
    """Rows of (id, key, workflowId, upstreamId, downstreamId) as nodes."""
    for row in rows:
        key = None if row[1] is None else str(row[1])
        yield Node(_int(row[0]) or 0, key, _int(row[2]), _int(row[3]), _int(row[4]))


def read_side(side: SnapshotSource, name: str, source_schema: DatabaseSchema) -> Side:
    """One side's workflows and nodes (columns as the source spells them)."""
    wf_table = source_schema.tables[WORKFLOWS]
    wf_cols = _columns(source_schema, WORKFLOWS, WORKFLOW_COLUMNS) or []
    created = spelled.column(wf_table, CREATED)
    own = side.schema().table(WORKFLOWS)
    created_type = None
    if created is not None and own is not None and own.column(created) is not None:
        wf_cols.append(created)
        created_type = wf_table.column(created).type  # type: ignore[union-attr]
    node_cols = _columns(source_schema, NODES, NODE_COLUMNS) or []
    flat = (row for batch in side.batches(WORKFLOWS, wf_cols) for row in batch)
    workflows = tuple(workflows_of(flat, created_type))
    nodes = tuple(nodes_of(row for batch in side.batches(NODES, node_cols) for row in batch))
    return Side(name, workflows, nodes)


def _unpairable(schemas: tuple[DatabaseSchema, DatabaseSchema]) -> str | None:
    """Why the two sides' workflows cannot be paired by key, or None."""
    for schema in schemas:
        for table, names in ((WORKFLOWS, WORKFLOW_COLUMNS), (NODES, NODE_COLUMNS)):
            if _columns(schema, table, names) is None:
                return f"{table} lacks one of the columns {', '.join(names)}"
            pk = schema.tables[table].primary_key
            column = schema.tables[table].column(pk[0]) if len(pk) == 1 else None
            if column is None or column.type.kind not in INTEGER_KINDS:
                return f"{table} has no integer ID"
    return None


@dataclass(frozen=True)
class ConfigMap(IdMap):
    """Node IDs inside a node's ``config`` JSON: the CC node's ``tempAssociationFields``
    (``[{nodeId, nodeKey, nodeType: "node"}]``: NocoBase finds the job by ``nodeId``).
    A value without them is returned as it came, JSON text as text."""

    def target_id(self, value: Any) -> Any:
        parsed = value
        if isinstance(value, str | bytes):
            try:
                parsed = json.loads(value)
            except ValueError:
                return value
        fields = parsed.get(TEMP_FIELDS) if isinstance(parsed, dict) else None
        if not self.ids or not isinstance(fields, list):
            return value
        mapped = [self._field(f) for f in fields]
        if mapped == fields:
            return value
        out = {**parsed, TEMP_FIELDS: mapped}
        return out if isinstance(value, dict) else json.dumps(out, ensure_ascii=False)

    def _field(self, item: Any) -> Any:
        if not isinstance(item, dict) or item.get("nodeType") != "node":
            return item
        old = item.get("nodeId")
        new = IdMap.target_id(self, old)
        if new is None or new == old or isinstance(old, bool):
            return item
        return {**item, "nodeId": str(new) if isinstance(old, str) else new}


def _mapped(side: Side, pairing: Pairing) -> Side:
    """``side`` with its workflow and node IDs (and the links between them) mapped."""
    wf, nodes = pairing.workflows, pairing.nodes

    def node(value: int | None) -> int | None:
        return None if value is None else nodes.get(value, value)

    return Side(
        side.name,
        tuple(replace(w, id=wf.get(w.id, w.id)) for w in side.workflows),
        tuple(
            Node(
                node(n.id) or 0,
                n.key,
                None if n.workflow is None else wf.get(n.workflow, n.workflow),
                node(n.upstream),
                node(n.downstream),
            )
            for n in side.nodes
        ),
    )


def map_workflows(
    source: SnapshotSource, target: SnapshotSource, moved: Sequence[str], ids: IdMapping
) -> WorkflowMapping:
    """Pair workflows and nodes by key and add their ID maps to ``ids``."""
    if WORKFLOWS not in moved or NODES not in moved or WORKFLOWS in ids.maps:
        return WorkflowMapping()  # (already mapped: the rules gave workflows a natural key)
    src, tgt = source.schema(), target.schema()
    if tgt.table(WORKFLOWS) is None or tgt.table(NODES) is None:
        return WorkflowMapping()  # new tables: no target row to pair with or collide
    why = _unpairable((src, tgt))
    if why is not None:
        return WorkflowMapping(warnings=[f"{WORKFLOWS}: not paired by key, {why}"])
    sides = at_once(
        partial(read_side, source, "source", src), partial(read_side, target, "target", src)
    )
    found = problems(sides[0])
    found.keys += problems(sides[1]).keys
    if found.keys or found.chains:
        return WorkflowMapping(problems=found)
    pairing = pair(*sides)
    mapped_source = _mapped(sides[0], pairing)
    maps = {}
    for table, pairs in ((WORKFLOWS, pairing.workflows), (NODES, pairing.nodes)):
        pk_type = src.tables[table].column(src.tables[table].primary_key[0]).type  # type: ignore[union-attr]
        mapped = {canonical(s, pk_type): t for s, t in sorted(pairs.items())}
        assigned = pairing.assigned[table]
        maps[table] = IdMap(table, pk_type, mapped, len(mapped) - assigned, assigned)
        ids.maps[table] = maps[table]
    wf_id, node_cols = _columns(src, WORKFLOWS, ["id"]), _columns(src, NODES, NODE_COLUMNS)
    assert wf_id is not None and node_cols is not None
    ids.translate(WORKFLOWS, {wf_id[0]: maps[WORKFLOWS]})
    node_id, _, workflow, up, down = node_cols
    links = {node_id: maps[NODES], up: maps[NODES], down: maps[NODES]}
    config = spelled.column(src.tables[NODES], "config")
    if config is not None:
        links[config] = ConfigMap(NODES, maps[NODES].pk_type, maps[NODES].ids)
    ids.translate(NODES, {**links, workflow: maps[WORKFLOWS]})
    table, column = CATEGORIES
    for t, c in ((table, column), (underscored(table), underscored(column))):
        if t in moved and _columns(src, t, [c]):
            ids.translate(t, {c: maps[WORKFLOWS]})
            break
    return WorkflowMapping((WORKFLOWS, NODES), sides=(mapped_source, sides[1]))


def _current(side: Side, key: str) -> str:
    ids = [w.id for w in side.workflows if w.current and w.key == key]
    return f"revision {', '.join(map(str, ids))}" if ids else "no current revision"


def merge_problems(
    schema: DatabaseSchema,
    rows: tuple[Sequence[Sequence[Any]], Sequence[Sequence[Any]]],
    mapping: WorkflowMapping,
    on_conflict: OnConflict = OnConflict.FAIL,
) -> tuple[list[str], list[Conflict]]:
    """What the merged ``workflows`` and ``flow_nodes`` rows (``rows``, in the source's
    column order) would break that the target did not already: node chains, and a
    workflow with two current revisions (both sides made another revision current since
    the base: a conflict, resolved by ``on_conflict`` through :func:`retire`)."""
    assert mapping.sides is not None
    wf_table, node_table = schema.tables[WORKFLOWS], schema.tables[NODES]
    wf_cols = _columns(schema, WORKFLOWS, WORKFLOW_COLUMNS) or []
    node_cols = _columns(schema, NODES, NODE_COLUMNS) or []
    wf_at = [wf_table.column_names.index(c) for c in wf_cols]
    node_at = [node_table.column_names.index(c) for c in node_cols]
    merged = Side(
        "merge",
        tuple(workflows_of([r[i] for i in wf_at] for r in rows[0])),
        tuple(nodes_of([r[i] for i in node_at] for r in rows[1])),
    )
    before = set(problems(replace(mapping.sides[1], name="merge")).chains)
    chains = [p for p in problems(merged).chains if p not in before]
    key_type = wf_table.column(wf_cols[1]).type  # type: ignore[union-attr]
    conflicts = [
        Conflict(
            WORKFLOWS,
            (canonical(key, key_type),),
            "current",
            "one current revision",
            _current(mapping.sides[0], key),
            _current(mapping.sides[1], key),
            on_conflict,
        )
        for key in two_current(merged.workflows)
    ]
    return chains, conflicts


def retire(
    table: TableSchema,
    rows: Sequence[tuple[Any, ...]],
    mapping: WorkflowMapping,
    winner: OnConflict,
) -> list[tuple[Any, ...]]:
    """The merged ``workflows`` rows with each workflow that has two current revisions
    left with the ``winner`` side's: the other side's revision stays, not current and
    disabled (``current`` NULL, ``enabled`` false), which is what NocoBase itself does
    to the previous revision when another becomes current. Every other row as it came."""
    assert mapping.sides is not None and winner is not OnConflict.FAIL
    won, lost = mapping.sides if winner is OnConflict.SOURCE else mapping.sides[::-1]
    cols = _columns(DatabaseSchema("", "", {table.name: table}), WORKFLOWS, WORKFLOW_COLUMNS)
    assert cols is not None
    at = [table.column_names.index(c) for c in cols]
    merged = list(workflows_of([r[i] for i in at] for r in rows))
    keys = two_current(merged)
    kept = {w.id for w in won.workflows if w.current}
    losing = {w.id for w in lost.workflows if w.current and w.key in keys and w.id not in kept}
    enabled = spelled.column(table, "enabled")
    edits = {at[2]: None} | ({table.column_names.index(enabled): False} if enabled else {})
    return [
        tuple(edits.get(i, v) for i, v in enumerate(row)) if w.id in losing else row
        for row, w in zip(rows, merged, strict=True)
    ]


def upsert_problems(mapping: WorkflowMapping) -> list[str]:
    """Workflows that upserting the source's revisions (IDs as paired) over the target's
    would leave with two current revisions (NocoBase's unique index on ``key`` and
    ``current``); ``upsert`` never edits a target row the source does not hold, so
    neither revision may be retired. (Node chains cannot break here: each side's were
    checked, a source node never links to a node only the target holds, and upsert
    deletes nothing.)"""
    assert mapping.sides is not None
    source, target = mapping.sides
    workflows = {w.id: w for w in target.workflows} | {w.id: w for w in source.workflows}
    return [
        f"{WORKFLOWS} key {key!r}: the upsert would leave two current revisions "
        f"({_current(source, key)} from the source, {_current(target, key)} in the target): "
        "disable one of them, or merge with merge: threeWay and onConflict"
        for key in two_current(workflows.values())
    ]
