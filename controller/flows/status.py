"""Build status patches in the Kubernetes shape: observedGeneration and conditions.

``Ready``, ``Reconciling`` and ``Stalled`` are set together so that
``kubectl wait --for=condition=Ready`` works on every kind, and a condition's
``lastTransitionTime`` only moves when its status changes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from controller.api.conditions import ConditionStatus, make_condition, merge, parse_conditions
from controller.api.reasons import ConditionType


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
            self.condition(ConditionType.READY, True, reason, message)
            .condition(ConditionType.RECONCILING, False, reason, "")
            .condition(ConditionType.STALLED, False, reason, "")
        )

    def progressing(self, reason: str, message: str = "") -> StatusPatch:
        return (
            self.condition(ConditionType.READY, False, reason, message)
            .condition(ConditionType.RECONCILING, True, reason, message)
            .condition(ConditionType.STALLED, False, reason, "")
        )

    def stalled(self, reason: str, message: str) -> StatusPatch:
        return (
            self.condition(ConditionType.READY, False, reason, message)
            .condition(ConditionType.RECONCILING, False, reason, "")
            .condition(ConditionType.STALLED, True, reason, message)
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


def ready_reason(status: Mapping[str, Any]) -> str | None:
    """The reason of a status's ``Ready`` condition: a flow posts an event only when
    its reason is new, not on every retry."""
    for cond in status.get("conditions") or []:
        if cond.get("type") == ConditionType.READY:
            return str(cond.get("reason"))
    return None


def is_true(status: Mapping[str, Any], type_: ConditionType) -> bool:
    """Whether a status's condition ``type_`` is True."""
    return any(
        c.get("type") == type_ and c.get("status") == ConditionStatus.TRUE
        for c in status.get("conditions") or []
    )


def timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
