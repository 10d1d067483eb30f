"""Which backups to delete, and why: a pure function of the backups, the policy and the time.

A finished backup is **kept** when any of these keeps it, and pruned otherwise:

- the floors, which nothing overrides: it is pinned by its owner, a migration's rollback
  window needs it, or it is one of the newest ``min_keep`` completed backups;
- the count rules, only while it is younger than ``max_age`` (when set): ``keep_last``
  (the newest N completed) and the tiers ``keep_hourly`` … ``keep_yearly``, each of
  which keeps the newest completed backup of each of the N newest hours (days, ISO
  weeks, months, years) that have one, read in the schedule's time zone: restic's
  ``forget --keep-*``. With no count rule set, every completed backup younger than
  ``max_age`` is kept.

Failed (or partial) backups are never counted by a rule; they go once older than
``max_age``. With neither a count rule nor ``max_age``, nothing is pruned. Every
verdict carries its reasons, so that a pruned backup's event can say which rules let
it go and a kept one can say which rules keep it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

# Reasons that are not count rules (the names the ``ferry.dev/kept-by`` annotation shows).
PINNED = "pinned"
ROLLBACK = "rollbackWindow"
MIN_KEEP = "minKeep"
KEEP_LAST = "keepLast"
WITHIN_MAX_AGE = "maxAge"


@dataclass(frozen=True)
class Tier:
    """One grandfather-father-son tier: its spec field, its unit, its bucket."""

    rule: str
    unit: str
    bucket: Callable[[dt.datetime], str]


def _iso_week(t: dt.datetime) -> str:
    year, week, _ = t.isocalendar()
    return f"{year}-W{week:02d}"


TIERS: tuple[Tier, ...] = (
    Tier("keepHourly", "hour", lambda t: t.strftime("%Y-%m-%d %H:00")),
    Tier("keepDaily", "day", lambda t: t.strftime("%Y-%m-%d")),
    Tier("keepWeekly", "week", _iso_week),
    Tier("keepMonthly", "month", lambda t: t.strftime("%Y-%m")),
    Tier("keepYearly", "year", lambda t: t.strftime("%Y")),
)


@dataclass(frozen=True)
class Policy:
    keep_last: int | None = None
    max_age: dt.timedelta | None = None
    min_keep: int = 1
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0
    zone: dt.tzinfo = dt.UTC  # the buckets' time zone

    def tiers(self) -> list[tuple[Tier, int]]:
        """The tiers that are set (N > 0), hourly first."""
        counts = (
            self.keep_hourly,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
            self.keep_yearly,
        )
        return [(tier, n) for tier, n in zip(TIERS, counts, strict=True) if n > 0]

    def counts(self) -> bool:
        """Whether any count rule (keepLast or a tier) is set."""
        return bool(self.keep_last) or bool(self.tiers())


@dataclass(frozen=True)
class Candidate:
    id: str
    created_at: dt.datetime
    completed: bool  # False: failed or partial
    pinned: bool = False  # its owner pinned it
    rollback: bool = False  # a migration's rollback window needs it


@dataclass(frozen=True)
class Verdict:
    """One backup's fate: the rules that keep it (none: pruned, unless it is a failed
    backup that no rule prunes) and, when pruned, why."""

    id: str
    created_at: dt.datetime
    pruned: bool
    kept_by: tuple[str, ...] = ()
    why: str = ""


@dataclass(frozen=True)
class Decision:
    verdicts: tuple[Verdict, ...]  # newest first

    def pruned(self) -> list[Verdict]:
        """The pruned backups, oldest first."""
        doomed = [v for v in self.verdicts if v.pruned]
        return sorted(doomed, key=lambda v: (v.created_at, v.id))

    def kept(self) -> list[Verdict]:
        return [v for v in self.verdicts if not v.pruned]


@dataclass
class _Notes:
    """What each rule said about each completed backup while deciding."""

    keeps: dict[str, list[str]] = field(default_factory=dict)
    refusals: dict[str, list[str]] = field(default_factory=dict)

    def keep(self, backup_id: str, rule: str) -> None:
        self.keeps.setdefault(backup_id, []).append(rule)

    def refuse(self, backup_id: str, why: str) -> None:
        self.refusals.setdefault(backup_id, []).append(why)


def span(delta: dt.timedelta) -> str:
    """A duration as the spec writes it, in its largest whole unit: 30d, 36h, 90m."""
    seconds = int(delta.total_seconds())
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _age(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _count_rules(good: Sequence[Candidate], policy: Policy, notes: _Notes) -> None:
    """keepLast and the tiers, over the completed backups, newest first."""
    if policy.keep_last:
        for rank, backup in enumerate(good):
            if rank < policy.keep_last:
                notes.keep(backup.id, KEEP_LAST)
            else:
                limit = policy.keep_last
                notes.refuse(backup.id, f"keepLast={limit} (not among the {limit} newest)")
    local = [b.created_at.astimezone(policy.zone) for b in good] if policy.tiers() else []
    for tier, limit in policy.tiers():
        last: str | None = None
        used = 0
        for backup, when in zip(good, local, strict=True):
            bucket = tier.bucket(when)
            name = f"{tier.rule}={limit}"
            if bucket == last:
                notes.refuse(backup.id, f"{name} (a newer backup stands for {tier.unit} {bucket})")
            elif used < limit:
                notes.keep(backup.id, tier.rule)
                last, used = bucket, used + 1
            else:
                notes.refuse(
                    backup.id, f"{name} ({tier.unit} {bucket} is outside the {limit} newest)"
                )


def _completed_verdict(
    backup: Candidate, floor: tuple[str, ...], policy: Policy, notes: _Notes, now: dt.datetime
) -> Verdict:
    age = now - backup.created_at
    too_old = policy.max_age is not None and age > policy.max_age
    counted = tuple(notes.keeps.get(backup.id, ()))
    if not policy.counts() and policy.max_age is not None:
        counted = (WITHIN_MAX_AGE,)
    if too_old:
        counted = ()
    kept_by = floor + counted
    if kept_by or (not policy.counts() and policy.max_age is None):
        return Verdict(backup.id, backup.created_at, pruned=False, kept_by=kept_by)
    why = []
    if notes.refusals.get(backup.id):
        why.append("not kept by " + ", ".join(notes.refusals[backup.id]))
    if too_old and policy.max_age is not None:
        held = notes.keeps.get(backup.id)
        alone = f"; {', '.join(held)} would keep it otherwise" if held else ""
        why.append(f"maxAge={span(policy.max_age)} exceeded ({_age(age)} old{alone})")
    return Verdict(backup.id, backup.created_at, pruned=True, why="; ".join(why))


def _failed_verdict(
    backup: Candidate, floor: tuple[str, ...], policy: Policy, now: dt.datetime
) -> Verdict:
    age = now - backup.created_at
    if floor or policy.max_age is None or age <= policy.max_age:
        return Verdict(backup.id, backup.created_at, pruned=False, kept_by=floor)
    why = f"failed, and maxAge={span(policy.max_age)} exceeded ({_age(age)} old)"
    return Verdict(backup.id, backup.created_at, pruned=True, why=why)


def decide(backups: Iterable[Candidate], policy: Policy, now: dt.datetime) -> Decision:
    """Every backup's verdict, newest first."""
    items = sorted(backups, key=lambda b: (b.created_at, b.id), reverse=True)
    good = [b for b in items if b.completed]
    newest = {b.id for b in good[: max(policy.min_keep, 0)]}
    notes = _Notes()
    _count_rules(good, policy, notes)
    verdicts = []
    for backup in items:
        floor = (PINNED,) * backup.pinned + (ROLLBACK,) * backup.rollback
        floor += (MIN_KEEP,) * (backup.id in newest)
        if backup.completed:
            verdicts.append(_completed_verdict(backup, floor, policy, notes, now))
        else:
            verdicts.append(_failed_verdict(backup, floor, policy, now))
    return Decision(tuple(verdicts))


def select_for_deletion(
    backups: Iterable[Candidate], policy: Policy, now: dt.datetime
) -> list[str]:
    """IDs to delete, oldest first."""
    return [v.id for v in decide(backups, policy, now).pruned()]
