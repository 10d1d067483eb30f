"""BackupSchedule handlers: a timer that asks the schedule whether a run is due.

The timer's interval only bounds how late a run starts; the cron expression, its time
zone and ``status.lastScheduleTime`` decide when runs happen.
"""

from __future__ import annotations

import os
import time
from typing import Any

import kopf

from controller.api.resources import GROUP, VERSION
from controller.commands.drill import PASSED
from controller.flows.schedule import reconcile_schedule
from controller.flows.unexpected import guarded
from controller.handlers import metrics
from controller.handlers.common import cluster, now, write
from controller.k8s.bootcheck import BootPods, KubeBootPods

CHECK_SECONDS = float(os.environ.get("FERRY_SCHEDULE_CHECK_SECONDS", "5"))
_pods: BootPods | None = None


def pods() -> BootPods:
    """A drill's boot check (``spec.drill.bootCheck``): one client per operator process."""
    global _pods  # noqa: PLW0603
    if _pods is None:
        _pods = KubeBootPods()
    return _pods


@kopf.timer(GROUP, VERSION, "backupschedules", interval=CHECK_SECONDS)
def schedule_tick(body: Any, retry: int = 0, **_: Any) -> None:
    when = now()
    outcome = guarded(
        "BackupSchedule",
        dict(body),
        lambda: reconcile_schedule(dict(body), cluster(), now=when, pods=pods()),
        now=when,
        retry=retry,
    )
    write("BackupSchedule", body, outcome)
    record_drill(body, outcome.status.get("lastDrill"))


def record_drill(body: Any, drill: Any) -> None:
    """The drill metrics, once per drill (a new ``status.lastDrill``)."""
    before = (body.get("status") or {}).get("lastDrill")
    if not isinstance(drill, dict) or drill == before:
        return
    meta = body.get("metadata") or {}
    labels = (str(meta.get("namespace")), str(meta.get("name")))
    metrics.DRILL_SECONDS.labels(*labels).set(float(drill.get("durationSeconds") or 0))
    if drill.get("outcome") == PASSED:
        metrics.DRILL_LAST_SUCCESS.labels(*labels).set(time.time())
    else:
        metrics.DRILL_FAILURES.labels(*labels).inc()
