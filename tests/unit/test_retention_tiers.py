"""Retention by tiers: the worked example of docs/concepts.md, time zones, ISO weeks,
how maxAge, minKeep and pinning combine with the count rules, and the properties the
decision must have for any backups and any policy (hypothesis)."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.api.schedule import parse_backup_schedule
from controller.backups.retention import (
    KEEP_LAST,
    MIN_KEEP,
    PINNED,
    ROLLBACK,
    TIERS,
    Candidate,
    Decision,
    Policy,
    decide,
    span,
)
from controller.errors import InvalidInput

UTC = dt.UTC
NOW = dt.datetime(2026, 11, 30, 3, 0, tzinfo=UTC)  # a Monday
BERLIN = ZoneInfo("Europe/Berlin")
PROPERTY = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def at(year: int, month: int, day: int, hour: int = 2, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def nightly(days: int) -> list[Candidate]:
    """One completed backup a night at 02:00 UTC, the newest this morning."""
    first = at(2026, 11, 30)
    return [
        Candidate(f"{(first - dt.timedelta(days=n)):%m-%d}", first - dt.timedelta(days=n), True)
        for n in range(days)
    ]


def kept(decision: Decision) -> dict[str, tuple[str, ...]]:
    return {v.id: v.kept_by for v in decision.kept()}


def test_worked_example_40_nightly_backups() -> None:
    """docs/concepts.md's table: 40 nightly backups, 22 October to 30 November 2026,
    keepDaily 7, keepWeekly 4, keepMonthly 3. No backup in September, so the monthly
    tier finds only two months."""
    policy = Policy(keep_daily=7, keep_weekly=4, keep_monthly=3)
    decision = decide(nightly(40), policy, NOW)
    assert kept(decision) == {
        "11-30": (MIN_KEEP, "keepDaily", "keepWeekly", "keepMonthly"),
        "11-29": ("keepDaily", "keepWeekly"),  # Sunday: newest of ISO week 48
        "11-28": ("keepDaily",),
        "11-27": ("keepDaily",),
        "11-26": ("keepDaily",),
        "11-25": ("keepDaily",),
        "11-24": ("keepDaily",),
        "11-22": ("keepWeekly",),  # Sunday of week 47
        "11-15": ("keepWeekly",),  # Sunday of week 46
        "10-31": ("keepMonthly",),
    }
    pruned = {v.id: v.why for v in decision.pruned()}
    assert len(pruned) == 30 and min(pruned) == "10-22"
    assert pruned["11-23"] == (
        "not kept by keepDaily=7 (day 2026-11-23 is outside the 7 newest), "
        "keepWeekly=4 (a newer backup stands for week 2026-W48), "
        "keepMonthly=3 (a newer backup stands for month 2026-11)"
    )
    assert "week 2026-W45 is outside the 4 newest" in pruned["11-08"]
    assert [v.id for v in decision.pruned()][:2] == ["10-22", "10-23"]  # oldest first
    # With maxAge 30d, 31 October (30 days and an hour old) goes too, and says why.
    capped = decide(
        nightly(40),
        Policy(keep_daily=7, keep_weekly=4, keep_monthly=3, max_age=dt.timedelta(days=30)),
        NOW,
    )
    assert sorted(kept(capped)) == sorted(set(kept(decision)) - {"10-31"})
    why = {v.id: v.why for v in capped.pruned()}["10-31"]
    assert why.endswith("maxAge=30d exceeded (30d old; keepMonthly would keep it otherwise)")


def six_hourly() -> list[Candidate]:
    """docs/concepts.md's second example: a backup every six hours (01:00, 07:00, 13:00
    and 19:00 in Berlin) from 21 November to 30 November 07:00, named by Berlin's day and
    time; 29 November 19:00 failed, 21 November 13:00 is pinned and a migration's
    rollback window needs 25 November 07:00."""
    newest = at(2026, 11, 30, 6)
    out = []
    for n in range(38):
        when = newest - dt.timedelta(hours=6 * n)
        name = f"{when.astimezone(BERLIN):%d %H:%M}"
        out.append(
            Candidate(
                name,
                when,
                completed=name != "29 19:00",
                pinned=name == "21 13:00",
                rollback=name == "25 07:00",
            )
        )
    return out


def test_worked_example_six_hourly_in_berlin() -> None:
    """keepHourly 4, keepDaily 3, maxAge 7d in Europe/Berlin, at 10:00 Berlin on
    30 November: the floors outlive maxAge, the failed backup neither counts nor goes."""
    policy = Policy(keep_hourly=4, keep_daily=3, max_age=dt.timedelta(days=7), zone=BERLIN)
    decision = decide(six_hourly(), policy, at(2026, 11, 30, 9))
    assert kept(decision) == {
        "30 07:00": (MIN_KEEP, "keepHourly", "keepDaily"),
        "30 01:00": ("keepHourly",),
        "29 19:00": (),  # failed: no rule keeps it, and it is younger than maxAge
        "29 13:00": ("keepHourly", "keepDaily"),  # the newest *completed* of the 29th
        "29 07:00": ("keepHourly",),
        "28 19:00": ("keepDaily",),
        "25 07:00": (ROLLBACK,),
        "21 13:00": (PINNED,),  # nine days old: maxAge does not override a pin
    }
    why = {v.id: v.why for v in decision.pruned()}
    assert len(why) == 30
    assert why["29 01:00"] == (
        "not kept by keepHourly=4 (hour 2026-11-29 01:00 is outside the 4 newest), "
        "keepDaily=3 (a newer backup stands for day 2026-11-29)"
    )
    assert why["27 19:00"].endswith("keepDaily=3 (day 2026-11-27 is outside the 3 newest)")
    assert why["21 07:00"].endswith("; maxAge=1w exceeded (9d old)")


def test_buckets_are_read_in_the_schedule_time_zone() -> None:
    """22:30 and 23:30 UTC on 29 November are one day in UTC, two in Berlin (00:30 on
    the 30th)."""
    backups = [
        Candidate("late", at(2026, 11, 29, 23, 30), True),
        Candidate("evening", at(2026, 11, 29, 22, 30), True),
    ]
    in_utc = decide(backups, Policy(keep_daily=2, min_keep=0), NOW)
    assert sorted(kept(in_utc)) == ["late"]
    assert "day 2026-11-29" in in_utc.pruned()[0].why
    in_berlin = decide(backups, Policy(keep_daily=2, min_keep=0, zone=BERLIN), NOW)
    assert sorted(kept(in_berlin)) == ["evening", "late"]


def test_hourly_buckets_follow_wall_clock_hours() -> None:
    backups = [Candidate(f"m{m}", at(2026, 11, 30, 1, m), True) for m in (5, 35)]
    backups.append(Candidate("h0", at(2026, 11, 30, 0, 50), True))
    assert sorted(kept(decide(backups, Policy(keep_hourly=5, min_keep=0), NOW))) == ["h0", "m35"]


def test_weeks_are_iso_weeks_across_the_new_year() -> None:
    """31 December 2026 (Thursday) and 2 January 2027 (Saturday) are both in 2026-W53:
    one week, two years."""
    backups = [
        Candidate("jan2", at(2027, 1, 2), True),
        Candidate("dec31", at(2026, 12, 31), True),
    ]
    now = at(2027, 1, 3)
    weekly = decide(backups, Policy(keep_weekly=5, min_keep=0), now)
    assert sorted(kept(weekly)) == ["jan2"]
    assert "a newer backup stands for week 2026-W53" in weekly.pruned()[0].why
    yearly = decide(backups, Policy(keep_yearly=5, min_keep=0), now)
    assert sorted(kept(yearly)) == ["dec31", "jan2"]


def test_tiers_count_only_completed_backups() -> None:
    """A failed backup neither takes its day's place nor uses up one of the N days."""
    backups = [
        Candidate("failed-today", at(2026, 11, 30), False),
        Candidate("today", at(2026, 11, 30, 1), True),
        Candidate("failed-yesterday", at(2026, 11, 29), False),
        Candidate("two-days-ago", at(2026, 11, 28), True),
    ]
    decision = decide(backups, Policy(keep_daily=2, min_keep=0), NOW)
    assert kept(decision) == {
        "failed-today": (),
        "today": ("keepDaily",),
        "failed-yesterday": (),
        "two-days-ago": ("keepDaily",),
    }


