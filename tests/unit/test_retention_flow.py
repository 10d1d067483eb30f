"""Retention wired into the BackupSchedule flow (fake cluster): the schedule's time zone
reaches the tiers, ``ferry.dev/pinned`` and rollback windows keep Backups, each prune is
an event that names the Backup and the rules, each kept Backup says what keeps it, and a
second pass changes nothing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from controller.api.schedule import Retention
from controller.flows.schedule import KEPT_BY, PINNED, pinned, to_prune
from tests.unit.fake_cluster import FakeCluster
from tests.unit.test_schedule_flow import NOW, backups_of, run, schedule_obj, scheduled

PROD = {"kind": "Environment", "metadata": {"name": "prod", "namespace": "ns"}, "spec": {}}


def pin(obj: dict[str, Any], value: str = "true") -> dict[str, Any]:
    obj["metadata"]["annotations"] = {PINNED: value}
    return obj


def running_migration(backup_id: str) -> dict[str, Any]:
    return {
        "kind": "Migration",
        "metadata": {"name": "release", "namespace": "ns"},
        "status": {"phase": "Applying", "backup": {"id": backup_id}},
    }


def cluster() -> FakeCluster:
    """Six nightly backups at 23:30 UTC (00:30 the next day in Berlin), one failed
    backup, a pinned one, one a running migration may roll back to, and one whose
    ``ferry.dev/pinned: "false"`` pins nothing. ``NOW`` is 28 March 2026, 12:30 UTC."""
    nights = [scheduled(f"night-{n}", "nightly", 13 + 24 * n) for n in range(6)]
    failed = scheduled("failed", "nightly", 20)
    failed["status"]["phase"] = "Failed"
    return FakeCluster(
        schedule_obj(
            "nightly",
            timeZone="Europe/Berlin",
            retention={"keepLast": 1, "keepDaily": 2, "maxAge": "30d"},
        ),
        PROD,
        *nights,
        failed,
        pin(scheduled("pinned", "nightly", 24 * 10)),
        pin(scheduled("unpinned", "nightly", 24 * 11), "false"),
        scheduled("rollback", "nightly", 24 * 12),
        running_migration("id-rollback"),
    )


def test_pruning_explains_itself_and_keeps_pinned_and_rollback_backups() -> None:
    fake = cluster()
    outcome = run(fake, "nightly")
    left = backups_of(fake)
    assert sorted(left) == ["failed", "night-0", "night-1", "pinned", "rollback"]
    messages = [e.message for e in outcome.events if e.reason == "BackupPruned"]
    assert messages[0] == (
        "retention deleted Backup unpinned: not kept by keepLast=1 (not among the 1 newest), "
        "keepDaily=2 (day 2026-03-17 is outside the 2 newest)"
    )
    # Oldest first; every pruned Backup is named once, with the rules that let it go.
    assert [m.split(":")[0] for m in messages] == [
        f"retention deleted Backup {n}"
        for n in ("unpinned", *(f"night-{i}" for i in range(5, 1, -1)))
    ]
    # Berlin's day, not UTC's: 23:30 UTC on 25 March is 00:30 on the 26th.
    assert "keepDaily=2 (day 2026-03-26 is outside the 2 newest)" in messages[-1]
    assert left["night-0"]["annotations"] == {KEPT_BY: "minKeep, keepLast, keepDaily"}
    assert left["night-1"]["annotations"] == {KEPT_BY: "keepDaily"}
    assert left["pinned"]["annotations"] == {PINNED: "true", KEPT_BY: "pinned"}
    assert left["rollback"]["annotations"] == {KEPT_BY: "rollbackWindow"}
    assert "annotations" not in left["failed"]  # no rule counts a failed backup


def test_a_second_pass_prunes_and_patches_nothing() -> None:
    fake = cluster()
    run(fake, "nightly")
    fake.calls.clear()
    again = run(fake, "nightly")
    assert [e for e in again.events if e.reason == "BackupPruned"] == []
    assert [c for c in fake.calls if c[0] in {"delete", "patch"}] == []


def test_a_newer_backup_of_the_same_day_takes_over() -> None:
    """A backup at 12:30 Berlin time on the 28th replaces the 00:30 one as that day's
    backup and as keepLast: the older one goes, and says so."""
    fake = cluster()
    run(fake, "nightly")
    fake.create("Backup", "ns", scheduled("night-new", "nightly", 1))
    outcome = run(fake, "nightly")
    left = backups_of(fake)
    assert left["night-new"]["annotations"] == {KEPT_BY: "minKeep, keepLast, keepDaily"}
    assert left["night-1"]["annotations"] == {KEPT_BY: "keepDaily"}
    assert [e.message for e in outcome.events] == [
        "retention deleted Backup night-0: not kept by keepLast=1 (not among the 1 newest), "
        "keepDaily=2 (a newer backup stands for day 2026-03-28)"
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("True", True), ("yes", True), ("", True), ("false", False), (None, False)],
)
def test_any_pin_but_false_pins(value: str | None, expected: bool) -> None:
    """A typo in the annotation keeps a backup rather than losing it."""
    obj = scheduled("b", "nightly", 1)
    if value is not None:
        pin(obj, value)
    assert pinned(obj) is expected


def test_a_pinned_backup_survives_max_age_and_keep_last() -> None:
    backups = [pin(scheduled("old", "nightly", 24 * 400)), scheduled("new", "nightly", 1)]
    retention = Retention(keep_last=1, max_age=dt.timedelta(days=1))
    assert to_prune(backups, retention, frozenset(), NOW) == []
    backups[0]["metadata"]["annotations"][PINNED] = "false"
    assert to_prune(backups, retention, frozenset(), NOW) == ["old"]
