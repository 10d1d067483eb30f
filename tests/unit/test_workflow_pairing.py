"""Workflows and their nodes paired by key between two installations, not by generated ID.

The pairing is pure (``engine.workflow_pairing``); the remapping reads both sides through
``SnapshotSource`` and adds ID maps (``engine.workflow_mapping``), tested here with
sources held in memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.engine.idmapping import IdMapping
from controller.engine.model import Column, ColumnType, DatabaseSchema, Kind, TableSchema
from controller.engine.source import Batch
from controller.engine.workflow_mapping import ConfigMap, map_workflows, merge_problems
from controller.engine.workflow_pairing import (
    Node,
    Pairing,
    Side,
    Workflow,
    pair,
    problems,
    two_current,
)
from controller.errors import CheckFailed

# --- a generated installation: workflows of one key each, nodes in a chain -----------


@st.composite
def installations(draw: st.DrawFn, name: str, prefix: str) -> Side:
    """Workflows (some with several revisions) whose nodes form one chain each; IDs
    are drawn from a small range so two installations share many of them."""
    ids = iter(draw(st.permutations(range(1, 70))))  # at most 4 * 3 * (1 + 4) are used
    workflows: list[Workflow] = []
    nodes: list[Node] = []
    for k in range(draw(st.integers(1, 4))):
        revisions = draw(st.integers(1, 3))
        current = draw(st.integers(0, revisions))  # 0: no revision is current
        node_keys = [f"n{i}" for i in range(draw(st.integers(0, 4)))]
        for r in range(revisions):
            wf = Workflow(next(ids), f"{prefix}{k}", r + 1 == current, f"t:{prefix}{k}.{r}")
            workflows.append(wf)
            chain = [next(ids) for _ in node_keys]
            for i, (node_id, key) in enumerate(zip(chain, node_keys, strict=True)):
                up = chain[i - 1] if i else None
                down = chain[i + 1] if i + 1 < len(chain) else None
                nodes.append(Node(node_id, key, wf.id, up, down))
    return Side(name, tuple(workflows), tuple(nodes))


def _mapped(side: Side, pairing: Pairing) -> Side:
    w, n = pairing.workflows, pairing.nodes

    def node_id(v: int | None) -> int | None:
        return None if v is None else n.get(v, v)

    return Side(
        side.name,
        tuple(Workflow(w.get(x.id, x.id), x.key, x.current, x.created) for x in side.workflows),
        tuple(
            Node(
                n.get(x.id, x.id),
                x.key,
                w.get(x.workflow, x.workflow) if x.workflow else None,
                node_id(x.upstream),
                node_id(x.downstream),
            )
            for x in side.nodes
        ),
    )


def _identity(side: Side) -> dict[int, tuple[Any, ...]]:
    """ID → what the row is: a workflow's (key, created), a node's (workflow, key)."""
    workflows = {w.id: (w.key, w.created) for w in side.workflows}
    out: dict[int, tuple[Any, ...]] = {w.id: ("wf", w.key, w.created) for w in side.workflows}
    out.update({n.id + 10**6: ("node", workflows[n.workflow or 0], n.key) for n in side.nodes})
    return out


@given(installations("source", "a"), installations("target", "b"))
def test_independent_installations_land_side_by_side(source: Side, target: Side) -> None:
    pairing = pair(source, target)
    assert sum(pairing.paired.values()) == 0  # no key is shared: nothing is the same row
    moved = _mapped(source, pairing)
    # no source row takes an ID a target row holds, in either table
    assert not {w.id for w in moved.workflows} & {w.id for w in target.workflows}
    assert not {n.id for n in moved.nodes} & {n.id for n in target.nodes}
    # every chain arrives intact: same identities, links followed
    assert sorted(_identity(moved).values()) == sorted(_identity(source).values())
    assert problems(moved).chains == []
    both = Side("merge", (*moved.workflows, *target.workflows), (*moved.nodes, *target.nodes))
    assert problems(both) == problems(Side("merge", (), ()))
    assert pairing.assigned["workflows"] == len(
        {w.id for w in source.workflows} & {w.id for w in target.workflows}
    )


@given(installations("source", "a"))
def test_copies_of_one_installation_pair_every_row_under_its_own_id(source: Side) -> None:
    pairing = pair(source, Side("target", source.workflows, source.nodes))
    assert (pairing.workflows, pairing.nodes, sum(pairing.assigned.values())) == ({}, {}, 0)
    assert pairing.paired["workflows"] == len(source.workflows)
    assert pairing.paired["flow_nodes"] == len(source.nodes)


@given(installations("source", "a"), st.integers(1000, 2000))
def test_rows_an_earlier_merge_renumbered_pair_by_key_and_creation(
    source: Side, shift: int
) -> None:
    """The target holds the source's rows under other IDs (an earlier merge gave them
    fresh ones): they pair again, and no revision or node is added twice."""
    target = Side(
        "target",
        tuple(Workflow(w.id + shift, w.key, w.current, w.created) for w in source.workflows),
        tuple(
            Node(
                n.id + shift,
                n.key,
                (n.workflow or 0) + shift,
                n.upstream and n.upstream + shift,
                n.downstream and n.downstream + shift,
            )
            for n in source.nodes
        ),
    )
    pairing = pair(source, target)
    assert pairing.workflows == {w.id: w.id + shift for w in source.workflows}
    assert pairing.nodes == {n.id: n.id + shift for n in source.nodes}
    assert _mapped(source, pairing) == Side("source", target.workflows, target.nodes)


def test_a_shared_id_of_another_workflow_is_not_the_same_row() -> None:
    source = Side("source", [Workflow(7, "mine", True)], [Node(3, "n", 7), Node(4, "m", 7, 3)])
    target = Side("target", [Workflow(7, "theirs", True)], [Node(3, "n", 7)])
    pairing = pair(source, target)
    assert pairing.workflows == {7: 8}
    assert pairing.nodes == {3: 5}  # node 4 is free: it keeps its ID
    assert (pairing.assigned["workflows"], pairing.assigned["flow_nodes"]) == (1, 1)


def test_nodes_pair_by_their_workflow_and_key_not_by_id() -> None:
    """A revision's copy of a node has the same key under another workflow."""
    source = Side("source", [Workflow(1, "k", True, "t:1")], [Node(10, "x", 1)])
    target = Side(
        "target",
        [Workflow(1, "k", False, "t:1"), Workflow(2, "k", True, "t:2")],
        [Node(10, "x", 2), Node(11, "x", 1)],
    )
    pairing = pair(source, target)
    assert (pairing.nodes, pairing.paired["flow_nodes"]) == ({10: 11}, 1)