def test_max_age_caps_the_count_rules_but_not_the_floors() -> None:
    backups = nightly(60)
    policy = Policy(keep_last=2, keep_monthly=12, max_age=dt.timedelta(days=30), min_keep=1)
    decision = decide(backups, policy, NOW)
    # 31 October, newest of its month, is 30 days and an hour old: keepMonthly would
    # keep it, maxAge does not; 1 November is not its month's newest.
    assert sorted(kept(decision)) == ["11-29", "11-30"]
    october = {v.id: v.why for v in decision.pruned()}["10-31"]
    assert october == (
        "not kept by keepLast=2 (not among the 2 newest); "
        "maxAge=30d exceeded (30d old; keepMonthly would keep it otherwise)"
    )
    marked = [
        Candidate(b.id, b.created_at, True, pinned=b.id == "10-03", rollback=b.id == "10-02")
        for b in backups
    ]
    floors = kept(decide(marked, policy, NOW))
    assert floors["10-03"] == (PINNED,) and floors["10-02"] == (ROLLBACK,)
    # minKeep beats maxAge: with every backup too old, the newest M stay.
    old = decide(backups, Policy(max_age=dt.timedelta(days=1), min_keep=3), NOW + dt.timedelta(99))
    assert sorted(kept(old)) == ["11-28", "11-29", "11-30"]


