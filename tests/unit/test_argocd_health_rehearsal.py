"""Argo CD's health of a rehearsed Migration (``spec.rehearsal: Required``).

The objects are statuses a real operator wrote (the fixtures of ``test_argocd_health``;
``migration-rehearsal-failed`` from ``tests/e2e/test_status_fixtures.py``), some given
the rehearsal's phase or block, run through the generated ``argocd-cm.yaml`` as Argo CD
runs it.
"""

from __future__ import annotations

from tests.unit.test_argocd_health import fixture, run_health


def test_rehearsing_is_progressing_and_says_the_target_is_only_read() -> None:
    obj = fixture("migration-pending")
    obj["status"]["phase"] = "Rehearsing"
    got = run_health(obj)
    assert got["status"] == "Progressing"
    assert got["message"].startswith("Rehearsing") and "only read" in got["message"]


def test_a_failed_rehearsal_is_degraded_and_says_the_target_was_not_touched() -> None:
    obj = fixture("migration-rehearsal-failed")  # recorded from a real operator
    got = run_health(obj)
    assert got == {
        "status": "Degraded",
        "message": "Failed in rehearsal (the target was not touched): the plan failed on "
        "the copy: writing roles: UNIQUE constraint failed: roles.title",
    }


def test_a_passed_rehearsal_then_a_failed_apply_is_an_ordinary_failure() -> None:
    obj = fixture("migration-failed")
    obj["status"]["rehearsal"] = {"outcome": "Passed", "reason": "RehearsalPassed"}
    got = run_health(obj)
    assert got["status"] == "Degraded" and got["message"].startswith("Failed: ")


def test_a_succeeded_rehearsed_migration_is_healthy() -> None:
    obj = fixture("migration-succeeded")
    obj["status"]["rehearsal"] = {"outcome": "Passed", "reason": "RehearsalPassed"}
    assert run_health(obj)["status"] == "Healthy"
