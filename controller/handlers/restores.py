"""Restore handlers: drive one Restore from Pending to a final phase; a Restore deleted
while it holds its target's application at zero resumes it first."""

from __future__ import annotations

import functools
from typing import Any

import kopf

from controller.api.resources import GROUP, VERSION
from controller.api.restore import RestorePhase
from controller.flows.application import keeps_finalizer, release
from controller.flows.restore import reconcile_restore
from controller.handlers.common import reconciled, write
from controller.handlers.migrations import workloads


@kopf.on.create(GROUP, VERSION, "restores")
@kopf.on.resume(GROUP, VERSION, "restores")
def restore_created(body: Any, retry: int, **_: Any) -> None:
    flow = functools.partial(reconcile_restore, workloads=workloads())
    write("Restore", body, reconciled("Restore", body, retry, flow))


def _keeps_finalizer(body: Any, **_: Any) -> bool:
    return keeps_finalizer(body, RestorePhase.is_finished)


@kopf.on.delete(GROUP, VERSION, "restores", when=_keeps_finalizer)
def restore_deleted(body: Any, logger: Any, **_: Any) -> None:
    """As for a Migration: resume the workload a deleted Restore held at zero."""
    done = release(dict(body), workloads())
    if done:
        logger.info(f"resumed {done}: the Restore was deleted while it was quiesced")
