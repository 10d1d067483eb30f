"""Find which rows may differ between two tables from bucket aggregates, as data-diff does.

Both sides hash every row where it lives and group the digests by a hash of the key
(``h % modulus``): a bucket whose row count and digest sum agree on both sides holds
the same rows (up to a 60-bit collision of a sum), so only the rows of disagreeing
buckets are fetched and compared in Python. The search first compares
:data:`COARSE` buckets (one aggregate per side, which also gives the table's totals),
then splits only the differing ones into buckets of about :data:`BUCKET_ROWS` rows,
and again those still too large: a row is hashed a second time only where its coarse
bucket differs. Aggregates arrive sorted by bucket and are
merged as they stream, so memory holds only the buckets that differ: it follows the
change, not the table.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable

from controller.engine.source import Batch

BUCKET_ROWS = 4  # rows per bucket aimed at when a table differs
LEAF_ROWS = 32  # a differing bucket this small is fetched rather than split
SPLIT = 32  # a bucket too large is split this many ways
KEY_BITS = 28  # width of the key hash every dialect computes
MAX_MODULUS = 1 << (KEY_BITS - 3)
# The first round's buckets: few enough to stream and merge in a few milliseconds, many
# enough that ~1 % of changed rows leave most of them equal, so the second round hashes
# the rows of the differing ones only.
COARSE = 4096


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


def _both(source: Sums, target: Sums, level: Level) -> tuple[Iterator[BucketSum], ...]:
    """Both sides' aggregates of ``level``, the two queries running at once (each on
    its own connection, usually its own server): the first bucket of each is awaited
    in a worker thread, the rest streams as it is merged."""

    def first(sums: Sums) -> Iterator[BucketSum]:
        stream = sums(level)
        head = next(stream, None)
        return stream if head is None else itertools.chain([head], stream)

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ferry-digests") as pool:
        a, b = pool.submit(first, source), pool.submit(first, target)
        return a.result(), b.result()


class _Tally:
    """A stream of aggregates passed through, adding up the table's totals."""

    def __init__(self, sums: Iterator[BucketSum]) -> None:
        self.sums = sums
        self.rows = 0
        self.env_rows = 0
        self.digest_sum = 0

    def __iter__(self) -> Iterator[BucketSum]:
        for s in self.sums:
            self.rows += s.rows
            self.env_rows += s.env_rows
            self.digest_sum += s.digest_sum
            yield s


def _split(level: Level, buckets: list[tuple[int, int]], selection: Selection) -> Level | None:
    """Record ``level``'s small differing buckets in ``selection`` (their rows are
    fetched); the next level splitting the large ones, or None."""
    leaves: list[int] = []
    split: list[int] = []
    # A coarse bucket is split unless tiny: the next round hashes only the rows of
    # the differing ones, which costs less than fetching and hashing them in Python.
    leaf_rows = LEAF_ROWS if level.within is not None else 2 * BUCKET_ROWS
    for bucket, rows in buckets:
        small = rows <= leaf_rows or level.modulus >= MAX_MODULUS
        (leaves if small else split).append(bucket)
    if leaves:
        selection.append((level.modulus, tuple(leaves)))
    if not split:
        return None
    largest = max(rows for _, rows in buckets)
    modulus = max(level.modulus * 2, level.modulus * _first_modulus(largest))
    return Level(min(modulus, MAX_MODULUS), (level.modulus, tuple(split)))


def search(source: Sums, target: Sums) -> Search:
    """Compare :data:`COARSE` buckets of both tables (their totals too), then split
    only the differing ones: every row is hashed once per side, and again only where
    its coarse bucket differs."""
    found = Search()
    heads = _both(source, target, Level(COARSE))
    src, tgt = _Tally(heads[0]), _Tally(heads[1])
    differing = list(_differing(iter(src), iter(tgt)))
    found.source_rows, found.target_rows = src.rows, tgt.rows
    found.source_env_rows = src.env_rows
    if not differing:
        return found
    if not (src.rows and tgt.rows):  # one side empty: every row differs
        found.selection = [(1, (0,))]
        return found
    selection: Selection = []
    level: Level | None = Level(COARSE)
    while level is not None:
        level = _split(level, differing, selection)
        if level is not None:
            differing = list(_differing(*_both(source, target, level)))
    found.selection = selection or [(1, (0,))]  # sums collided yet totals differ: all
    return found
