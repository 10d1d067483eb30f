"""How the flow tests read an Outcome's conditions and events (their fixtures, a prod
SQLite database and a store directory, are in ``tests/unit/conftest.py``)."""

from __future__ import annotations

from controller.flows.outcome import Outcome


def conditions(outcome: Outcome) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c["message"]) for c in outcome.status["conditions"]
    }


def events(outcome: Outcome) -> list[tuple[str, str]]:
    return [(e.type, e.reason) for e in outcome.events]
