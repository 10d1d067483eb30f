"""The drill metrics move once per drill: a new ``status.lastDrill`` counts, a repeat
of the one already recorded does not."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY

from controller.handlers.schedules import record_drill


def _value(name: str, schedule: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"namespace": "ns", "schedule": schedule})


def _body(schedule: str, last: Any = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": schedule}, "status": {"lastDrill": last}}


def test_a_failed_drill_counts_once_and_a_passed_one_sets_the_time() -> None:
    failed = {"time": "2026-11-29T04:00:01Z", "outcome": "Failed", "durationSeconds": 1.5}
    record_drill(_body("m1"), failed)
    record_drill(_body("m1", failed), failed)  # the same drill, seen again
    assert _value("ferry_backup_drill_failures_total", "m1") == 1
    assert _value("ferry_backup_drill_duration_seconds", "m1") == 1.5
    assert _value("ferry_backup_drill_last_success_timestamp_seconds", "m1") is None

    passed = {"time": "2026-12-06T04:00:01Z", "outcome": "Passed", "durationSeconds": 2.0}
    record_drill(_body("m1", failed), passed)
    assert _value("ferry_backup_drill_failures_total", "m1") == 1
    assert (_value("ferry_backup_drill_last_success_timestamp_seconds", "m1") or 0) > 1.7e9
    record_drill(_body("m2"), None)  # no drill this check
    assert _value("ferry_backup_drill_failures_total", "m2") is None
