"""UI schema nodes paired by position (parent plus name) as well as by x-uid."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from controller.engine.uischema_tree import Tree, pair_by_position


def _closure(parent: dict[str, str], nodes: set[str]) -> list[tuple[str, str, int]]:
    rows = []
    for node in nodes:
        rows.append((node, node, 0))
        depth, up = 1, parent.get(node)
        while up is not None:
            rows.append((up, node, depth))
            depth, up = depth + 1, parent.get(up)
    return rows


def _tree(names: dict[str, str | None], parent: dict[str, str]) -> Tree:
    return Tree.of(names.items(), _closure(parent, set(names)))


# A shape: child position → parent position, as tuples of names from a fixed root.
_shapes = st.lists(
    st.lists(st.sampled_from("abc"), min_size=1, max_size=4).map(tuple), max_size=25
).map(lambda paths: {p[:i] for p in paths for i in range(1, len(p) + 1)})


def _install(
    positions: set[tuple[str, ...]], prefix: str
) -> tuple[Tree, dict[tuple[str, ...], str]]:
    """One installation of a schema: a fixed root, random (per prefix) x-uids below."""
    uid = {(): "root"} | {p: f"{prefix}-{'.'.join(p)}" for p in positions}
    names: dict[str, str | None] = {"root": "root"}
    parent: dict[str, str] = {}
    for p in positions:
        names[uid[p]] = p[-1]
        parent[uid[p]] = uid[p[:-1]]
    return _tree(names, parent), uid


@given(_shapes, _shapes)
def test_two_installations_pair_every_shared_position(
    source_shape: set[tuple[str, ...]], target_shape: set[tuple[str, ...]]
) -> None:
    source, src_uid = _install(source_shape, "s")
    target, tgt_uid = _install(target_shape, "t")
    pairing = pair_by_position(source, target)
    shared = source_shape & target_shape
    assert pairing.ids == {src_uid[p]: tgt_uid[p] for p in shared}
    assert pairing.ambiguous == []


@given(_shapes)
def test_the_same_installation_needs_no_remapping(shape: set[tuple[str, ...]]) -> None:
    tree, _ = _install(shape, "s")
    assert pair_by_position(tree, tree).ids == {}


def test_a_node_held_by_x_uid_is_not_paired_by_position_again() -> None:
    # the target has the source's own node "s1" and another "t1" of the same name
    source = _tree({"r": "r", "s1": "f"}, {"s1": "r"})
    target = _tree({"r": "r", "s1": "f", "t1": "f"}, {"s1": "r", "t1": "r"})
    assert pair_by_position(source, target).ids == {}


def test_a_new_node_pairs_with_a_target_node_only_the_target_holds() -> None:
    source = _tree({"r": "r", "s1": "f", "s2": "g"}, {"s1": "r", "s2": "s1"})
    target = _tree({"r": "r", "t1": "f", "t2": "g"}, {"t1": "r", "t2": "t1"})
    assert pair_by_position(source, target).ids == {"s1": "t1", "s2": "t2"}


def test_a_subtree_under_an_unpaired_root_is_new() -> None:
    source = _tree({"page": "p", "s1": "f"}, {"s1": "page"})
    target = _tree({"other": "p", "t1": "f"}, {"t1": "other"})
    assert pair_by_position(source, target).ids == {}


def test_several_nodes_of_one_name_are_not_guessed() -> None:
    source = _tree({"r": "r", "s1": "f"}, {"s1": "r"})
    target = _tree({"r": "r", "t1": "f", "t2": "f"}, {"t1": "r", "t2": "r"})
    pairing = pair_by_position(source, target)
    assert pairing.ids == {}
    assert pairing.ambiguous == ["'f' under r: the target has several"]
    twice = _tree({"r": "r", "s1": "f", "s2": "f"}, {"s1": "r", "s2": "r"})
    pairing = pair_by_position(twice, _tree({"r": "r", "t1": "f"}, {"t1": "r"}))
    assert pairing.ids == {}
    assert pairing.ambiguous == ["'f' under r: the source has several"] * 2


def test_unnamed_nodes_and_loops_are_left_alone() -> None:
    source = _tree({"r": "r", "s1": None, "a": "a", "b": "b"}, {"s1": "r"})
    # a loop a → b → a has no root to walk down from
    source = Tree(source.names, {**source.parents, "a": "b", "b": "a"})
    target = _tree({"r": "r", "t1": None, "ta": "a"}, {"t1": "r", "ta": "r"})
    assert pair_by_position(source, target).ids == {}


def test_a_node_with_two_parents_has_no_position() -> None:
    rows = [("r", "r", 0), ("q", "q", 0), ("c", "c", 0), ("r", "c", 1), ("q", "c", 1)]
    tree = Tree.of([("r", "r"), ("q", "q"), ("c", "f")], rows)
    assert "c" not in tree.parents


def test_many_ambiguities_are_listed_with_a_count() -> None:
    names: dict[str, str | None] = {"r": "r"}
    parent = {}
    for i, j in itertools.product(range(12), range(2)):
        names[f"t{i}{j}"] = f"f{i}"
        parent[f"t{i}{j}"] = "r"
    target = _tree(names, parent)
    source = _tree(
        {"r": "r"} | {f"s{i}": f"f{i}" for i in range(12)}, {f"s{i}": "r" for i in range(12)}
    )
    listed = pair_by_position(source, target).listed()
    assert len(listed) == 11 and listed[-1] == "… and 2 more"
