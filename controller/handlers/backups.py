"""Backup handlers: take the backup once; on deletion, apply the deletion policy."""

from __future__ import annotations

from functools import partial
from typing import Any

import kopf

from controller.api.backup import BackupPhase
from controller.api.resources import GROUP, VERSION
from controller.flows.backup import finalize_backup, reconcile_backup
from controller.handlers import metrics
from controller.handlers.common import cluster, jobs, now, reconciled, write


@kopf.on.create(GROUP, VERSION, "backups")
@kopf.on.resume(GROUP, VERSION, "backups")
def backup_created(body: Any, retry: int, **_: Any) -> None:
    outcome = reconciled("Backup", body, retry, partial(reconcile_backup, jobs=jobs()))
    phase = outcome.status.get("phase")
    if BackupPhase.is_finished(phase):
        metrics.BACKUPS.labels(phase).inc()
        if phase == BackupPhase.COMPLETED:
            metrics.LAST_SUCCESS.labels("Backup").set_to_current_time()
    write("Backup", body, outcome)


@kopf.on.delete(GROUP, VERSION, "backups")
def backup_deleted(body: Any, retry: int, **_: Any) -> None:
    write("Backup", body, finalize_backup(dict(body), cluster(), now=now(), retry=retry))
