"""Kubernetes-shaped status conditions, built and merged without I/O.

Every kind reports ``Ready``, ``Reconciling`` and ``Stalled`` plus its own domain
conditions in the shape of ``metav1.Condition`` so that ``kubectl wait
--for=condition=Ready`` and generic tooling (Argo CD health, kstatus) understand
them. ``lastTransitionTime`` must only move when ``status`` changes, otherwise
"how long has this been failing" is lost on every reconcile; :func:`merge` keeps it.
Time is a parameter so the functions stay pure and testable.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from controller.api.reasons import ConditionType
from controller.errors import InvalidInput

# The same patterns as metav1.Condition (and as the CRDs' status schema).
TYPE_PATTERN = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)
REASON_PATTERN = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
MESSAGE_MAX = 32768


class ConditionStatus(enum.StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


# Condition types shared by every kind; kinds add their own (see ``ConditionType``).
READY = ConditionType.READY
RECONCILING = ConditionType.RECONCILING
STALLED = ConditionType.STALLED


@dataclass(frozen=True)
class Condition:
    type: str
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: str  # RFC 3339, UTC, seconds precision
    observed_generation: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "status": self.status.value,
            "reason": self.reason,
            "message": self.message,
            "lastTransitionTime": self.last_transition_time,
        }
        if self.observed_generation is not None:
            out["observedGeneration"] = self.observed_generation
        return out


def format_time(now: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``, as the API server writes ``metav1.Time``."""
    if now.tzinfo is None:
        raise ValueError("a timezone-aware datetime is required")
    return now.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def make_condition(
    type_: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str,
    *,
    now: datetime,
    observed_generation: int | None = None,
) -> Condition:
    """Build a condition, checking ``type`` and the CamelCase ``reason``."""
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    if not TYPE_PATTERN.match(type_) or len(type_) > 316:
        raise ValueError(f"invalid condition type {type_!r}")
    if not REASON_PATTERN.match(reason) or len(reason) > 1024:
        raise ValueError(f"invalid condition reason {reason!r} (CamelCase expected)")
    if len(message) > MESSAGE_MAX:
        message = message[: MESSAGE_MAX - 1] + "…"
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=format_time(now),
        observed_generation=observed_generation,
    )


def parse_condition(data: Mapping[str, Any]) -> Condition:
    """Read one condition from a status (as written by :meth:`Condition.to_dict`)."""
    try:
        status = ConditionStatus(str(data["status"]))
        generation = data.get("observedGeneration")
        return Condition(
            type=str(data["type"]),
            status=status,
            reason=str(data.get("reason") or ""),
            message=str(data.get("message") or ""),
            last_transition_time=str(data.get("lastTransitionTime") or ""),
            observed_generation=generation if isinstance(generation, int) else None,
        )
    except (KeyError, ValueError) as err:
        raise InvalidInput(f"status.conditions: malformed condition {dict(data)!r}") from err


def parse_conditions(data: Iterable[Mapping[str, Any]] | None) -> list[Condition]:
    return [parse_condition(item) for item in data or ()]


def merge(existing: Iterable[Condition], new: Condition) -> list[Condition]:
    """Replace the condition of ``new.type``, keeping order and, if ``status`` is
    unchanged, the old ``lastTransitionTime``; a new type is appended."""
    out: list[Condition] = []
    found = False
    for cond in existing:
        if cond.type != new.type:
            out.append(cond)
            continue
        found = True
        if cond.status == new.status and cond.last_transition_time:
            out.append(replace(new, last_transition_time=cond.last_transition_time))
        else:
            out.append(new)
    if not found:
        out.append(new)
    return out


def merge_dicts(
    existing: Iterable[Mapping[str, Any]] | None, new: Condition
) -> list[dict[str, Any]]:
    """:func:`merge` on the plain dictionaries of a status, for a status patch."""
    return [c.to_dict() for c in merge(parse_conditions(existing), new)]


def find(conditions: Iterable[Condition], type_: str) -> Condition | None:
    return next((c for c in conditions if c.type == type_), None)


def is_true(conditions: Iterable[Condition], type_: str) -> bool:
    cond = find(conditions, type_)
    return cond is not None and cond.status is ConditionStatus.TRUE