def test_without_count_rules_max_age_alone_decides_and_without_rules_nothing_goes() -> None:
    backups = nightly(5)
    decision = decide(backups, Policy(max_age=dt.timedelta(days=3), min_keep=0), NOW)
    assert kept(decision) == {"11-30": ("maxAge",), "11-29": ("maxAge",), "11-28": ("maxAge",)}
    assert decide(backups, Policy(min_keep=0), NOW).pruned() == []


def test_failed_backups_go_only_by_max_age_unless_pinned() -> None:
    old_failed = Candidate("failed", NOW - dt.timedelta(days=9), False)
    old_pinned = Candidate("failed-pinned", NOW - dt.timedelta(days=9), False, pinned=True)
    decision = decide([old_failed, old_pinned], Policy(max_age=dt.timedelta(days=7)), NOW)
    assert [(v.id, v.why) for v in decision.pruned()] == [
        ("failed", "failed, and maxAge=1w exceeded (9d old)")
    ]
    assert decide([old_failed], Policy(keep_last=1, keep_daily=1), NOW).pruned() == []


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30 * 86400, "30d"), (14 * 86400, "2w"), (36 * 3600, "36h"), (90 * 60, "90m"), (59, "59s")],
)
def test_span_writes_durations_as_the_spec_does(seconds: int, text: str) -> None:
    assert span(dt.timedelta(seconds=seconds)) == text


def schedule(retention: dict[str, object]) -> dict[str, object]:
    return {
        "kind": "BackupSchedule",
        "metadata": {"name": "nightly", "namespace": "ns"},
        "spec": {"environment": "prod", "schedule": "@daily", "retention": retention},
    }


def test_the_typed_view_reads_the_tiers() -> None:
    fields = {"keepHourly": 24, "keepDaily": 7, "keepWeekly": 4, "keepMonthly": 12}
    retention = parse_backup_schedule(schedule({**fields, "keepYearly": 0})).retention
    got = (retention.keep_hourly, retention.keep_daily, retention.keep_weekly)
    assert (*got, retention.keep_monthly, retention.keep_yearly) == (24, 7, 4, 12, 0)
    assert parse_backup_schedule(schedule({})).retention.keep_daily == 0


