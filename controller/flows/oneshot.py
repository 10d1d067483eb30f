"""What every one-shot kind's reconciliation shares (Backup, Restore).

A one-shot keeps its ``startTime`` across retries, waits in ``Pending`` with the reason
in its conditions (one event per new reason, not per retry), and shows the phase it is
in while it works.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.flows.outcome import Event, Outcome
from controller.flows.progress import StatusProgress
from controller.flows.status import StatusPatch, timestamp
from controller.k8s.client import Cluster


def backoff(retry: int, floor: float = 5.0) -> float:
    return float(min(300.0, max(floor, 5.0 * 2 ** min(retry, 6))))


class OneShot:
    kind = ""

    def __init__(self, body: dict[str, Any], cluster: Cluster, now: dt.datetime) -> None:
        self.body = body
        self.cluster = cluster
        self.now = now
        meta = body.get("metadata") or {}
        self.namespace, self.name = str(meta.get("namespace")), str(meta.get("name"))
        self.status = body.get("status") or {}
        self.start = self.status.get("startTime") or timestamp(now)
        self.patch = StatusPatch(body, now).set(startTime=self.start)
        self.progress = StatusProgress(cluster, self.kind, self.namespace, self.name)

    def ready_reason(self) -> str | None:
        for cond in self.status.get("conditions") or []:
            if cond.get("type") == "Ready":
                return str(cond.get("reason"))
        return None

    def wait(self, reason: str, message: str, delay: float, phase: str = "Pending") -> Outcome:
        self.patch.progressing(reason, message).set(phase=phase, message=message)
        events: tuple[Event, ...] = ()
        if self.ready_reason() != reason:
            kind = "Warning" if reason == "Unreachable" else "Normal"
            events = (Event(kind, reason, message),)
        return Outcome(self.patch.build(), events, delay)

    def show_phase(self, phase: str, reason: str, message: str, **fields: Any) -> None:
        """Write the phase now, before the long work starts."""
        running = StatusPatch(self.body, self.now).progressing(reason, message)
        running.set(phase=phase, startTime=self.start, message=message, **fields)
        self.cluster.patch_status(self.kind, self.namespace, self.name, running.build())
