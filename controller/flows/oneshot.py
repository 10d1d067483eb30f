"""What every one-shot kind's reconciliation shares (Backup, Restore).

A one-shot keeps its ``startTime`` across retries, waits in ``Pending`` with the reason
in its conditions (one event per new reason, not per retry), and shows the phase it is
in while it works.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.api.phases import Phase
from controller.api.reasons import CommonReason, EventType
from controller.flows.outcome import Event, Outcome
from controller.flows.progress import StatusProgress, with_progress
from controller.flows.status import StatusPatch, ready_reason, timestamp
from controller.k8s.client import Cluster


class OneShot:
    kind = ""
    phases: type[Phase]  # the kind's phase enum: which phases are final
    pending = ""  # the kind's Pending phase: where a one-shot waits

    @classmethod
    def reconcile(
        cls, body: dict[str, Any], cluster: Cluster, now: dt.datetime, retry: int
    ) -> Outcome:
        """Run a new or unfinished object; a finished one is left alone, for good."""
        if cls.phases.is_finished((body.get("status") or {}).get("phase")):
            return Outcome({})
        flow = cls(body, cluster, now)
        return with_progress(flow.run(retry), flow.progress)

    def run(self, retry: int) -> Outcome:
        raise NotImplementedError

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

    def wait(self, reason: str, message: str, delay: float, phase: str | None = None) -> Outcome:
        self.patch.progressing(reason, message).set(phase=phase or self.pending, message=message)
        events: tuple[Event, ...] = ()
        if ready_reason(self.status) != reason:
            unreachable = reason == CommonReason.UNREACHABLE
            events = (
                Event(EventType.WARNING if unreachable else EventType.NORMAL, reason, message),
            )
        return Outcome(self.patch.build(), events, delay)

    def show_phase(self, phase: str, reason: str, message: str, **fields: Any) -> None:
        """Write the phase now, before the long work starts."""
        running = StatusPatch(self.body, self.now).progressing(reason, message)
        running.set(phase=phase, startTime=self.start, message=message, **fields)
        self.cluster.patch_status(self.kind, self.namespace, self.name, running.build())
