"""A Backup in Job mode: start (or adopt) its Job, relay the Job's state, read its result.

The Backup ends exactly as the in-process path would end it: Completed with the stored
backup's manifest (read back from the store, as the CLI wrote it; also when the Job
failed after its pod had published the backup and written its result), Failed with the same
reasons (``InvalidSelection`` and the error's own reasons for invalid input,
``BackupFailed`` for a failure, the Job's deadline and a pod that died more often than
``backoffLimit`` allows included), and waiting (``Unreachable``) when the container said
the database or store did not answer: the Job is deleted and a new one starts after the
same backoff the in-process path waits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from controller.api.backup import BackupPhase, BackupSpec
from controller.api.execution import ExecutionSpec
from controller.api.reasons import BackupReason, CommonReason
from controller.backups.manifest import Manifest
from controller.commands.environments import ResolvedEnvironment
from controller.errors import FerryError, InvalidInput, TemporaryError
from controller.flows.jobs import (
    JobRequest,
    backup_args,
    database_env,
    job_manifest,
    job_name,
    queued_for_slot,
    store_mount,
)
from controller.flows.outcome import Outcome, backoff
from controller.flows.status import StatusPatch, timestamp
from controller.k8s.client import Cluster
from controller.k8s.jobs import JobPhase, Jobs, JobSettings, JobState, job_state

POLL_SECONDS = 5.0  # how often a running Job is looked at
QUEUE_SECONDS = 10.0  # how often a queued Backup looks for a free slot
EXIT_INVALID, EXIT_TEMPORARY = 2, 75  # the CLI's exit codes (controller.cli.main)


class BackupFlow(Protocol):
    """What of the Backup flow (``flows.backup``) this module uses."""

    body: dict[str, Any]
    cluster: Cluster
    namespace: str
    name: str
    now: dt.datetime
    status: dict[str, Any]
    patch: StatusPatch
    jobs: Jobs | None
    job_settings: JobSettings

    def fail(self, reason: str, message: str) -> Outcome: ...

    def wait(
        self, reason: str, message: str, delay: float, phase: str | None = None
    ) -> Outcome: ...

    def completed(self, manifest: Manifest, location: str, **fields: Any) -> Outcome: ...


@dataclass(frozen=True)
class BackupJob:
    spec: BackupSpec
    env: ResolvedEnvironment
    execution: ExecutionSpec


def run_backup_job(flow: BackupFlow, work: BackupJob, retry: int) -> Outcome:
    if flow.jobs is None or flow.job_settings.image is None:
        return flow.fail(
            BackupReason.JOB_UNAVAILABLE,
            "spec.execution.mode is Job, but this operator runs no Jobs: it has no job "
            "image (FERRY_JOB_IMAGE, which the chart sets)",
        )
    uid = str((flow.body.get("metadata") or {}).get("uid"))
    name = job_name("Backup", flow.name, uid)
    try:
        job = flow.jobs.get_job(flow.namespace, name)
        if job is None:
            queued = _queued(flow, flow.jobs)
            if queued:
                return flow.wait(BackupReason.JOB_QUEUED, queued, QUEUE_SECONDS)
            job = flow.jobs.create_job(flow.namespace, _manifest(flow, work))
        state = job_state(job, flow.jobs.job_pods(flow.namespace, name))
    except InvalidInput as err:
        return flow.fail(err.reason, err.message)
    except TemporaryError as err:
        return flow.wait(CommonReason.UNREACHABLE, err.message, backoff(retry, err.delay))
    if state.phase == JobPhase.SUCCEEDED:
        return _succeeded(flow, work, state, retry)
    if state.phase == JobPhase.FAILED:
        return _failed(flow, work, state, retry)
    return _running(flow, work, state)


def _manifest(flow: BackupFlow, work: BackupJob) -> dict[str, Any]:
    """The Job for this Backup; InvalidInput (``JobUnavailable``) when Job mode cannot
    carry the Environment's inputs without putting a secret into the Job's spec."""
    env = work.env
    if env.spec.files is not None:
        raise InvalidInput(
            "spec.files: a Job does not back up the application's files yet; "
            "back this Environment up in process (spec.execution.mode: InProcess)",
            reason=BackupReason.JOB_UNAVAILABLE,
        )
    store = env.spec.backup_store
    s3 = store.s3 if store is not None else None
    keys: set[str] = set()
    if s3 is not None and s3.credentials_secret:
        keys = set(flow.cluster.secret_data(flow.namespace, s3.credentials_secret))
    mount = store_mount(env.spec, work.execution, keys)
    request = JobRequest(
        kind="Backup",
        body=flow.body,
        args=backup_args(work.spec, env.name, mount.argument),
        env=database_env(env.spec),
        store=mount,
        execution=work.execution,
    )
    return job_manifest(request, flow.job_settings)


def _queued(flow: BackupFlow, jobs: Jobs) -> str | None:
    """Why this Backup waits for a Job slot (``flows.jobs.queued_for_slot``), or None."""
    return queued_for_slot(flow.cluster, jobs, flow.job_settings, flow.body)


def _running(flow: BackupFlow, work: BackupJob, state: JobState) -> Outcome:
    message = (
        f"backing up {work.env.name} into {_store_label(work)} in Job {state.name} "
        f"({state.phase.lower()}, pod {max(state.attempts, 1)} of "
        f"{work.execution.backoff_limit + 1})"
    )
    flow.patch.progressing(BackupReason.JOB_RUNNING, message).set(
        phase=BackupPhase.RUNNING, message=message, job=state.status
    )
    return Outcome(flow.patch.build(), (), POLL_SECONDS)


def _store_label(work: BackupJob) -> str:
    return work.env.store.label if work.env.store is not None else "its store"


def _succeeded(flow: BackupFlow, work: BackupJob, state: JobState, retry: int) -> Outcome:
    result = state.result or {}
    backup_id = result.get("id")
    job = state.status
    if result.get("outcome") != "completed" or not isinstance(backup_id, str):
        return _fail_with_job(
            flow, CommonReason.BACKUP_FAILED, f"Job {state.name} succeeded without a result", job
        )
    store = work.env.store
    assert store is not None
    try:
        manifest = store.manifest(backup_id, work.env.name)
    except TemporaryError as err:
        return flow.wait(CommonReason.UNREACHABLE, err.message, backoff(retry, err.delay))
    except FerryError as err:
        message = f"Job {state.name} reported backup {backup_id}, but the store: {err.message}"
        return _fail_with_job(flow, CommonReason.BACKUP_FAILED, message, job)
    # The Job's last progress, as the in-process path leaves it: every table done.
    progress = {
        "phase": BackupReason.BACKING_UP.value,
        "tables": f"{len(manifest.members)}/{len(manifest.members)}",
        "rows": manifest.rows,
        "bytes": int(result.get("bytes") or manifest.bytes),
        "updated": timestamp(flow.now),
    }
    return flow.completed(manifest, store.location(manifest), job=job, progress=progress)


def _failed(flow: BackupFlow, work: BackupJob, state: JobState, retry: int) -> Outcome:
    result = state.result or {}
    if result.get("outcome") == "completed":
        # The pod was stopped (or died) after it published the backup and wrote its
        # result: the backup exists, and the store has the last word on it.
        return _succeeded(flow, work, state, retry)
    code = result.get("exitCode") if result.get("outcome") == "failed" else None
    message = str(result.get("message") or "")
    job = state.status
    if code == EXIT_TEMPORARY:
        # In process this waits and tries again: so does Job mode, with a new Job.
        if not state.deleting and flow.jobs is not None:
            try:
                flow.jobs.delete_job(flow.namespace, state.name)
            except TemporaryError as err:
                message = err.message
        flow.patch.set(job=job)
        return flow.wait(CommonReason.UNREACHABLE, message, backoff(retry))
    if code == EXIT_INVALID:
        reason = str(result.get("reason") or "")
        own = reason and reason not in (InvalidInput.reason, "CheckFailed")
        return _fail_with_job(flow, reason if own else BackupReason.INVALID_SELECTION, message, job)
    why = f"Job {state.name} failed: {state.why}"
    return _fail_with_job(
        flow, CommonReason.BACKUP_FAILED, f"{message} ({why})" if message else why, job
    )


def _fail_with_job(flow: BackupFlow, reason: str, message: str, job: dict[str, Any]) -> Outcome:
    outcome = flow.fail(reason, message)
    outcome.status["job"] = job
    return outcome
