"""What one reconciliation decided: a status patch, events, and when to look again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.api.reasons import ConditionType, EventType


def backoff(retry: int, floor: float = 5.0) -> float:
    """Seconds before the next attempt after ``retry`` failed ones: doubling from 5 s,
    at least ``floor`` (an error's own delay), at most five minutes. Every flow waits
    by this one curve, so an operator reading the events sees one rhythm."""
    return float(min(300.0, max(floor, 5.0 * 2 ** min(retry, 6))))


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str  # CamelCase, stable
    message: str


@dataclass(frozen=True)
class Outcome:
    status: dict[str, Any]
    events: tuple[Event, ...] = field(default_factory=tuple)
    retry_after: float | None = None  # seconds; None: wait for the next change

    @property
    def retry_reason(self) -> str:
        conditions = self.status.get("conditions") or []
        ready: dict[str, Any] = next(
            (c for c in conditions if c.get("type") == ConditionType.READY), {}
        )
        return str(ready.get("message") or ready.get("reason") or "waiting")
