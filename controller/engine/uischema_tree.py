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
        found: dict[str, set[str]] = defaultdict(set)
        for ancestor, descendant, depth in paths:
            if str(depth) == "1" and ancestor != descendant:
                found[str(descendant)].add(str(ancestor))
        parents = {child: next(iter(p)) for child, p in found.items() if len(p) == 1}
        return cls(names, parents)

    def children(self) -> dict[tuple[str, str], list[str]]:
        """(parent, name) → the children of that name."""
        out: dict[tuple[str, str], list[str]] = defaultdict(list)
        for child, parent in self.parents.items():
            name = self.names.get(child)
            if name is not None and child in self.names:
                out[(parent, name)].append(child)
        return out


@dataclass
class Pairing:
    ids: dict[str, str] = field(default_factory=dict)  # source x-uid → the target's
    ambiguous: list[str] = field(default_factory=list)  # positions not paired, and why

    def listed(self) -> list[str]:
        more = len(self.ambiguous) - MAX_LISTED
        return self.ambiguous[:MAX_LISTED] + ([f"… and {more} more"] if more > 0 else [])


def _order(tree: Tree) -> list[str]:
    """Source nodes, each after its parent (parents first); nodes in a loop are left out."""
    kids: dict[str, list[str]] = defaultdict(list)
    for child, parent in tree.parents.items():
        kids[parent].append(child)
    roots = sorted(n for n in tree.names if n not in tree.parents)
    order: list[str] = []
    queue = roots
    while queue:
        order += queue
        queue = sorted(c for n in queue for c in kids.get(n, ()))
    return order


def pair_by_position(source: Tree, target: Tree) -> Pairing:
    """Which source x-uids stand for which target x-uids (only where they differ)."""
    pairing = Pairing()
    at: dict[str, str] = {}  # source node → the target node it is (same x-uid or paired)
    src_kids, tgt_kids = source.children(), target.children()
    taken: set[str] = set(source.names) & set(target.names)
    for node in _order(source):
        if node in target.names:
            at[node] = node
            continue
        parent, name = source.parents.get(node), source.names.get(node)
        if parent is None or name is None or parent not in at:
            continue
        if len(src_kids[(parent, name)]) > 1:
            pairing.ambiguous.append(f"{name!r} under {at[parent]}: the source has several")
            continue
        candidates = [c for c in tgt_kids.get((at[parent], name), ()) if c not in taken]
        if len(candidates) > 1:
            pairing.ambiguous.append(f"{name!r} under {at[parent]}: the target has several")
        elif candidates:
            at[node] = pairing.ids[node] = candidates[0]
            taken.add(candidates[0])
    return pairing
