"""What one reconciliation decided: a status patch, events, and when to look again."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Event:
    type: str  # Normal | Warning
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
        ready: dict[str, Any] = next((c for c in conditions if c.get("type") == "Ready"), {})
        return str(ready.get("message") or ready.get("reason") or "waiting")
