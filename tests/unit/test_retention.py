"""Retention selection: a pure function, tested on its rules one by one."""

from __future__ import annotations

import datetime as dt

from controller.backups.retention import Candidate, Policy, select_for_deletion

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)


def day(n: int, *, completed: bool = True, pinned: bool = False) -> Candidate:
    return Candidate(f"b{n:02d}", NOW - dt.timedelta(days=n), completed, pinned)


def test_keep_last_n() -> None:
    backups = [day(n) for n in range(5)]
    assert select_for_deletion(backups, Policy(keep_last=3), NOW) == ["b04", "b03"]


def test_max_age_but_min_keep() -> None:
    backups = [day(n) for n in (10, 20, 30)]
    assert select_for_deletion(backups, Policy(max_age=dt.timedelta(days=7), min_keep=1), NOW) == [
        "b30",
        "b20",
    ]
    assert select_for_deletion(backups, Policy(max_age=dt.timedelta(days=7), min_keep=3), NOW) == []


def test_pinned_backups_survive() -> None:
    backups = [day(0), day(1), day(2, pinned=True), day(3)]
    assert select_for_deletion(backups, Policy(keep_last=1), NOW) == ["b03", "b01"]


def test_failed_backups_do_not_count_as_good() -> None:
    backups = [day(0, completed=False), day(1, completed=False), day(2), day(3)]
    # keep_last=2 keeps the two newest *completed* backups, not the failed ones.
    assert select_for_deletion(backups, Policy(keep_last=2), NOW) == []
    assert select_for_deletion(backups, Policy(keep_last=1), NOW) == ["b03"]
    old_failed = [day(9, completed=False), day(1)]
    assert select_for_deletion(old_failed, Policy(max_age=dt.timedelta(days=7)), NOW) == ["b09"]
