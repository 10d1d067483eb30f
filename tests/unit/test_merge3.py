"""The three-way merge of one table, over hypothesis-generated bases, sources, targets."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from controller.api.rules import OnConflict
from controller.engine.merge3 import Rows, TableMerge, merge_table, resolve
from controller.engine.values import NULL

COLUMNS = ("a", "b", "c")
_values = st.sampled_from(["s:x", "s:y", NULL])
_row = st.fixed_dictionaries({c: _values for c in COLUMNS})
_rows = st.dictionaries(st.sampled_from([("k1",), ("k2",), ("k3",), ("k4",)]), _row, max_size=4)


def _values_of(
    merge: TableMerge, source: Rows, target: Rows
) -> dict[tuple[str, ...], dict[str, str]]:
    raw_s = {k: tuple(r[c] for c in COLUMNS) for k, r in source.items()}
    raw_t = {k: tuple(r[c] for c in COLUMNS) for k, r in target.items()}
    rows = resolve(merge, raw_s, raw_t, COLUMNS)
    return {
        k: dict(zip(COLUMNS, r, strict=True)) for k, r in zip(sorted(merge.rows), rows, strict=True)
    }


def _merged(
    base: Rows | None, source: Rows, target: Rows, on: OnConflict = OnConflict.FAIL
) -> tuple[TableMerge, dict[tuple[str, ...], dict[str, str]]]:
    merge = merge_table("t", base, source, target, on)
    return merge, _values_of(merge, source, target)


@given(_rows, _rows)
def test_the_same_on_both_sides_is_taken_without_conflict(base: Rows, side: Rows) -> None:
    merge, values = _merged(base, side, side)
    assert merge.conflicts == []
    assert values == side


@given(_rows, _rows)
def test_a_side_that_did_not_change_since_the_base_never_wins(base: Rows, changed: Rows) -> None:
    # source unchanged since the base: the target's rows (deletions included) stay
    merge, values = _merged(base, base, changed)
    assert (merge.conflicts, values) == ([], changed)
    # target unchanged since the base: the source's rows, deletions included, arrive
    merge, values = _merged(base, changed, base)
    assert (merge.conflicts, values) == ([], changed)


@given(_rows, _rows, _rows)
def test_source_and_target_are_symmetric(base: Rows, source: Rows, target: Rows) -> None:
    one, one_values = _merged(base, source, target, OnConflict.SOURCE)
    two, two_values = _merged(base, target, source, OnConflict.TARGET)
    assert one_values == two_values
    assert [(c.key, c.column) for c in one.conflicts] == [(c.key, c.column) for c in two.conflicts]


@settings(max_examples=300)
@given(_rows, _rows, _rows, st.sampled_from(list(OnConflict)))
def test_every_cell_follows_the_side_that_changed_it(
    base: Rows, source: Rows, target: Rows, on: OnConflict
) -> None:
    merge, values = _merged(base, source, target, on)
    conflicts = {(c.key, c.column) for c in merge.conflicts}
    for key in set(source) | set(target):
        b, s, t = base.get(key), source.get(key), target.get(key)
        if (key, None) in conflicts:  # changed on one side, deleted on the other
            assert b is not None and b not in (s, t) and None in (s, t)
            if on is not OnConflict.FAIL:
                assert values.get(key) == (s if on is OnConflict.SOURCE else t)
            continue
        if s is None or t is None:  # no conflict: absent only where that side won
            assert values.get(key) == (s if t == b else t)
            continue
        for column in COLUMNS:
            bc = b[column] if b is not None else None
            sc, tc, got = s[column], t[column], values[key][column]
            assert got in (sc, tc)
            if (key, column) in conflicts:
                assert len({sc, tc, bc}) == 3
                if on is OnConflict.SOURCE:
                    assert got == sc
                if on is OnConflict.TARGET:
                    assert got == tc
            elif sc != tc:
                assert got == (sc if tc == bc else tc)
                assert bc in (sc, tc)
    assert (merge.unresolved == merge.conflicts) is (on is OnConflict.FAIL or not merge.conflicts)


@given(_rows, _rows)
def test_without_a_base_every_difference_conflicts_and_nothing_is_deleted(
    source: Rows, target: Rows
) -> None:
    merge, values = _merged(None, source, target)
    assert set(values) == set(source) | set(target)
    expected = sum(
        1
        for key in set(source) & set(target)
        for column in COLUMNS
        if source[key][column] != target[key][column]
    )
    assert len(merge.conflicts) == expected
    assert all(c.column is not None for c in merge.conflicts)


def test_a_stale_copy_of_a_row_another_team_changed_is_not_a_change() -> None:
    base = {("page",): {"a": "s:v1", "b": "s:x", "c": "s:x"}}
    team_a_promoted = {("page",): {"a": "s:v2", "b": "s:x", "c": "s:x"}}  # in the target now
    team_b = {("page",): {"a": "s:v1", "b": "s:x", "c": "s:x"}}  # B's stale copy
    merge, values = _merged(base, team_b, team_a_promoted)
    assert merge.conflicts == [] and values == team_a_promoted
    assert (merge.from_target, merge.from_source) == (1, 0)


def test_a_singleton_merges_column_by_column() -> None:
    base = {("1",): {"a": "s:title", "b": "s:en", "c": "s:logo"}}
    source = {("1",): {"a": "s:New title", "b": "s:en", "c": "s:logo"}}
    target = {("1",): {"a": "s:title", "b": "s:de", "c": "s:logo2"}}
    merge, values = _merged(base, source, target)
    assert merge.conflicts == [] and merge.merged == 1
    assert values == {("1",): {"a": "s:New title", "b": "s:de", "c": "s:logo2"}}


def test_a_conflict_names_table_key_column_and_masks_secrets() -> None:
    base = {("smtp",): {"password": "s:old-secret-1", "host": "s:a"}}
    source = {("smtp",): {"password": "s:hunter2-source", "host": "s:a"}}
    target = {("smtp",): {"password": "s:hunter2-target", "host": "s:a"}}
    merge = merge_table("mailers", base, source, target)
    [conflict] = merge.unresolved
    assert (conflict.table, conflict.key, conflict.column) == ("mailers", ("smtp",), "password")
    text = conflict.describe()
    assert "mailers" in text and "password" in text
    for secret in ("old-secret-1", "hunter2-source", "hunter2-target"):
        assert secret not in text and secret not in str(conflict.to_dict())


def test_changed_on_one_side_and_deleted_on_the_other_is_a_row_conflict() -> None:
    base = {("r",): {"a": "s:x", "b": "s:x", "c": "s:x"}}
    changed = {("r",): {"a": "s:y", "b": "s:x", "c": "s:x"}}
    merge, values = _merged(base, changed, {})
    [conflict] = merge.conflicts
    assert conflict.column is None and (conflict.source, conflict.target) == (
        "(changed)",
        "(deleted)",
    )
    merge, values = _merged(base, changed, {}, OnConflict.SOURCE)
    assert values == changed and not merge.unresolved
    merge, values = _merged(base, changed, {}, OnConflict.TARGET)
    assert values == {} and not merge.unresolved
