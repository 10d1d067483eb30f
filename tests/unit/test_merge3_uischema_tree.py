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


def _children(tree: Tree) -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for child, parent in tree.parents.items():
        name = tree.names.get(child)
        if name is not None and child in tree.names:
            out.setdefault((parent, name), []).append(child)
    return out


def _reference_pairing(source: Tree, target: Tree) -> tuple[dict[str, str], list[str]]:
    """The pairing as first written: every source node visited breadth-first from the
    roots, both trees' children grouped whole (what the faster one must equal)."""
    kids: dict[str, list[str]] = {}
    for child, parent in source.parents.items():
        kids.setdefault(parent, []).append(child)
    order: list[str] = []
    queue = sorted(n for n in source.names if n not in source.parents)
    while queue:
        order += queue
        queue = sorted(c for n in queue for c in kids.get(n, ()))
    ids: dict[str, str] = {}
    ambiguous: list[str] = []
    at: dict[str, str] = {}
    src_kids, tgt_kids = _children(source), _children(target)
    taken = set(source.names) & set(target.names)
    for node in order:
        if node in target.names:
            at[node] = node
            continue
        parent, name = source.parents.get(node), source.names.get(node)
        if parent is None or name is None or parent not in at:
            continue
        if len(src_kids.get((parent, name), ())) > 1:
            ambiguous.append(f"{name!r} under {at[parent]}: the source has several")
            continue
        candidates = [c for c in tgt_kids.get((at[parent], name), ()) if c not in taken]
        if len(candidates) > 1:
            ambiguous.append(f"{name!r} under {at[parent]}: the target has several")
        elif candidates:
            at[node] = ids[node] = candidates[0]
            taken.add(candidates[0])
    return ids, ambiguous


@st.composite
def _side(draw: st.DrawFn) -> Tree:
    """An installation of a random shape whose x-uids are partly shared ("x-" + the
    position on both sides), partly its own; some names collide or are missing, and
    stray closure rows add loops, second parents and parents without a row."""
    positions = draw(_shapes)
    own = draw(st.sampled_from("st"))
    uid = {(): "root"}
    for p in sorted(positions):
        uid[p] = f"{draw(st.sampled_from(['x', own]))}-{'.'.join(p)}"
    names: dict[str, str | None] = {"root": "root"}
    parent: dict[str, str] = {}
    for p in positions:
        names[uid[p]] = draw(st.sampled_from([p[-1], p[-1], p[-1], "a", None]))
        parent[uid[p]] = uid[p[:-1]]
    uids = [*sorted(uid.values()), "ghost"]
    stray = st.tuples(st.sampled_from(uids), st.sampled_from(uids), st.just(1))
    rows = _closure(parent, set(names)) + draw(st.lists(stray, max_size=3))
    return Tree.of(names.items(), rows)


@given(source=_side(), target=_side())
def test_visiting_only_missing_nodes_pairs_as_visiting_every_node(
    source: Tree, target: Tree
) -> None:
    """Installations sharing some x-uids, with colliding and missing names, loops,
    second parents and parents without a row: the same pairs and the same warnings in
    the same order as the breadth-first walk over every node."""
    pairing = pair_by_position(source, target)
    assert (pairing.ids, pairing.ambiguous) == _reference_pairing(source, target)
