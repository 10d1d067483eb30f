"""Pair NocoBase workflows and their nodes by what identifies them, not by generated ID.

Two installations number their ``workflows`` and ``flow_nodes`` rows each on their own
(snowflake IDs), so a shared ID proves nothing between them. What NocoBase itself keeps
stable is:

- a workflow's ``key``, shared by all its revisions (versions). NocoBase keeps no
  version number: a revision is its own row, made by copying another, and ``current``
  marks the one in use (NocoBase's unique index on (``key``, ``current``); the others
  hold NULL). A revision is therefore the same row on both sides when its key and ID
  agree (copies of one production), or its key and creation time agree (a revision an
  earlier merge gave another ID: promotions carry ``createdAt`` unchanged);
- a node's ``key``, unique within its workflow and copied into each revision, so a node
  is (its workflow, its key).

A source row paired with a target row takes the target's ID; an unpaired source row
keeps its ID unless a target row holds it, and then gets a fresh one above every ID of
both sides. Target rows never change ID, so what NocoBase recorded against them
(executions, jobs, workflow statistics: runtime data that stays in its environment)
still points at them. Pure: sides are given as plain rows, IDs as integers.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from controller.engine.id_allocation import allocate, listed, loop_from

WORKFLOWS, NODES = "workflows", "flow_nodes"


@dataclass(frozen=True)
class Workflow:
    id: int
    key: str | None
    current: bool
    created: str | None = None  # canonical ``createdAt``; None where the table has none


@dataclass(frozen=True)
class Node:
    id: int
    key: str | None
    workflow: int | None
    upstream: int | None = None
    downstream: int | None = None


@dataclass(frozen=True)
class Side:
    name: str  # "source", "target", "merge"
    workflows: Sequence[Workflow]
    nodes: Sequence[Node]


@dataclass
class Problems:
    """What makes a side impossible to pair: ``keys`` (rows that cannot be told apart)
    and ``chains`` (node chains that are not chains)."""

    keys: list[str] = field(default_factory=list)
    chains: list[str] = field(default_factory=list)


@dataclass
class Pairing:
    workflows: dict[int, int] = field(default_factory=dict)  # source ID → target ID (differ)
    nodes: dict[int, int] = field(default_factory=dict)
    paired: Counter[str] = field(default_factory=Counter)  # table → rows paired
    assigned: Counter[str] = field(default_factory=Counter)  # table → fresh IDs given


def _duplicates(side: Side) -> list[str]:
    where = f"in the {side.name}"
    out = [f"{WORKFLOWS} {w.id} {where} has no key" for w in side.workflows if not w.key]
    out += [f"{NODES} {n.id} {where} has no key" for n in side.nodes if not n.key]
    groups: dict[tuple[str, object], list[int]] = defaultdict(list)
    for w in side.workflows:
        if not w.key:
            continue
        if w.current:
            groups[(f"{WORKFLOWS} key {w.key!r}", "current")].append(w.id)
        if w.created is not None:
            groups[(f"{WORKFLOWS} key {w.key!r}", "created at " + w.created)].append(w.id)
    for n in side.nodes:
        if n.key:
            groups[(f"{NODES} key {n.key!r}", f"of workflow {n.workflow}")].append(n.id)
    for (what, which), ids in sorted(groups.items(), key=str):
        if len(ids) > 1:
            out.append(f"{what} {which} {where} is held by several rows: {listed(ids)}")
    return out


def _chains(side: Side) -> list[str]:
    where = f"in the {side.name}"
    workflows = {w.id for w in side.workflows}
    nodes = {n.id: n for n in side.nodes}
    out: list[str] = []
    for n in side.nodes:
        if n.workflow not in workflows:
            out.append(f"{NODES} {n.id} {where} belongs to workflow {n.workflow}, not there")
        for link in ("upstream", "downstream"):
            other = getattr(n, link)
            if other is None:
                continue
            if other not in nodes:
                out.append(f"{NODES} {n.id} {where}: its {link} {other} is not there")
            elif nodes[other].workflow != n.workflow:
                out.append(f"{NODES} {n.id} {where}: its {link} {other} is in another workflow")
    loops: set[tuple[str, frozenset[int]]] = set()
    for link in ("upstream", "downstream"):
        links = {i: getattr(n, link) for i, n in nodes.items()}
        for start in sorted(nodes):
            loop = loop_from(links, start)
            if loop is not None and (link, frozenset(loop)) not in loops:
                loops.add((link, frozenset(loop)))
                chain = " → ".join(map(str, loop))
                out.append(f"{NODES} {where}: {link} links loop: {chain} (a cycle)")
    return out


def problems(side: Side) -> Problems:
    """Rows of one side that cannot be paired (no key, a key held twice) and node
    chains that are broken (a node of a missing workflow, a link to a missing node or
    into another workflow, a loop)."""
    return Problems(_duplicates(side), _chains(side))


def _pair_workflows(source: Side, target: Side, pairing: Pairing) -> dict[int, int]:
    """Source workflow ID → the ID it has in the target (its own where unpaired)."""
    by_id = {w.id: w for w in target.workflows}
    by_created = {(w.key, w.created): w.id for w in target.workflows if w.created is not None}
    rows = sorted(source.workflows, key=lambda w: w.id)
    out = {w.id: w.id for w in rows if w.id in by_id and by_id[w.id].key == w.key}
    claimed = set(out.values())
    for w in rows:
        found = by_created.get((w.key, w.created)) if w.created is not None else None
        if w.id not in out and found is not None and found not in claimed:
            out[w.id] = found
            claimed.add(found)
    pairing.paired[WORKFLOWS] += len(out)
    pairing.workflows, pairing.assigned[WORKFLOWS] = allocate((w.id for w in rows), out, by_id)
    return {w.id: pairing.workflows.get(w.id, w.id) for w in rows}


def pair(source: Side, target: Side) -> Pairing:
    """Pair the source's workflows and nodes with the target's (see the module)."""
    pairing = Pairing()
    workflow_ids = _pair_workflows(source, target, pairing)
    target_nodes = {(n.workflow, n.key): n.id for n in target.nodes}
    paired: dict[int, int] = {}
    for n in source.nodes:
        wf = workflow_ids.get(n.workflow) if n.workflow is not None else None
        found = target_nodes.get((wf, n.key))
        if found is not None:
            paired[n.id] = found
    pairing.paired[NODES] += len(paired)
    held = {n.id for n in target.nodes}
    pairing.nodes, pairing.assigned[NODES] = allocate((n.id for n in source.nodes), paired, held)
    return pairing


def two_current(workflows: Iterable[Workflow]) -> dict[str, list[int]]:
    """Keys with more than one current revision (what NocoBase's unique index refuses)."""
    found: dict[str, list[int]] = defaultdict(list)
    for w in workflows:
        if w.current and w.key:
            found[w.key].append(w.id)
    return {key: sorted(ids) for key, ids in sorted(found.items()) if len(ids) > 1}
