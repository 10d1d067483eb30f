"""Trees kept in a closure table (NocoBase's ``uiSchemas`` + ``uiSchemaTreePath``): the
checks a three-way merge must pass before it is written.

A merge takes rows from two sides, so it can combine what neither side holds: a child
one team added under a node the other team deleted (an orphan), a node moved under two
parents, or a parent chain that loops. NocoBase would serve none of them. Pure: given
the node keys and the closure rows the merge produced, list what is broken.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

MAX_LISTED = 20


def _depth(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def tree_problems(
    closure: str, nodes_table: str, nodes: set[str], paths: Iterable[tuple[object, object, object]]
) -> list[str]:
    """``paths``: (ancestor, descendant, depth) rows of ``closure``; ``nodes``: the keys
    of ``nodes_table``. Returns one line per problem (at most :data:`MAX_LISTED`)."""
    problems: list[str] = []
    parents: dict[str, set[str]] = defaultdict(set)
    for ancestor, descendant, depth in paths:
        a, d, n = str(ancestor), str(descendant), _depth(depth)
        missing = [x for x in (a, d) if x not in nodes]
        if missing:
            problems.append(
                f"{closure} ({a} → {d}) names {', '.join(sorted(set(missing)))}, "
                f"which {nodes_table} does not hold (an orphan)"
            )
        if (a == d) != (n == 0):
            problems.append(f"{closure} ({a} → {d}) has depth {depth} (a cycle)")
        if n == 1 and a != d:
            parents[d].add(a)
    for child, found in sorted(parents.items()):
        if len(found) > 1:
            problems.append(f"{nodes_table} {child} has {len(found)} parents: {sorted(found)}")
    problems += _cycles(nodes_table, {c: min(p) for c, p in parents.items()})
    if len(problems) > MAX_LISTED:
        problems = [*problems[:MAX_LISTED], f"… and {len(problems) - MAX_LISTED} more"]
    return problems


def _cycles(nodes_table: str, parent: dict[str, str]) -> list[str]:
    problems: list[str] = []
    done: set[str] = set()
    for start in sorted(parent):
        seen: list[str] = []
        node: str | None = start
        while node is not None and node not in done:
            if node in seen:
                loop = [*seen[seen.index(node) :], node]
                problems.append(f"{nodes_table} parents loop: {' → '.join(loop)} (a cycle)")
                break
            seen.append(node)
            node = parent.get(node)
        done.update(seen)
    return problems
