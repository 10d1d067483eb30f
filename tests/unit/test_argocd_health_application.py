"""What Argo CD shows while Ferry holds the target's application at zero, and after
an unhealthy application rolled a Migration back (recorded by
``tests/e2e/test_application_lifecycle.py``)."""

from __future__ import annotations

import copy

import pytest

from tests.unit.test_argocd_health import fixture, run_health


def test_a_quiesced_migration_is_progressing_and_says_the_app_is_down() -> None:
    got = run_health(fixture("migration-applying-quiesced"))
    assert got["status"] == "Progressing"
    assert got["message"].startswith("Applying: ")
    assert got["message"].endswith("(Deployment/web is held at zero replicas, 3 to restore)")


@pytest.mark.parametrize("phase", ["Quiescing", "BackingUp", "Verifying", "RollingBack"])
def test_every_step_while_quiesced_says_so(phase: str) -> None:
    obj = copy.deepcopy(fixture("migration-applying-quiesced"))
    obj["status"]["phase"] = phase
    got = run_health(obj)
    assert got["status"] == "Progressing" and got["message"].startswith(f"{phase}: ")
    assert "held at zero replicas" in got["message"]


@pytest.mark.parametrize("phase", ["Resuming", "CheckingHealth"])
def test_once_resumed_the_message_no_longer_says_the_app_is_down(phase: str) -> None:
    obj = copy.deepcopy(fixture("migration-applying-quiesced"))
    obj["status"]["phase"] = phase
    for c in obj["status"]["conditions"]:
        if c["type"] == "ApplicationQuiesced":
            c["status"], c["reason"] = "False", "Resumed"
    got = run_health(obj)
    assert got["status"] == "Progressing" and "held at zero" not in got["message"]


def test_rolled_back_because_unhealthy_is_degraded_and_says_why() -> None:
    got = run_health(fixture("migration-rolled-back-unhealthy"))
    assert got["status"] == "Degraded"
    assert "the application was unhealthy after it" in got["message"]
    assert "HTTP 503" in got["message"]
    other = run_health(fixture("migration-rolled-back"))
    assert "the target was left as it was" in other["message"]


def test_a_restore_holding_the_app_says_so() -> None:
    obj = copy.deepcopy(fixture("restore-completed"))
    obj["status"]["phase"] = "Restoring"
    obj["status"]["application"] = {"workload": "StatefulSet/nocobase", "quiesced": True}
    obj["status"]["conditions"].append(
        {"type": "ApplicationQuiesced", "status": "True", "reason": "Quiesced", "message": ""}
    )
    got = run_health(obj)
    assert got["status"] == "Progressing"
    assert "StatefulSet/nocobase is held at zero replicas" in got["message"]
