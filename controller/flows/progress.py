"""``status.progress``: how far a long phase got, for ``kubectl get -o wide``.

Backups, Restores and Migrations spend minutes in BackingUp, Restoring and Applying
on a large database; their phase alone does not say whether anything moves. The
commands report each table (:class:`~controller.engine.progress.Progress`); this
writes it into the object's status as ``{phase, tables: "3/17", rows, bytes,
updated}``. A status patch per table would load the API server on a database of a
thousand small tables, so patches are throttled (at most one per ``interval``), and
the last state rides on the flow's final status patch (:func:`with_progress`), so the
recorded progress is exact once the object is finished however the throttle fell.
Progress is best-effort: a patch the API server refuses never fails the work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from typing import Any

from controller.errors import FerryError
from controller.flows.outcome import Outcome
from controller.flows.status import timestamp
from controller.k8s.client import Cluster

INTERVAL = 2.0  # seconds between two progress patches of one object


def wall_clock() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class StatusProgress:
    """A :class:`~controller.engine.progress.Progress` writing one object's status."""

    def __init__(
        self,
        cluster: Cluster,
        kind: str,
        namespace: str,
        name: str,
        *,
        clock: Callable[[], dt.datetime] = wall_clock,
        interval: float = INTERVAL,
    ) -> None:
        self.cluster, self.kind, self.namespace, self.name = cluster, kind, namespace, name
        self.clock, self.interval = clock, interval
        self.phase: str | None = None
        self.total = self.finished = 0
        self.rows: int | None = None
        self.size: int | None = None
        self.updated: dt.datetime | None = None
        self.patched: dt.datetime | None = None

    def start(self, phase: str, total_tables: int) -> None:
        self.phase, self.total, self.finished = phase, total_tables, 0
        self.rows = self.size = None
        self.changed()

    def table(self, name: str, rows: int | None = None, size: int | None = None) -> None:
        self.finished = min(self.finished + 1, self.total)
        if rows is not None:
            self.rows = (self.rows or 0) + rows
        if size is not None:
            self.size = (self.size or 0) + size
        self.changed()

    def done(self) -> None:
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
        self.updated = self.clock()
        last = self.patched
        if last is not None and (self.updated - last).total_seconds() < self.interval:
            return
        self.patched = self.updated
        # Progress is a courtesy: the work goes on, and the final status patch carries it.
        with suppress(FerryError):
            self.cluster.patch_status(
                self.kind, self.namespace, self.name, {"progress": self.status()}
            )


def with_progress(outcome: Outcome, progress: StatusProgress) -> Outcome:
    """The outcome with the last progress in its status patch (when it has one)."""
    state = progress.status()
    if state is None or not outcome.status:
        return outcome
    return replace(outcome, status={**outcome.status, "progress": state})
