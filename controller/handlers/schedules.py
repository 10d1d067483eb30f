"""BackupSchedule handlers: a timer that asks the schedule whether a run is due.

The timer's interval only bounds how late a run starts; the cron expression, its time
zone and ``status.lastScheduleTime`` decide when runs happen.
"""

from __future__ import annotations

import os
from typing import Any

import kopf

from controller.handlers.common import cluster, now, write
from controller.k8s.client import GROUP, VERSION
from controller.reconcile.schedule_flow import reconcile_schedule

CHECK_SECONDS = float(os.environ.get("FERRY_SCHEDULE_CHECK_SECONDS", "5"))


@kopf.timer(GROUP, VERSION, "backupschedules", interval=CHECK_SECONDS)
def schedule_tick(body: Any, **_: Any) -> None:
    write("BackupSchedule", body, reconcile_schedule(dict(body), cluster(), now=now()))