@pytest.mark.parametrize("bad", [-1, "7", 1.5, True, None])
def test_the_typed_view_refuses_a_bad_tier(bad: object) -> None:
    body = schedule({"keepWeekly": bad})
    if bad is None:  # an explicit null is the same as unset
        assert parse_backup_schedule(body).retention.keep_weekly == 0
        return
    with pytest.raises(InvalidInput, match=r"spec\.retention\.keepWeekly"):
        parse_backup_schedule(body)


# --- properties, for any backups and any policy ---------------------------------------

moments = st.integers(min_value=0, max_value=3 * 365 * 24 * 60).map(
    lambda minutes: NOW - dt.timedelta(minutes=minutes)
)
rarely = st.integers(min_value=0, max_value=9).map(lambda n: n == 0)  # about one in ten
candidates = st.lists(
    st.tuples(moments, st.integers(min_value=0, max_value=4).map(bool), rarely, rarely),
    max_size=60,
).map(
    lambda rows: [
        Candidate(f"b{i:03d}", when, completed, pinned=pin, rollback=roll)
        for i, (when, completed, pin, roll) in enumerate(rows)
    ]
)
small = st.integers(min_value=0, max_value=6)
policies = st.builds(
    Policy,
    keep_last=st.one_of(st.none(), st.integers(min_value=1, max_value=6)),
    max_age=st.one_of(st.none(), st.integers(min_value=1, max_value=800).map(dt.timedelta)),
    min_keep=small,
    keep_hourly=small,
    keep_daily=small,
    keep_weekly=small,
    keep_monthly=small,
    keep_yearly=small,
    zone=st.sampled_from([UTC, BERLIN, ZoneInfo("America/St_Johns"), ZoneInfo("Pacific/Apia")]),
)


def oracle(backups: list[Candidate], policy: Policy, rule: str, limit: int) -> set[str]:
    """restic's definition, written independently: the newest completed backup of each of
    the ``limit`` newest buckets that hold a completed backup."""
    tier = next(t for t in TIERS if t.rule == rule)
    newest: dict[str, Candidate] = {}
    for b in backups:
        if not b.completed:
            continue
        key = tier.bucket(b.created_at.astimezone(policy.zone))
        if key not in newest or (b.created_at, b.id) > (newest[key].created_at, newest[key].id):
            newest[key] = b
    chosen = sorted(newest.values(), key=lambda b: (b.created_at, b.id), reverse=True)[:limit]
    return {b.id for b in chosen}


@PROPERTY
@given(candidates, policies)
def test_properties(backups: list[Candidate], policy: Policy) -> None:
    decision = decide(backups, policy, NOW)
    by_id = {b.id: b for b in backups}
    verdicts = {v.id: v for v in decision.verdicts}
    assert sorted(verdicts) == sorted(by_id)  # every backup judged once
    for verdict in decision.pruned():
        backup = by_id[verdict.id]
        assert not backup.pinned and not backup.rollback, verdict
        assert verdict.why, verdict  # pruning always explains itself
    completed = [b for b in backups if b.completed]
    kept_completed = [v for v in decision.kept() if by_id[v.id].completed]
    assert len(kept_completed) >= min(policy.min_keep, len(completed))
    for tier, limit in policy.tiers():
        by_tier = {v.id for v in decision.verdicts if tier.rule in v.kept_by}
        assert len(by_tier) <= limit
        young = {
            i
            for i in oracle(backups, policy, tier.rule, limit)
            if policy.max_age is None or NOW - by_id[i].created_at <= policy.max_age
        }
        assert by_tier == young
    if policy.keep_last:
        assert sum(KEEP_LAST in v.kept_by for v in decision.verdicts) <= policy.keep_last
    # Deterministic: the order the backups are listed in changes nothing.
    shuffled = list(backups)
    random.Random(len(backups)).shuffle(shuffled)
    assert decide(shuffled, policy, NOW) == decision
    # Idempotent: deciding again on what was kept prunes nothing more.
    survivors = [by_id[v.id] for v in decision.kept()]
    assert decide(survivors, policy, NOW).pruned() == []
