"""Build status patches in the Kubernetes shape: observedGeneration and conditions.

``Ready``, ``Reconciling`` and ``Stalled`` are set together so that
``kubectl wait --for=condition=Ready`` works on every kind, and a condition's
``lastTransitionTime`` only moves when its status changes.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.api.conditions import make_condition, merge, parse_conditions


class StatusPatch:
    def __init__(self, body: dict[str, Any], now: dt.datetime) -> None:
        status = body.get("status") or {}
        self.generation = (body.get("metadata") or {}).get("generation")
        self.now = now
        self.conditions = parse_conditions(status.get("conditions"))
        self.fields: dict[str, Any] = {}

    def condition(self, type_: str, status: bool, reason: str, message: str = "") -> StatusPatch:
        new = make_condition(
            type_, status, reason, message, now=self.now, observed_generation=self.generation
        )
        self.conditions = merge(self.conditions, new)
        return self

    def ready(self, reason: str, message: str = "") -> StatusPatch:
        return (
            self.condition("Ready", True, reason, message)
            .condition("Reconciling", False, reason, "")
            .condition("Stalled", False, reason, "")
        )

    def progressing(self, reason: str, message: str = "") -> StatusPatch:
        return (
            self.condition("Ready", False, reason, message)
            .condition("Reconciling", True, reason, message)
            .condition("Stalled", False, reason, "")
        )

    def stalled(self, reason: str, message: str) -> StatusPatch:
        return (
            self.condition("Ready", False, reason, message)
            .condition("Reconciling", False, reason, "")
            .condition("Stalled", True, reason, message)
        )

    def set(self, **fields: Any) -> StatusPatch:
        self.fields.update(fields)
        return self

    def build(self) -> dict[str, Any]:
        return {
            **self.fields,
            "observedGeneration": self.generation,
            "conditions": [c.to_dict() for c in self.conditions],
        }


def timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
