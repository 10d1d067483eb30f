"""Workflows in a three-way merge (``commands.merging.merge_tables``): paired by key,
refused when they cannot be, a conflict when both sides made another revision current.

Sides are held in memory (``tests/unit/test_workflow_pairing.Memory``): no I/O.
"""

from __future__ import annotations

import pytest

from controller.api.rules import OnConflict, Rule
from controller.commands.merging import Base, Merging, merge_tables, pair_workflows
from controller.engine.catalog import Category
from controller.engine.idmapping import IdMapping
from controller.engine.plan import key_spec
from controller.engine.rules import Resolved
from controller.engine.workflow_mapping import map_workflows, upsert_problems
from controller.errors import CheckFailed
from tests.unit.test_workflow_pairing import Memory, _schema

TABLES = ("flow_nodes", "workflows")


def _merge(
    source: Memory,
    target: Memory,
    base: Base | None = None,
    on_conflict: OnConflict = OnConflict.FAIL,
) -> Merging:
    schema = _schema()
    resolved = {
        t: Resolved(t, Rule.UPSERT, (), Category.SYSTEM, "test", on_conflict=on_conflict)
        for t in TABLES
    }
    keyspecs = {t: key_spec(resolved[t], schema.tables[t], schema.tables[t]) for t in TABLES}
    return merge_tables(
        (source, target), TABLES, resolved, keyspecs, IdMapping(), base or Base("none: test")
    )


def test_independent_workflows_sharing_ids_land_side_by_side() -> None:
    source = Memory(
        {"workflows": [(7, "mine", True, "A")], "flow_nodes": [(3, "n1", 7, None, None)]}
    )
    target = Memory(
        {"workflows": [(7, "theirs", True, "B")], "flow_nodes": [(3, "x", 7, None, None)]}
    )
    merging = _merge(source, target)
    assert merging.unresolved == [] and merging.broken_trees == []
    assert sorted(merging.rows["workflows"]) == [(7, "theirs", True, "B"), (8, "mine", True, "A")]
    assert sorted(merging.rows["flow_nodes"]) == [(3, "x", 7, None, None), (4, "n1", 8, None, None)]
    # paired by key: the plan does not call them paired by generated ID alone
    assert not [w for w in merging.warnings if "generated ID" in w]


@pytest.mark.parametrize(
    ("nodes", "reason", "named"),
    [
        ([(2, "a", 1, 3, None), (3, "b", 1, 2, None)], "BrokenTree", "2 → 3 → 2"),
        ([(2, "a", 9, None, None)], "BrokenTree", "flow_nodes 2 in the source"),
        ([(2, "a", 1, None, None), (3, "a", 1, None, None)], "BadKey", "2, 3"),
    ],
)
def test_hostile_sides_are_refused_in_one_line_naming_the_rows(
    nodes: list[tuple[object, ...]], reason: str, named: str
) -> None:
    source = Memory({"workflows": [(1, "k", True, "a")], "flow_nodes": nodes})
    with pytest.raises(CheckFailed) as refused:
        _merge(source, Memory({}))
    assert refused.value.reason == reason
    assert named in refused.value.message and "\n" not in refused.value.message


def test_both_sides_made_another_revision_current_is_an_unresolved_conflict() -> None:
    old = (1, "k", True, "v1")
    promoted = _merge(Memory({"workflows": [old]}), Memory({"workflows": [old]}))
    base = Base("migration m1", promoted.next_base)  # revision 1 was current
    source = Memory({"workflows": [(1, "k", None, "v1"), (2, "k", True, "source's")]})
    target = Memory({"workflows": [(1, "k", None, "v1"), (3, "k", True, "target's")]})
    merging = _merge(source, target, base)
    assert merging.unresolved == [
        "table workflows, key ('k'), column current: base one current revision, "
        "source revision 2, target revision 3"
    ]
    # one side alone making another revision current merges cleanly
    alone = _merge(source, Memory({"workflows": [old]}), base)
    assert alone.unresolved == []
    assert sorted(alone.rows["workflows"]) == [(1, "k", None, "v1"), (2, "k", True, "source's")]


@pytest.mark.parametrize(
    ("winner", "current", "retired"),
    [(OnConflict.SOURCE, 2, 3), (OnConflict.TARGET, 3, 2)],
)
def test_two_current_revisions_are_resolved_by_on_conflict(
    winner: OnConflict, current: int, retired: int
) -> None:
    """The losing side's revision stays, no longer current; nothing else changes."""
    old = (1, "k", True, "v1")
    base = Base("migration m1", _merge(Memory({"workflows": [old]}), Memory({})).next_base)
    source = Memory({"workflows": [(1, "k", None, "v1"), (2, "k", True, "source's")]})
    target = Memory({"workflows": [(1, "k", None, "v1"), (3, "k", True, "target's")]})
    merging = _merge(source, target, base, winner)
    assert merging.unresolved == []
    (conflict,) = merging.infos["workflows"].conflicts
    assert conflict.resolution is winner and conflict.column == "current"
    merged = {row[0]: row for row in merging.rows["workflows"]}
    assert sorted(merged) == [1, 2, 3]
    assert merged[current][2] is True and merged[retired][2] is None
    assert merged[1] == (1, "k", None, "v1")
    # what the writer writes is what the index says
    index = merging.indexes["workflows"]
    assert index.count == 3


def test_an_upsert_is_refused_where_it_would_leave_two_current_revisions() -> None:
    source = Memory({"workflows": [(2, "k", True, "source's")]})
    target = Memory({"workflows": [(3, "k", True, "target's"), (4, "other", True, "x")]})
    found = map_workflows(source, target, TABLES, IdMapping())
    assert upsert_problems(found) == [
        "workflows key 'k': the upsert would leave two current revisions (revision 2 from "
        "the source, revision 3 in the target): disable one of them, or merge with "
        "merge: threeWay and onConflict"
    ]
    # the source's revision updating the target's own (same ID) is not a second one
    same = Memory({"workflows": [(3, "k", True, "edited")]})
    assert upsert_problems(map_workflows(same, target, TABLES, IdMapping())) == []


def test_a_one_way_overwrite_matches_unpairable_workflows_by_id_and_says_why() -> None:
    """The target holds a workflow without a key (it cannot be paired by one): an
    overwrite makes the target's rows the source's, so rows matched by ID are right
    there; a merge or an upsert is refused instead."""
    source = Memory({"workflows": [(1, "k", True, "a")], "flow_nodes": [(2, "a", 1, None, None)]})
    keyless = [(1, "k", True, "a"), (5, None, None, "t")]
    target = Memory({"workflows": keyless, "flow_nodes": [(2, "a", 1, None, None)]})
    ids = IdMapping()
    found = pair_workflows((source, target), TABLES, ids, strict=False)
    assert found.tables == () and ids.maps == {}
    assert found.warnings == [
        "workflows: not paired by key, matched by ID as overwrite allows: "
        "workflows 5 in the target has no key"
    ]
    with pytest.raises(CheckFailed) as refused:
        pair_workflows((source, target), TABLES, IdMapping())
    assert refused.value.reason == "BadKey"
