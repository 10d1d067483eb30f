"""Which ID a source row takes in the target once rows are paired by what identifies
them (a workflow's key, a route's UI schema) rather than by generated ID.

One rule for every such table: a paired source row takes its target row's ID; an
unpaired one keeps its own unless the target holds it (another row there), and then
gets a fresh one above every ID of both sides, given in source ID order. Target rows
never change ID, so what the target recorded against them still points at them. Also
what their refusals share: IDs listed, loops found. Pure.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from itertools import count

LISTED = 8


def allocate(
    source: Iterable[int], paired: Mapping[int, int], held: Collection[int]
) -> tuple[dict[int, int], int]:
    """Source ID → its ID in the target, for the source IDs that change; and how many
    fresh IDs were given. ``paired``: source ID → the target ID of the row it pairs
    with; ``held``: every ID the target holds."""
    ids = sorted(set(source))
    fresh = count(1 + max([*held, *ids], default=0))
    out: dict[int, int] = {}
    assigned = 0
    for own in ids:
        if own in paired:
            new = paired[own]
        elif own in held:
            new, assigned = next(fresh), assigned + 1
        else:
            continue
        if new != own:
            out[own] = new
    return out, assigned


def listed(ids: Iterable[int]) -> str:
    """IDs as a refusal lists them: the first few, sorted, and how many more."""
    shown = sorted(ids)
    more = f" and {len(shown) - LISTED} more" if len(shown) > LISTED else ""
    return ", ".join(map(str, shown[:LISTED])) + more


def loop_from(links: Mapping[int, int | None], start: int) -> list[int] | None:
    """The loop following ``links`` (row ID → the ID it links to) from ``start`` runs
    into, closed (``[1, 2, 1]``), if any."""
    seen: list[int] = []
    at: int | None = start
    while at is not None and at in links:
        if at in seen:
            return [*seen[seen.index(at) :], at]
        seen.append(at)
        at = links[at]
    return None
