"""An exception no flow expected: visible in status, bounded for one-shots, backed off."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from controller.errors import InvalidInput, TemporaryError
from controller.flows.outcome import Outcome
from controller.flows.unexpected import ATTEMPTS, REASON, describe, guarded
from tests.unit.flow_support import conditions

NOW = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)


def body(kind: str, **status: Any) -> dict[str, Any]:
    return {
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", "generation": 2},
        "status": status,
    }


def boom() -> Outcome:
    raise KeyError("spec")


def test_a_normal_outcome_passes_through() -> None:
    done = Outcome({"phase": "Completed"})
    assert guarded("Backup", body("Backup"), lambda: done, now=NOW) is done


@pytest.mark.parametrize("kind", ["Migration", "Backup", "Restore"])
def test_a_one_shot_retries_with_backoff_then_fails_with_a_reason(kind: str) -> None:
    delays = []
    for retry in range(ATTEMPTS - 1):
        out = guarded(kind, body(kind, phase="Applying"), boom, now=NOW, retry=retry)
        assert "phase" not in out.status  # still what it was: not yet a verdict
        ready = conditions(out)["Ready"]
        assert ready[:2] == ("False", REASON) and f"attempt {retry + 1} of" in ready[2]
        assert "KeyError: 'spec'" in ready[2]
        assert [(e.type, e.reason) for e in out.events] == [("Warning", REASON)]
        assert out.retry_after is not None
        delays.append(out.retry_after)
    assert delays == sorted(delays) and delays[0] >= 5
    last = guarded(kind, body(kind), boom, now=NOW, retry=ATTEMPTS - 1, note="; see the ledger")
    assert last.retry_after is None  # final: Kopf does not retry it again
    assert last.status["phase"] == "Failed" and last.status["completionTime"]
    assert last.status["error"].endswith("KeyError: 'spec'; see the ledger")
    assert conditions(last)["Stalled"][:2] == ("True", REASON)
    assert [(e.type, e.reason) for e in last.events] == [("Warning", REASON)]


@pytest.mark.parametrize("kind", ["Environment", "BackupSchedule"])
def test_a_continuous_kind_stalls_and_backs_off_with_one_event_per_reason(kind: str) -> None:
    first = guarded(kind, body(kind), boom, now=NOW, retry=0)
    assert conditions(first)["Stalled"][:2] == ("True", REASON)
    assert "phase" not in first.status and first.retry_after is not None
    assert [e.reason for e in first.events] == [REASON]
    again = guarded(kind, body(kind, conditions=first.status["conditions"]), boom, now=NOW, retry=4)
    assert again.events == () and again.retry_after is not None
    assert again.retry_after > first.retry_after


def test_a_ferry_error_keeps_its_reason_and_a_temporary_one_is_retried() -> None:
    def invalid() -> Outcome:
        raise InvalidInput("spec.x: wrong", reason="InvalidSpec")

    out = guarded("Backup", body("Backup"), invalid, now=NOW, retry=ATTEMPTS - 1)
    assert out.status["phase"] == "Failed" and conditions(out)["Ready"][1] == "InvalidSpec"

    def busy() -> Outcome:
        raise TemporaryError("API server busy", delay=7, reason="Unreachable")

    out = guarded("Migration", body("Migration"), busy, now=NOW, retry=9)
    assert "phase" not in out.status and out.retry_after is not None and out.retry_after >= 7
    assert conditions(out)["Reconciling"][:2] == ("True", "Unreachable")


def test_the_message_is_one_line_without_passwords() -> None:
    err = RuntimeError("cannot reach\npostgresql://app:hunter2@db/x\n" + "y" * 2000)
    text = describe(err)
    assert "hunter2" not in text and "\n" not in text and len(text) <= 500
    assert text.startswith("RuntimeError: cannot reach postgresql://app:***@db/x")
