"""Migration handlers: drive one Migration from Pending to a final phase; a Migration
deleted while it holds its target's application at zero resumes it first."""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf

from controller.api.migration import MigrationPhase
from controller.api.resources import GROUP, VERSION
from controller.errors import FerryError
from controller.flows.application import keeps_finalizer, release
from controller.flows.migration import ledger_id, reconcile_migration
from controller.flows.migration_job import stop_migration_job
from controller.flows.unexpected import guarded
from controller.handlers import failpoints, metrics
from controller.handlers.common import cluster, jobs, now, write
from controller.k8s.bootcheck import KubeBootPods
from controller.k8s.workloads import Workloads

FAULT = failpoints.from_environment()
_workloads: Workloads | None = None


def workloads() -> Workloads:
    global _workloads  # noqa: PLW0603 - one client per operator process
    if _workloads is None:
        _workloads = KubeBootPods()  # the workload's scale and health, and boot checks
    return _workloads


@kopf.on.create(GROUP, VERSION, "migrations")
@kopf.on.resume(GROUP, VERSION, "migrations")
@kopf.on.update(GROUP, VERSION, "migrations", field="spec")
def migration_changed(body: Any, retry: int, **_: Any) -> None:
    meta = body.get("metadata", {})
    client = cluster()

    def on_phase(phase: str) -> None:
        client.patch_status("Migration", meta["namespace"], meta["name"], {"phase": phase})

    when = now()
    target = (body.get("spec") or {}).get("target")
    outcome = guarded(
        "Migration",
        dict(body),
        lambda: reconcile_migration(
            dict(body),
            client,
            now=when,
            on_phase=on_phase,
            fault=FAULT,
            workloads=workloads(),
            jobs=jobs(),
        ),
        now=when,
        retry=retry,
        note=f"; whether {target} changed: its ferry_migrations ledger, ID {ledger_id(meta)}",
    )
    phase = outcome.status.get("phase")
    if MigrationPhase.is_finished(phase):
        metrics.MIGRATIONS.labels(phase).inc()
        started = outcome.status.get("startTime")
        if started:
            start = dt.datetime.strptime(started, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
            metrics.MIGRATION_SECONDS.observe((now() - start).total_seconds())
        if phase == MigrationPhase.SUCCEEDED:
            metrics.LAST_SUCCESS.labels("Migration").set_to_current_time()
    write("Migration", body, outcome)


def _keeps_finalizer(body: Any, **_: Any) -> bool:
    return keeps_finalizer(body, MigrationPhase.is_finished)


@kopf.on.delete(GROUP, VERSION, "migrations", when=_keeps_finalizer)
def migration_deleted(body: Any, logger: Any, **_: Any) -> None:
    """Kopf keeps its finalizer on a Migration while it deals with the target's
    application (the flow adds it before scaling, see ``keeps_finalizer``); deleted
    while it holds the application at zero, this resumes the workload first, then
    Kopf lets the object go, once the Job that may still be applying
    (spec.execution.mode Job) has stopped. An API error is retried by Kopf."""
    try:
        running = stop_migration_job(dict(body), jobs())
        if running:
            raise kopf.TemporaryError(running, delay=3)
    except FerryError as err:
        raise kopf.TemporaryError(err.message, delay=5) from err
    done = release(dict(body), workloads())
    if done:
        logger.info(f"resumed {done}: the Migration was deleted while it was quiesced")
