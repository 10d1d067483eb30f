"""A merged closure-table tree: orphans, two parents and loops are found, a sound tree passes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.engine.merge3_tree import tree_problems


def _closure(parent: dict[str, str]) -> list[tuple[str, str, int]]:
    """The closure rows of a forest given by child → parent."""
    rows = []
    for node in set(parent) | set(parent.values()):
        rows.append((node, node, 0))
        depth, up = 1, parent.get(node)
        while up is not None:
            rows.append((up, node, depth))
            depth, up = depth + 1, parent.get(up)
    return rows


@given(st.integers(min_value=1, max_value=30), st.data())
def test_a_sound_forest_has_no_problem(size: int, data: st.DataObject) -> None:
    names = [f"n{i}" for i in range(size)]
    parent = {}
    for i in range(1, size):  # each node's parent comes before it: no loop
        if data.draw(st.booleans()):
            parent[names[i]] = names[data.draw(st.integers(0, i - 1))]
    assert tree_problems("paths", "nodes", set(names), _closure(parent)) == []


def test_a_child_under_a_deleted_node_is_an_orphan() -> None:
    rows = _closure({"c1": "root", "c2": "c1"})
    problems = tree_problems("uiSchemaTreePath", "uiSchemas", {"root", "c2"}, rows)
    assert any("names c1, which uiSchemas does not hold (an orphan)" in p for p in problems)


def test_two_parents_and_a_loop_are_refused() -> None:
    two = [("a", "a", 0), ("b", "b", 0), ("c", "c", 0), ("a", "c", 1), ("b", "c", 1)]
    assert tree_problems("t", "n", {"a", "b", "c"}, two) == ["n c has 2 parents: ['a', 'b']"]
    loop = [("a", "a", 0), ("b", "b", 0), ("a", "b", 1), ("b", "a", 1)]
    assert any("parents loop: a → b → a" in p for p in tree_problems("t", "n", {"a", "b"}, loop))
    assert tree_problems("t", "n", {"a"}, [("a", "a", 2)]) == ["t (a → a) has depth 2 (a cycle)"]
