"""The bucket search of in-database digests, on tables simulated in Python.

Each side is a dict key → row digest; its aggregates are computed as the databases
compute them (``h % modulus`` of a 28-bit key hash, row count, digest sum). Whatever
the change, every key whose row differs must fall in a selected bucket, and a table
that did not change must select nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.engine.buckets import BucketSum, Level, Selection, search

Side = dict[int, int]


def _h(key: int) -> int:
    return int.from_bytes(hashlib.md5(str(key).encode()).digest()[:4]) >> 4


def _row(key: int, value: int) -> int:
    """A row's digest covers its key, as in the databases (compared columns hold it)."""
    return int.from_bytes(hashlib.md5(f"{key}:{value}".encode()).digest()[:8]) >> 4


def _sums(side: Side, calls: list[Level]) -> object:
    def sums(level: Level) -> Iterator[BucketSum]:
        calls.append(level)
        groups: dict[int, list[int]] = {}
        for key, digest in side.items():
            h = _h(key)
            if level.within is not None and h % level.within[0] not in level.within[1]:
                continue
            groups.setdefault(h % level.modulus, []).append(_row(key, digest))
        for bucket in sorted(groups):
            yield BucketSum(bucket, len(groups[bucket]), sum(groups[bucket]))

    return sums


def _rows(side: Side) -> object:
    def rows(selection: Selection) -> Iterator[tuple[int, int]]:
        for key, digest in side.items():
            if _selected(selection, key):
                yield _h(key), _row(key, digest)

    return rows


def _selected(selection: Selection | None, key: int) -> bool:
    return any(_h(key) % modulus in buckets for modulus, buckets in selection or [])


def _search(source: Side, target: Side) -> tuple[Selection | None, list[Level]]:
    calls: list[Level] = []
    found = search(_sums(source, calls), _sums(target, calls))  # type: ignore[arg-type]
    assert (found.source_rows, found.target_rows) == (len(source), len(target))
    return found.selection, calls


TABLE = st.dictionaries(st.integers(0, 5000), st.integers(0, 2**60), max_size=400)


@st.composite
def _sides(draw: st.DrawFn) -> tuple[Side, Side]:
    """A source table and a target made of it with some rows edited, added, dropped."""
    source = draw(TABLE)
    edits = draw(st.dictionaries(st.integers(0, 5000), st.integers(0, 2**60), max_size=20))
    dropped = draw(st.sets(st.integers(0, 5000), max_size=20))
    return source, {k: v for k, v in {**source, **edits}.items() if k not in dropped}


def _differing(source: Side, target: Side) -> set[int]:
    return {k for k in source.keys() | target.keys() if source.get(k) != target.get(k)}


@given(sides=_sides())
@settings(max_examples=200, deadline=None)
def test_every_differing_key_is_in_a_selected_bucket(sides: tuple[Side, Side]) -> None:
    source, target = sides
    selection, _ = _search(source, target)
    differing = _differing(source, target)
    if not differing:
        assert selection is None
    for key in differing:
        assert _selected(selection, key), key


@given(sides=_sides())
@settings(max_examples=200, deadline=None)
def test_with_row_digests_only_the_differing_rows_are_selected(sides: tuple[Side, Side]) -> None:
    """Narrowed by each row's (key hash, digest), a selection holds every key whose
    row differs and no other key but one sharing a differing key's hash."""
    source, target = sides
    rows = (_rows(source), _rows(target))
    found = search(_sums(source, []), _sums(target, []), rows=rows)  # type: ignore[arg-type]
    differing = _differing(source, target)
    if not differing:
        assert found.selection is None
        return
    selected = {k for k in source.keys() | target.keys() if _selected(found.selection, k)}
    assert differing <= selected
    if source and target:  # (one side empty: every row, unbucketed)
        assert {_h(k) for k in selected} == {_h(k) for k in differing}


def test_a_few_changes_select_the_changed_rows_alone() -> None:
    source = {k: k * 7919 for k in range(100_000)}
    target = dict(source)
    for k in range(0, 100_000, 10_000):
        target[k] += 1
    found = search(_sums(source, []), _sums(target, []), rows=(_rows(source), _rows(target)))  # type: ignore[arg-type]
    assert [k for k in source if _selected(found.selection, k)] == list(range(0, 100_000, 10_000))


def test_an_unchanged_table_costs_one_aggregate_per_side() -> None:
    table = {k: k * 7919 for k in range(10_000)}
    selection, calls = _search(table, dict(table))
    assert selection is None and calls == [Level(1), Level(1)]


def test_a_few_changes_select_few_rows() -> None:
    """Memory and reads follow the change: 10 edits in 100,000 rows select buckets
    holding a few dozen rows, not the table."""
    source = {k: k * 7919 for k in range(100_000)}
    target = dict(source)
    for k in range(0, 100_000, 10_000):
        target[k] += 1
    selection, _ = _search(source, target)
    assert selection is not None
    held = [k for k in source if _selected(selection, k)]
    assert 10 <= len(held) <= 200


def test_an_empty_side_selects_every_row_without_bucketing() -> None:
    selection, calls = _search({1: 1, 2: 2}, {})
    assert selection == [(1, (0,))] and len(calls) == 2
