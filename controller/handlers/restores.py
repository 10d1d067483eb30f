"""Restore handlers: drive one Restore from Pending to a final phase; a Restore deleted
while it holds its target's application at zero stops its Job, then resumes it."""

from __future__ import annotations

import functools
from typing import Any

import kopf

from controller.api.resources import GROUP, VERSION
from controller.api.restore import RestorePhase
from controller.errors import FerryError
from controller.flows.application import keeps_finalizer, release
from controller.flows.restore import reconcile_restore
from controller.flows.restore_job import stop_job
from controller.handlers.common import jobs, reconciled, write
from controller.handlers.migrations import workloads


@kopf.on.create(GROUP, VERSION, "restores")
@kopf.on.resume(GROUP, VERSION, "restores")
def restore_created(body: Any, retry: int, **_: Any) -> None:
    flow = functools.partial(reconcile_restore, workloads=workloads(), jobs=jobs())
    write("Restore", body, reconciled("Restore", body, retry, flow))


def _keeps_finalizer(body: Any, **_: Any) -> bool:
    return keeps_finalizer(body, RestorePhase.is_finished)


@kopf.on.delete(GROUP, VERSION, "restores", when=_keeps_finalizer)
def restore_deleted(body: Any, logger: Any, **_: Any) -> None:
    """As for a Migration: resume the workload a deleted Restore held at zero, once the
    Job that may still be writing (spec.execution.mode Job) has stopped."""
    try:
        running = stop_job(dict(body), jobs())
        if running:
            raise kopf.TemporaryError(running, delay=3)
        done = release(dict(body), workloads())
    except FerryError as err:
        raise kopf.TemporaryError(err.message, delay=5) from err
    if done:
        logger.info(f"resumed {done}: the Restore was deleted while it was quiesced")