# --- hostile inputs: refused, naming the rows, one line each -------------------------


def _one_line(found: Sequence[str]) -> None:
    assert found and all("\n" not in p for p in found)


@pytest.mark.parametrize(
    ("side", "expected"),
    [
        (
            Side("source", [Workflow(1, "k", True)], [Node(2, "a", 1, 3), Node(3, "b", 1, 2)]),
            ["upstream links loop: 2 → 3 → 2 (a cycle)"],
        ),
        (
            Side("source", [Workflow(1, "k", True)], [Node(2, "a", 1, None, 2)]),
            ["downstream links loop: 2 → 2 (a cycle)"],
        ),
        (
            Side("source", [Workflow(1, "k", True)], [Node(2, "a", 9)]),
            ["flow_nodes 2 in the source belongs to workflow 9, not there"],
        ),
        (
            Side("source", [Workflow(1, "k", True)], [Node(2, "a", 1, 5)]),
            ["flow_nodes 2 in the source: its upstream 5 is not there"],
        ),
        (
            Side(
                "source",
                [Workflow(1, "k", True), Workflow(4, "l", True)],
                [Node(2, "a", 1, 3), Node(3, "b", 4)],
            ),
            ["flow_nodes 2 in the source: its upstream 3 is in another workflow"],
        ),
    ],
)
def test_broken_chains_are_named(side: Side, expected: list[str]) -> None:
    found = problems(side)
    _one_line(found.chains)
    assert found.keys == []
    for text in expected:
        assert any(text in p for p in found.chains), found.chains


@pytest.mark.parametrize(
    ("side", "expected"),
    [
        (
            Side("target", [Workflow(1, "k", True), Workflow(2, "k", True)], []),
            "workflows key 'k' current in the target is held by several rows: 1, 2",
        ),
        (
            Side("source", [Workflow(1, "k", False, "t:x"), Workflow(2, "k", False, "t:x")], []),
            "workflows key 'k' created at t:x in the source is held by several rows: 1, 2",
        ),
        (
            Side("source", [Workflow(1, "k", True)], [Node(2, "a", 1), Node(3, "a", 1)]),
            "flow_nodes key 'a' of workflow 1 in the source is held by several rows: 2, 3",
        ),
        (Side("source", [Workflow(1, None, True)], []), "workflows 1 in the source has no key"),
        (
            Side("source", [Workflow(1, "k\nevil", True)], [Node(5, None, 1)]),
            "flow_nodes 5 in the source has no key",
        ),
    ],
)
def test_rows_that_cannot_be_told_apart_are_named(side: Side, expected: str) -> None:
    found = problems(side)
    _one_line(found.keys)
    assert expected in found.keys


