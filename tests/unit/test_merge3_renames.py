"""Rows renamed since the base paired through the base's IDs
(``engine.merge3_renames``): pure, keys and IDs canonical."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.engine.merge3_renames import Renames, pair_renamed, rekey

BASE = {("home",): ("s1", "t1"), ("about",): ("s2", "t2")}
SOURCE = {("home",): "s1", ("about",): "s2"}
TARGET = {("home",): "t1", ("about",): "t2"}


def test_nothing_renamed_pairs_nothing() -> None:
    found = pair_renamed(BASE, SOURCE, TARGET)
    assert not found and found == Renames()


def test_a_rename_on_either_side_files_the_row_under_the_base_key() -> None:
    source = {("start",): "s1", ("about",): "s2"}
    found = pair_renamed(BASE, source, TARGET)
    assert (found.source, found.target, found.ids) == (
        {("start",): ("home",)},
        {},
        {"s1": "t1"},
    )
    target = {("main",): "t1", ("about",): "t2"}
    found = pair_renamed(BASE, SOURCE, target)
    assert (found.source, found.target, found.ids) == ({}, {("main",): ("home",)}, {"s1": "t1"})


def test_renamed_on_one_side_and_deleted_on_the_other_is_left_to_the_merge() -> None:
    """The source renamed it, the target deleted it: filed under the base key, where
    the merge sees a change against a deletion (a conflict); no target ID to take."""
    found = pair_renamed(BASE, {("start",): "s1", ("about",): "s2"}, {("about",): "t2"})
    assert (found.source, found.ids) == ({("start",): ("home",)}, {})


def test_a_key_another_row_holds_is_not_guessed() -> None:
    # the source renamed home to about after deleting about, and vice versa (a swap)
    swap = {("about",): "s1", ("home",): "s2"}
    assert pair_renamed(BASE, swap, TARGET).unpaired == [("about",), ("home",)]
    # the target made a row of the source's new name on its own
    found = pair_renamed(BASE, {("start",): "s1"}, {**TARGET, ("start",): "t9"})
    assert found.unpaired == [("home",)] and not found.source
    # a new row took the old name in the source
    found = pair_renamed(BASE, {("start",): "s1", ("home",): "s9"}, TARGET)
    assert found.unpaired == [("home",)] and not found.source
    # … while the target deleted it: nothing else stands in the way but that new row
    found = pair_renamed(BASE, {("start",): "s1", ("home",): "s9"}, {("about",): "t2"})
    assert found.unpaired == [("home",)] and not found.source


KEYS = st.sampled_from([("a",), ("b",), ("c",), ("d",)])
IDS = st.sampled_from(["1", "2", "3", "4"])


def _side(prefix: str) -> st.SearchStrategy[dict[tuple[str, ...], str]]:
    """Key → ID, each ID held once (as in a table with a primary key)."""
    return (
        st.dictionaries(KEYS, IDS, max_size=4)
        .filter(lambda d: len(set(d.values())) == len(d))
        .map(lambda d: {k: prefix + v for k, v in d.items()})
    )


@given(
    st.dictionaries(KEYS, st.tuples(IDS, IDS), max_size=4).map(
        lambda d: {k: ("s" + s, "t" + t) for k, (s, t) in d.items()}
    ),
    _side("s"),
    _side("t"),
)
def test_rekeying_keeps_every_row_once_and_pairs_what_the_base_paired(
    base: dict[tuple[str, ...], tuple[str, str]],
    source: dict[tuple[str, ...], str],
    target: dict[tuple[str, ...], str],
) -> None:
    """Whatever each side renamed, deleted or added: re-keyed, each side still holds
    every row once, and a row paired by ID is one the base held under that pair."""
    if len({s for s, _ in base.values()}) < len(base) or len({t for _, t in base.values()}) < len(
        base
    ):
        return  # a base holds each ID once too
    found = pair_renamed(base, source, target)
    for side, moves in ((source, found.source), (target, found.target)):
        moved = rekey(side, moves)
        assert sorted(moved.values()) == sorted(side.values())
    assert set(found.ids.items()) <= set(base.values())
