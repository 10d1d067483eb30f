"""``spec.drill`` of a BackupSchedule: its parsing, when a drill is due, and how Argo CD
shows a failed one."""

from __future__ import annotations

import copy
import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from controller.api.resources import SecretKeyRef
from controller.api.schedule import DrillPick, DrillSpec, parse_backup_schedule
from controller.errors import InvalidInput
from controller.flows.drill import drill_due, pick_backup
from tests.unit.test_argocd_health import fixture, run_health

UTC = dt.UTC


def _body(drill: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"environment": "prod", "schedule": "0 2 * * *"}
    if drill is not None:
        spec["drill"] = drill
    return {"apiVersion": "ferry.dev/v1alpha1", "kind": "BackupSchedule", "spec": spec}


GOOD = {
    "schedule": "0 4 * * 0",
    "scratch": {"urlFrom": {"secretKeyRef": {"name": "s", "key": "url"}}},
}


def test_a_drill_is_parsed() -> None:
    assert parse_backup_schedule(_body(None)).drill is None
    assert parse_backup_schedule(_body(GOOD)).drill == DrillSpec(
        "0 4 * * 0", SecretKeyRef("s", "url")
    )


@pytest.mark.parametrize(
    ("drill", "says"),
    [
        ({"scratch": GOOD["scratch"]}, "spec.drill.schedule is required"),
        ({"schedule": "0 4 * *", "scratch": GOOD["scratch"]}, "spec.drill.schedule: malformed"),
        ({"schedule": "61 4 * * 0", "scratch": GOOD["scratch"]}, "spec.drill.schedule: malformed"),
        ({"schedule": "@weekly"}, "spec.drill.scratch is required"),
        ({"schedule": "@weekly", "scratch": {}}, "urlFrom is required"),
        ({"schedule": "@weekly", "scratch": {"url": "sqlite:///x"}}, "unknown field(s) url"),
        ({**GOOD, "sample": 3}, "unknown field(s) sample"),
        ({**GOOD, "pick": "Oldest"}, "spec.drill.pick"),
    ],
)
def test_a_bad_drill_is_refused(drill: Any, says: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_backup_schedule(_body(drill))
    assert says in err.value.message


def test_a_drill_picks_the_newest_or_a_sampled_backup() -> None:
    assert parse_backup_schedule(_body({**GOOD, "pick": "Sampled"})).drill == DrillSpec(
        "0 4 * * 0", SecretKeyRef("s", "url"), DrillPick.SAMPLED
    )

    def backup(name: str, phase: str, done: str) -> dict[str, Any]:
        status = {"phase": phase, "id": f"id-{name}", "completionTime": done}
        return {"metadata": {"name": name}, "status": status}

    owned = [
        backup("b2", "Completed", "2026-11-02T02:00:00Z"),
        backup("b9", "Failed", "2026-11-09T02:00:00Z"),
        backup("b3", "Completed", "2026-11-03T02:00:00Z"),
        backup("b1", "Completed", "2026-11-01T02:00:00Z"),
        backup("b8", "Running", ""),
    ]
    sundays = [dt.datetime(2026, 1, 4, 4, tzinfo=UTC) + dt.timedelta(weeks=w) for w in range(52)]
    assert {pick_backup(owned, DrillPick.NEWEST, due)["metadata"]["name"] for due in sundays} == {
        "b3"
    }
    drawn = [pick_backup(owned, DrillPick.SAMPLED, due)["metadata"]["name"] for due in sundays]
    assert set(drawn) == {"b1", "b2", "b3"}  # in a year every completed backup, no other
    again = [pick_backup(list(reversed(owned)), DrillPick.SAMPLED, d) for d in sundays]
    assert [b["metadata"]["name"] for b in again] == drawn  # a retry restores the same one
    assert pick_backup(owned[1:2], DrillPick.SAMPLED, sundays[0]) is None


SUNDAYS = DrillSpec("0 4 * * 0", SecretKeyRef("s", "url"))  # 29 Nov 2026 is a Sunday
CREATED = dt.datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def test_a_drill_is_due_at_its_own_times_and_missed_ones_collapse() -> None:
    def due(last: dt.datetime | None, now: dt.datetime, tz: str = "UTC") -> dt.datetime | None:
        return drill_due(SUNDAYS, ZoneInfo(tz), created=CREATED, last=last, now=now)

    assert due(None, dt.datetime(2026, 11, 22, 3, 59, tzinfo=UTC)) is None
    first = dt.datetime(2026, 11, 22, 4, 0, tzinfo=UTC)
    assert due(None, first) == first
    assert due(first, dt.datetime(2026, 11, 28, 23, 0, tzinfo=UTC)) is None
    # two Sundays missed: one drill, at the latest
    assert due(None, dt.datetime(2026, 11, 30, 18, 0, tzinfo=UTC)) == dt.datetime(
        2026, 11, 29, 4, 0, tzinfo=UTC
    )
    # in Berlin, 04:00 is 03:00 UTC in winter
    assert due(first, dt.datetime(2026, 11, 29, 3, 0, tzinfo=UTC), "Europe/Berlin") == (
        dt.datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    )


def _with_drill(status: str, reason: str, message: str) -> dict[str, Any]:
    obj = copy.deepcopy(fixture("backupschedule-scheduled"))
    obj["status"]["conditions"].append(
        {
            "type": "DrillFailed",
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": "2026-11-29T04:00:03Z",
            "observedGeneration": obj["metadata"]["generation"],
        }
    )
    return obj


def test_argo_cd_shows_a_failed_drill_as_degraded() -> None:
    failed = _with_drill("True", "BackupNotRestorable", "backup X failed its drill: roles: …")
    assert run_health(failed) == {
        "status": "Degraded",
        "message": "BackupNotRestorable: backup X failed its drill: roles: …",
    }
    passed = _with_drill("False", "DrillPassed", "matched")
    assert run_health(passed)["status"] == "Healthy"