def test_two_current_revisions_of_one_workflow() -> None:
    rows = [Workflow(1, "k", True), Workflow(2, "k", True), Workflow(3, "l", True)]
    assert two_current([*rows, Workflow(4, "k", False)]) == {"k": [1, 2]}


# --- the remapping: ID maps and every column that follows them -----------------------

BIGINT = ColumnType(Kind.BIGINT, native="BIGINT")
TEXT = ColumnType(Kind.STRING, native="VARCHAR(255)")
BOOL = ColumnType(Kind.BOOLEAN, native="BOOLEAN")
WF_COLS = ("id", "key", "current", "title")
NODE_COLS = ("id", "key", "workflowId", "upstreamId", "downstreamId")


def _schema() -> DatabaseSchema:
    def table(name: str, cols: dict[str, ColumnType]) -> TableSchema:
        return TableSchema(name, tuple(Column(c, t) for c, t in cols.items()), ("id",))

    wf = table("workflows", {"id": BIGINT, "key": TEXT, "current": BOOL, "title": TEXT})
    nodes = table("flow_nodes", dict.fromkeys(NODE_COLS, BIGINT) | {"key": TEXT})
    rel = TableSchema(
        "workflowCategoryRelations",
        (Column("workflowId", BIGINT), Column("categoryId", BIGINT)),
        ("workflowId", "categoryId"),
    )
    return DatabaseSchema("postgresql", "15", {t.name: t for t in (wf, nodes, rel)})


@dataclass
class Memory:
    rows: dict[str, list[tuple[Any, ...]]]
    label: str = "memory"

    def schema(self) -> DatabaseSchema:
        return _schema()

    def batches(self, table: str, columns: Sequence[str]) -> Iterator[Batch]:
        names = {"workflows": WF_COLS, "flow_nodes": NODE_COLS}.get(
            table, ("workflowId", "categoryId")
        )
        at = [names.index(c) for c in columns]
        yield [tuple(row[i] for i in at) for row in self.rows.get(table, [])]


MOVED = ("flow_nodes", "workflowCategoryRelations", "workflows")


def test_ids_and_links_are_rewritten_in_every_table_that_holds_them() -> None:
    source = Memory(
        {
            "workflows": [(7, "mine", True, "A")],
            "flow_nodes": [(3, "n1", 7, None, 4), (4, "n2", 7, 3, None)],
            "workflowCategoryRelations": [(7, 1)],
        }
    )
    target = Memory({"workflows": [(7, "theirs", 1, "B")], "flow_nodes": [(4, "x", 7, None, None)]})
    ids = IdMapping()
    found = map_workflows(source, target, MOVED, ids)
    assert found.tables == ("workflows", "flow_nodes") and not found.warnings
    assert (ids.maps["workflows"].assigned, ids.maps["flow_nodes"].assigned) == (1, 1)
    rows = {
        t: [r for b in ids.rows(source, t, cols) for r in b]
        for t, cols in (
            ("workflows", WF_COLS),
            ("flow_nodes", NODE_COLS),
            ("workflowCategoryRelations", ("workflowId", "categoryId")),
        )
    }
    assert rows["workflows"] == [(8, "mine", True, "A")]
    assert rows["flow_nodes"] == [(3, "n1", 8, None, 5), (5, "n2", 8, 3, None)]
    assert rows["workflowCategoryRelations"] == [(8, 1)]
    merged = (
        rows["workflows"] + target.rows["workflows"],
        rows["flow_nodes"] + target.rows["flow_nodes"],
    )
    assert merge_problems(_schema(), merged, found) == ([], [])


def test_two_current_revisions_after_the_merge_are_a_conflict() -> None:
    source = Memory({"workflows": [(1, "k", None, "old"), (2, "k", True, "new")]})
    target = Memory({"workflows": [(1, "k", None, "old"), (3, "k", True, "other")]})
    found = map_workflows(source, target, MOVED, IdMapping())
    no_nodes: list[tuple[object, ...]] = []
    merged = ([*source.rows["workflows"], (3, "k", True, "other")], no_nodes)
    chains, conflicts = merge_problems(_schema(), merged, found)
    assert chains == [] and len(conflicts) == 1
    assert conflicts[0].describe() == (
        "table workflows, key ('k'), column current: base one current revision, "
        "source revision 2, target revision 3"
    )
    assert not conflicts[0].resolved


