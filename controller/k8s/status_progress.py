"""``status.progress`` written as work runs: throttled, best-effort.

The operator writes it through its :class:`~controller.k8s.client.Cluster` for work it
runs in process (``controller.flows.progress`` says what the shape means); a Job's pod
writes the same shape with its own token (``controller.k8s.progress_token``), so both
paths report alike. At most one patch per ``interval``; a refused patch never fails
the work. With ``trailing`` (the pod's) a change the throttle held back is written
once the interval has passed, even when no other change follows (work waiting on a
lock mid-run shows where it waits), and :meth:`StatusProgress.close` writes the last
state.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Protocol

from controller.errors import FerryError


def timestamp(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


INTERVAL = 2.0  # seconds between two progress patches of one object


def wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StatusWriter(Protocol):
    """Where progress goes: the operator's :class:`~controller.k8s.client.Cluster`, or a
    Job pod's own token (:class:`~controller.k8s.progress_token.TokenStatusWriter`)."""

    def patch_status(
        self, kind: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None: ...


class StatusProgress:
    """A :class:`~controller.engine.progress.Progress` writing one object's status."""

    def __init__(
        self,
        cluster: StatusWriter,
        kind: str,
        namespace: str,
        name: str,
        *,
        clock: Callable[[], dt.datetime] = wall_clock,
        interval: float = INTERVAL,
        trailing: bool = False,
    ) -> None:
        self.cluster, self.kind, self.namespace, self.name = cluster, kind, namespace, name
        self.clock, self.interval, self.trailing = clock, interval, trailing
        self.lock = threading.RLock()  # the trailing write's thread reads the state
        self.timer: threading.Timer | None = None
        self.phase: str | None = None
        self.total = self.finished = 0
        self.rows: int | None = None
        self.size: int | None = None
        self.updated: dt.datetime | None = None
        self.patched: dt.datetime | None = None

    def start(self, phase: str, total_tables: int) -> None:
        with self.lock:
            self.phase, self.total, self.finished = phase, total_tables, 0
            self.rows = self.size = None
            self.changed()

    def table(self, name: str, rows: int | None = None, size: int | None = None) -> None:
        with self.lock:
            self.finished = min(self.finished + 1, self.total)
            if rows is not None:
                self.rows = (self.rows or 0) + rows
            if size is not None:
                self.size = (self.size or 0) + size
            self.changed()

    def done(self) -> None:
        with self.lock:
            self.finished = self.total
            self.changed()

    def status(self) -> dict[str, Any] | None:
        """``status.progress`` as it stands, or None before any phase started."""
        if self.phase is None or self.updated is None:
            return None
        out: dict[str, Any] = {
            "phase": self.phase,
            "tables": f"{self.finished}/{self.total}",
            "updated": timestamp(self.updated),
        }
        if self.rows is not None:
            out["rows"] = self.rows
        if self.size is not None:
            out["bytes"] = self.size
        return out

    def changed(self) -> None:
        with self.lock:
            self.updated = self.clock()
            last = self.patched
            waited = (self.updated - last).total_seconds() if last is not None else None
            if waited is not None and waited < self.interval:
                if self.trailing and self.timer is None:
                    self.timer = threading.Timer(self.interval - waited, self.flush)
                    self.timer.daemon = True
                    self.timer.start()
                return
            self.write()

    def write(self) -> None:
        self.patched = self.clock()
        # Progress is a courtesy: the work goes on, and the final status patch carries it.
        with suppress(FerryError):
            self.cluster.patch_status(
                self.kind, self.namespace, self.name, {"progress": self.status()}
            )

    def flush(self) -> None:
        """Write what the throttle held back (the trailing timer's call)."""
        with self.lock:
            self.timer = None
            self.write()

    def close(self) -> None:
        """Write the last state if the throttle still holds it back; no timer stays."""
        with self.lock:
            timer, self.timer = self.timer, None
            if timer is not None:
                timer.cancel()
                self.write()
