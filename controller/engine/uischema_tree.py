"""Pair UI schema nodes by their place in the tree, not only by ``x-uid``.

NocoBase keeps its UI schemas as nodes (``uiSchemas``: ``x-uid``, ``name``) in a closure
table (``uiSchemaTreePath``: ancestor, descendant, depth). Some roots have fixed x-uids
(the install-time profile forms, ``nocobase-admin-profile-*``), but their descendants
get random x-uids at each installation. Matched by x-uid alone, the same form field of
two installations is two nodes: a merged release would hang a second set of children
under the shared root.

A node is therefore identified by its position as well: its parent plus its ``name``
(a property name, unique among its siblings in a NocoBase schema). Walking down from
nodes both sides hold by x-uid, a source node the target lacks pairs with the target
node of the same name under the paired parent, when that one is the only candidate and
the source does not hold it by x-uid already. Pure: the caller reads both sides.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MAX_LISTED = 10


@dataclass(frozen=True)
class Tree:
    """One side's tree: node x-uid → its name (None: unnamed), child x-uid → parent."""

    names: Mapping[str, str | None]
    parents: Mapping[str, str]

    @classmethod
    def of(
        cls,
        nodes: Iterable[tuple[object, object]],
        paths: Iterable[tuple[object, object, object]],
    ) -> Tree:
        """From (x-uid, name) node rows and (ancestor, descendant, depth) closure rows;
        a node with more than one parent keeps none (the tree checks report it)."""
        names = {str(uid): None if name is None else str(name) for uid, name in nodes}
        parents: dict[str, str] = {}
        several: set[str] = set()  # children of more than one parent (no set per child)
        for ancestor, descendant, depth in paths:
            if str(depth) == "1" and ancestor != descendant:
                child, parent = str(descendant), str(ancestor)
                if parents.setdefault(child, parent) != parent:
                    several.add(child)
        for child in several:
            del parents[child]
        return cls(names, parents)


@dataclass
class Pairing:
    ids: dict[str, str] = field(default_factory=dict)  # source x-uid → the target's
    ambiguous: list[str] = field(default_factory=list)  # positions not paired, and why

    def listed(self) -> list[str]:
        more = len(self.ambiguous) - MAX_LISTED
        return self.ambiguous[:MAX_LISTED] + ([f"… and {more} more"] if more > 0 else [])


def _levels(tree: Tree, nodes: list[str]) -> dict[str, int]:
    """Each of ``nodes``' distance from its root, walking up its parents; a node whose
    parents loop or end at an x-uid without a row is left out (not reachable from a
    root). Walks are shared, so a deep tree costs its size, not its size times its depth."""
    level: dict[str, int | None] = {}
    for node in nodes:
        path: list[str] = []
        at: str | None = node
        while at is not None and at not in level:
            level[at] = None  # on this walk: meeting it again is a loop
            path.append(at)
            at = tree.parents.get(at)
        if at is None:  # reached a node without a parent: a root if it has a row
            top = path.pop()
            level[top] = 0 if top in tree.names else None
            at = top
        base = level[at]
        for step in reversed(path):
            base = None if base is None else base + 1
            level[step] = base
    return {n: lv for n in nodes if (lv := level[n]) is not None}


def pair_by_position(source: Tree, target: Tree) -> Pairing:
    """Which source x-uids stand for which target x-uids (only where they differ).

    Walking down from the roots, parents first (by depth, then x-uid), a source node
    the target lacks pairs with the only target node of its name under the target
    node its parent is. Only the nodes the target lacks are visited, and only their
    parents' children are grouped, so a tree both sides mostly share costs little."""
    pairing = Pairing()
    missing = [n for n in source.names if n not in target.names]
    if not missing:
        return pairing
    levels = _levels(source, missing)
    order = sorted(levels, key=lambda n: (levels[n], n))
    places = {(source.parents.get(n), source.names.get(n)) for n in order}
    names = {name for _, name in places}
    siblings: dict[tuple[str | None, str | None], int] = defaultdict(int)
    for child, up in source.parents.items():
        place = (up, source.names.get(child))
        if place in places and child in source.names:
            siblings[place] += 1
    tgt_kids: dict[tuple[str, str], list[str]] = defaultdict(list)
    for child, up in target.parents.items():
        kid_name = target.names.get(child)
        if kid_name is not None and kid_name in names:
            tgt_kids[(up, kid_name)].append(child)
    paired: set[str] = set()
    for node in order:
        parent, name = source.parents.get(node), source.names.get(node)
        if parent is None or name is None:
            continue
        to = parent if parent in target.names else pairing.ids.get(parent)
        if to is None:
            continue
        if siblings[(parent, name)] > 1:
            pairing.ambiguous.append(f"{name!r} under {to}: the source has several")
            continue
        candidates = [
            c for c in tgt_kids.get((to, name), ()) if c not in source.names and c not in paired
        ]
        if len(candidates) > 1:
            pairing.ambiguous.append(f"{name!r} under {to}: the target has several")
        elif candidates:
            pairing.ids[node] = candidates[0]
            paired.add(candidates[0])
    return pairing