def test_a_merge_that_breaks_a_chain_is_named_but_not_the_target_own() -> None:
    source = Memory({"workflows": [(1, "k", True, "a")], "flow_nodes": [(5, "n", 1, None, None)]})
    target = Memory(
        {
            "workflows": [(1, "k", True, "a")],
            "flow_nodes": [(5, "n", 1, None, None), (6, "m", 9, None, None)],
        }
    )
    found = map_workflows(source, target, MOVED, IdMapping())
    merged = ([(1, "k", True, "a")], [(5, "n", 1, 7, None), (6, "m", 9, None, None)])
    chains, _ = merge_problems(_schema(), merged, found)
    assert chains == ["flow_nodes 5 in the merge: its upstream 7 is not there"]


def test_hostile_source_is_refused_before_anything_is_mapped() -> None:
    source = Memory(
        {
            "workflows": [(1, "k", True, "a")],
            "flow_nodes": [(2, "a", 1, 3, None), (3, "b", 1, 2, None)],
        }
    )
    ids = IdMapping()
    found = map_workflows(source, Memory({}), MOVED, ids)
    assert found.problems.chains and not found.tables and not ids.maps


def test_not_paired_when_a_table_does_not_move_or_lacks_a_column() -> None:
    ids = IdMapping()
    assert map_workflows(Memory({}), Memory({}), ("workflows",), ids).tables == ()
    assert ids.maps == {}


@pytest.mark.parametrize("bad", ["abc", "1.5e\n3", object()])
def test_an_id_that_is_not_an_integer_is_refused_in_one_line(bad: object) -> None:
    source = Memory({"workflows": [(1, "k", True, "a")], "flow_nodes": [(2, "a", 1, bad, None)]})
    with pytest.raises(CheckFailed) as refused:
        map_workflows(source, Memory({}), MOVED, IdMapping())
    assert refused.value.reason == "BadKey" and "\n" not in refused.value.message
    assert refused.value.message.startswith("flow_nodes: ")


def test_a_target_without_workflow_tables_pairs_nothing_and_reads_nothing() -> None:
    class Bare(Memory):
        def schema(self) -> DatabaseSchema:
            return DatabaseSchema("postgresql", "15", {})

        def batches(self, table: str, columns: Sequence[str]) -> Iterator[Batch]:
            raise AssertionError(f"{table} read from a target that has no such table")

    source = Memory({"workflows": [(1, "k", True, "a")]})
    ids = IdMapping()
    assert map_workflows(source, Bare({}), MOVED, ids).tables == () and ids.maps == {}


def test_sides_whose_ids_are_not_integers_are_not_paired_and_the_plan_says_so() -> None:
    class Uuid(Memory):
        def schema(self) -> DatabaseSchema:
            schema = _schema()
            wf = schema.tables["workflows"]
            columns = tuple(Column(c.name, TEXT) if c.name == "id" else c for c in wf.columns)
            tables = {**schema.tables, "workflows": TableSchema("workflows", columns, ("id",))}
            return DatabaseSchema("postgresql", "15", tables)

    found = map_workflows(Uuid({}), Memory({}), MOVED, IdMapping())
    assert found.tables == ()
    assert found.warnings == ["workflows: not paired by key, workflows has no integer ID"]


def test_node_ids_inside_a_cc_node_config_follow_the_node_map() -> None:
    temp = [
        {"nodeId": 3, "nodeKey": "n1", "nodeType": "node"},
        {"nodeId": "4", "nodeKey": "n2", "nodeType": "node"},
        {"nodeId": 3, "nodeKey": "wf", "nodeType": "workflow"},  # the trigger: not a node
    ]
    config = {"ccUid": "u", "tempAssociationFields": temp}
    maps = ConfigMap("flow_nodes", BIGINT, {"i:3": 30, "i:4": 40})
    got = maps.target_id(config)
    assert got["tempAssociationFields"] == [
        {"nodeId": 30, "nodeKey": "n1", "nodeType": "node"},
        {"nodeId": "40", "nodeKey": "n2", "nodeType": "node"},
        temp[2],
    ]
    assert got["ccUid"] == "u" and config["tempAssociationFields"] is temp  # not mutated
    assert json.loads(maps.target_id(json.dumps(config))) == got  # JSON text stays text
    for untouched in ("not json", '{"a": 1}', None, 5, {"tempAssociationFields": "x"}):
        assert maps.target_id(untouched) == untouched
    assert ConfigMap("flow_nodes", BIGINT, {}).target_id(config) is config
