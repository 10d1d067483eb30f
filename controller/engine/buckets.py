"""Find which rows may differ between two tables from bucket aggregates, as data-diff does.

Both sides hash every row where it lives and group the digests by a hash of the key
(``h % modulus``): a bucket whose row count and digest sum agree on both sides holds
the same rows (up to a 60-bit collision of a sum), so only the rows of disagreeing
buckets are fetched and compared in Python. The search first compares the whole
table (one aggregate), then buckets of about :data:`LEAF_ROWS` rows, and splits further
only the buckets that are still too large. Aggregates arrive sorted by bucket and are
merged as they stream, so memory holds only the buckets that differ: it follows the
change, not the table. Where both sides can list each row's (key hash, digest), the
rows of the differing buckets are then compared one by one and only the key hashes of
rows found on one side alone are selected: a few unchanged neighbours of a changed
row are then neither read, nor hashed in Python, nor copied, nor verified again.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import NamedTuple, Protocol, TypeVar, runtime_checkable

from controller.engine.beside import at_once
from controller.engine.source import Batch

BUCKET_ROWS = 4  # rows per bucket aimed at when a table differs
LEAF_ROWS = 32  # a differing bucket this small is fetched rather than split
SPLIT = 32  # a bucket too large is split this many ways
KEY_BITS = 28  # width of the key hash every dialect computes
MAX_MODULUS = 1 << (KEY_BITS - 3)
KEY_SPACE = 1 << KEY_BITS  # a modulus whose buckets are single key hashes


class BucketSum(NamedTuple):
    bucket: int
    rows: int
    digest_sum: int
    env_rows: int = 0  # rows whose text may reference a variable (when asked for)


@dataclass(frozen=True)
class Level:
    """One round of the search: aggregates over ``h % modulus``, of the rows whose
    ``h % within[0]`` is one of ``within[1]`` (None: every row)."""

    modulus: int
    within: tuple[int, tuple[int, ...]] | None = None
    # Whole-table round only: rows outside these buckets count with digest 0 (their
    # values known equal on both sides), so only the rows inside are hashed.
    hashed: tuple[tuple[int, tuple[int, ...]], ...] | None = None


Selection = list[tuple[int, tuple[int, ...]]]  # (modulus, buckets) whose rows to fetch


@runtime_checkable
class DigestSource(Protocol):
    """A side that can hash its rows where they are (a live database)."""

    @property
    def dialect(self) -> str: ...

    def digests_enabled(self) -> bool: ...

    def bucket_sums(
        self,
        table: str,
        key: tuple[str, ...],
        compared: tuple[str, ...],
        level: Level,
        env_columns: tuple[str, ...] = (),
    ) -> Iterator[BucketSum]: ...

    def bucket_digests(
        self,
        table: str,
        key: tuple[str, ...],
        compared: tuple[str, ...],
        selection: Selection,
    ) -> Iterator[tuple[int, int]]: ...

    def bucket_batches(
        self,
        table: str,
        columns: list[str],
        key: tuple[str, ...],
        compared: tuple[str, ...],
        selection: Selection,
    ) -> Iterator[Batch]: ...

    def env_batches(self, table: str, columns: list[str]) -> Iterator[Batch]: ...


@dataclass
class Search:
    """What the search found: rows on each side, and the buckets whose rows differ."""

    source_rows: int = 0
    target_rows: int = 0
    source_env_rows: int = 0  # source rows that may reference a variable
    selection: Selection | None = None  # None: the tables hold the same rows

    @property
    def differing(self) -> bool:
        return bool(self.selection)


def _differing(a: Iterator[BucketSum], b: Iterator[BucketSum]) -> Iterator[tuple[int, int]]:
    """(bucket, larger row count) of each bucket whose aggregates differ, merging two
    streams sorted by bucket."""
    x, y = next(a, None), next(b, None)
    while x is not None or y is not None:
        if y is None or (x is not None and x.bucket < y.bucket):
            assert x is not None
            yield x.bucket, x.rows
            x = next(a, None)
        elif x is None or y.bucket < x.bucket:
            yield y.bucket, y.rows
            y = next(b, None)
        else:
            if x != y:
                yield x.bucket, max(x.rows, y.rows)
            x, y = next(a, None), next(b, None)


def _first_modulus(rows: int) -> int:
    """A power of two giving buckets of :data:`BUCKET_ROWS` rows or fewer: one round of
    aggregates (a few bytes per bucket, streamed) then finds most changed rows with
    few unchanged ones around them."""
    modulus = 1
    while modulus * BUCKET_ROWS < rows and modulus < MAX_MODULUS:
        modulus *= 2
    return max(modulus, 2)


Sums = Callable[[Level], Iterator[BucketSum]]
# (28-bit key hash, row digest) of each row in a selection, as the sums hash them
RowDigests = Callable[[Selection], Iterator[tuple[int, int]]]
_Arg = TypeVar("_Arg")
_Item = TypeVar("_Item")


def _both(
    source: Callable[[_Arg], Iterator[_Item]], target: Callable[[_Arg], Iterator[_Item]], arg: _Arg
) -> tuple[Iterator[_Item], Iterator[_Item]]:
    """Both sides' answers to ``arg``, the two queries running at once (each on its
    own connection, usually its own server): the source's first item is awaited on a
    shared worker thread, the target's on this one; the rest streams as it is
    consumed."""

    def first(query: Callable[[_Arg], Iterator[_Item]]) -> Iterator[_Item]:
        stream = query(arg)
        head = next(stream, None)
        return stream if head is None else itertools.chain([head], stream)

    return at_once(partial(first, source), partial(first, target))


def _one_sided(source: RowDigests, target: RowDigests, selection: Selection) -> Selection:
    """The key hashes of the rows of ``selection`` that one side holds and the other
    does not (a row's digest covers its key, so an edited row is on both lists with
    two digests), as a selection of single key hashes; ``selection`` itself when the
    rows show no difference (only a collision of sums can do that)."""
    a, b = _both(source, target, selection)
    held = Counter(a)
    held.subtract(b)
    keys = sorted({h for (h, _), n in held.items() if n})
    return [(KEY_SPACE, tuple(keys))] if keys else selection


def search(
    source: Sums,
    target: Sums,
    scope: Selection | None = None,
    rows: tuple[RowDigests, RowDigests] | None = None,
) -> Search:
    """Compare whole tables, then buckets, and say which buckets' rows to fetch.

    ``scope``: the only buckets whose rows may differ (a write that changed only
    those): the whole-table round then hashes only their rows and counts the rest;
    should it still differ, the search goes on over every row as without a scope.
    ``rows``: each side's row digests; given, the differing buckets are narrowed to
    the key hashes of the rows that differ (:func:`_one_sided`)."""
    found = Search()
    narrower = bool(scope) and all(modulus > 1 for modulus, _ in scope or ())
    first = Level(1, hashed=tuple(scope or ())) if narrower else Level(1)
    heads = _both(source, target, first)
    (src,) = list(heads[0]) or [BucketSum(0, 0, 0)]
    (tgt,) = list(heads[1]) or [BucketSum(0, 0, 0)]
    found.source_rows, found.target_rows = src.rows, tgt.rows
    found.source_env_rows = src.env_rows
    if src[1:3] == tgt[1:3]:
        return found
    if not (src.rows and tgt.rows):  # one side empty: every row differs
        found.selection = [(1, (0,))]
        return found
    selection: Selection = []
    level = Level(_first_modulus(max(src.rows, tgt.rows)))
    while True:
        leaves: list[int] = []
        split: list[int] = []
        for bucket, count in _differing(*_both(source, target, level)):
            small = count <= LEAF_ROWS or level.modulus >= MAX_MODULUS
            (leaves if small else split).append(bucket)
        if leaves:
            selection.append((level.modulus, tuple(leaves)))
        if not split:
            break
        level = Level(min(level.modulus * SPLIT, MAX_MODULUS), (level.modulus, tuple(split)))
    if not selection:  # sums collided yet totals differ: every row
        found.selection = [(1, (0,))]
    else:
        found.selection = _one_sided(*rows, selection) if rows else selection
    return found
