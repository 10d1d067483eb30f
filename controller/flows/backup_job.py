"""A Backup in Job mode: start (or adopt) its Job, relay the Job's state, ask the store.

The operator chooses the backup's ID before the Job exists (``status.job.backupId``)
and the Job's pods write that ID, one pod at a time. When the Job ends, however it ends
(succeeded, failed, deleted; its pods' termination messages there or gone), the store
has the last word: a complete backup of that ID ends the Backup Completed with its
manifest, as the in-process path would. Without one the Backup ends as in process:
Failed with the same reasons (``InvalidSelection`` and the error's own reasons for
invalid input, ``BackupFailed`` for a failure, the Job's deadline and a pod that died
more often than ``backoffLimit`` allows included), or waiting (``Unreachable``) when
the container said the database or store did not answer: the Job is deleted and a new
one, with the same ID, starts after the same backoff the in-process path waits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

from controller.api.backup import BackupPhase, BackupSpec
from controller.api.execution import ExecutionSpec
from controller.api.ids import validate_backup_id
from controller.api.reasons import BackupReason, CommonReason
from controller.backups.manifest import Manifest, new_backup_id
from controller.backups.store import BackupStore
from controller.commands.environments import ResolvedEnvironment
from controller.errors import BackupNotFound, FerryError, InvalidInput, TemporaryError
from controller.flows.jobs import (
    JobRequest,
    backup_args,
    database_env,
    job_manifest,
    job_name,
    job_text,
    store_mount,
    take_slot,
    with_files,
)
from controller.flows.outcome import Outcome, backoff
from controller.flows.status import StatusPatch, timestamp
from controller.k8s.client import Cluster
from controller.k8s.jobs import (
    JobPhase,
    Jobs,
    JobSettings,
    JobState,
    job_state,
    pod_stopped,
)

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
    backup_id = chosen_id(flow.body, flow.now)
    try:
        job = flow.jobs.get_job(flow.namespace, name)
        if job is None and (flow.status.get("job") or {}).get("name") == name:
            return _gone(flow, work, name, backup_id, retry)
        if job is None:
            if (flow.status.get("job") or {}).get("backupId") != backup_id:
                # Recorded before the Job exists: the ID the store is asked for later.
                job_status = {"job": {"backupId": backup_id}}
                flow.cluster.patch_status("Backup", flow.namespace, flow.name, job_status)
            # Counted and taken by one worker at a time; nothing to quiesce: not suspended.
            manifest = _manifest(flow, work, backup_id)
            job, queued = take_slot(flow.cluster, flow.jobs, flow.job_settings, flow.body, manifest)
            if job is None:
                return flow.wait(BackupReason.JOB_QUEUED, str(queued), QUEUE_SECONDS)
        state = job_state(job, flow.jobs.job_pods(flow.namespace, name))
    except InvalidInput as err:
        return flow.fail(err.reason, err.message)
    except TemporaryError as err:
        return flow.wait(CommonReason.UNREACHABLE, err.message, backoff(retry, err.delay))
    if state.phase in (JobPhase.SUCCEEDED, JobPhase.FAILED):
        return _ended(flow, work, state, backup_id, retry)
    return _running(flow, work, state, backup_id)


def chosen_id(body: dict[str, Any], now: dt.datetime) -> str:
    """The backup's ID, chosen by the operator before its Job exists: the one recorded
    in ``status.job.backupId``, else one derived from the Backup's creation time and
    UID (so an operator that lost even the record chooses the same one again)."""
    recorded = ((body.get("status") or {}).get("job") or {}).get("backupId")
    if isinstance(recorded, str):
        try:
            return validate_backup_id(recorded) or ""
        except InvalidInput:
            pass  # not the operator's: derive it
    meta = body.get("metadata") or {}
    try:
        created = dt.datetime.fromisoformat(str(meta.get("creationTimestamp")))
    except ValueError:
        created = now
    digest = hashlib.sha256(str(meta.get("uid")).encode()).hexdigest()[:6]
    return new_backup_id(created.astimezone(dt.UTC), suffix=digest)


def _manifest(flow: BackupFlow, work: BackupJob, backup_id: str) -> dict[str, Any]:
    """The Job for this Backup; InvalidInput (``JobUnavailable``) when Job mode cannot
    carry the Environment's inputs without putting a secret into the Job's spec."""
    env = work.env
    store = env.spec.backup_store
    s3 = store.s3 if store is not None else None
    keys: set[str] = set()
    if s3 is not None and s3.credentials_secret:
        keys = set(flow.cluster.secret_data(flow.namespace, s3.credentials_secret))
    mount = store_mount(env.spec, work.execution, keys)
    files: list[str] = []
    if env.spec.files is not None:  # copied from the claim, read-only, as in process
        subject = f"Environment {env.name}"
        mount, files = with_files(mount, env.spec.files, work.execution, subject, True)
    request = JobRequest(
        kind="Backup",
        body=flow.body,
        args=[*backup_args(work.spec, env.name, mount.argument, backup_id), *files],
        env=database_env(env.spec),
        store=mount,
        execution=work.execution,
    )
    return job_manifest(request, flow.job_settings)


def _running(flow: BackupFlow, work: BackupJob, state: JobState, backup_id: str) -> Outcome:
    message = (
        f"backing up {work.env.name} into {_store_label(work)} as {backup_id} in "
        f"{job_text(state, work.execution)}"
    )
    flow.patch.progressing(BackupReason.JOB_RUNNING, message).set(
        phase=BackupPhase.RUNNING, message=message, job=_job(state.status, backup_id)
    )
    return Outcome(flow.patch.build(), (), POLL_SECONDS)


def _job(status: dict[str, Any], backup_id: str) -> dict[str, Any]:
    return {**status, "backupId": backup_id}


def _store_label(work: BackupJob) -> str:
    return work.env.store.label if work.env.store is not None else "its store"


def _gone(flow: BackupFlow, work: BackupJob, name: str, backup_id: str, retry: int) -> Outcome:
    """The Job this Backup started is gone (deleted by someone, or with its pods by the
    garbage collector): once no pod of it runs any more, the store says how it ended."""
    assert flow.jobs is not None
    stopping = [p for p in flow.jobs.job_pods(flow.namespace, name) if not pod_stopped(p)]
    if stopping:
        pod = str((stopping[0].get("metadata") or {}).get("name"))
        message = f"Job {name} was deleted; waiting for its pod {pod} to stop"
        status = {"name": name, "phase": JobPhase.RUNNING, "attempts": len(stopping)}
        flow.patch.progressing(BackupReason.JOB_RUNNING, message).set(
            phase=BackupPhase.RUNNING, message=message, job=_job(status, backup_id)
        )
        return Outcome(flow.patch.build(), (), POLL_SECONDS)
    attempts = int((flow.status.get("job") or {}).get("attempts") or 1)
    state = JobState(name, JobPhase.FAILED, attempts, None, "it was deleted before it ended")
    return _ended(flow, work, state, backup_id, retry)


def _ended(
    flow: BackupFlow, work: BackupJob, state: JobState, backup_id: str, retry: int
) -> Outcome:
    """The Job ended (succeeded, failed, or deleted): the store has the last word. A
    complete backup of the chosen ID there is the Backup's, whatever the pods said."""
    store = work.env.store
    assert store is not None
    job = _job(state.status, backup_id)
    # A Job an older operator started (adopted after an upgrade) wrote an ID of its own.
    reported = (state.result or {}).get("id")
    older = reported if isinstance(reported, str) and reported != backup_id else None
    try:
        manifest = _stored(store, work.env.name, backup_id)
        if manifest is None and older is not None:
            manifest = _stored(store, work.env.name, older)
    except TemporaryError as err:
        return flow.wait(CommonReason.UNREACHABLE, err.message, backoff(retry, err.delay))
    except FerryError as err:
        message = f"Job {state.name} ended; the store holds backup {backup_id}, but {err.message}"
        return _fail_with_job(flow, CommonReason.BACKUP_FAILED, message, job)
    if manifest is not None:
        # The Job's last progress, as the in-process path leaves it: every table done.
        progress = {
            "phase": BackupReason.BACKING_UP.value,
            "tables": f"{len(manifest.members)}/{len(manifest.members)}",
            "rows": manifest.rows,
            "bytes": manifest.bytes,
            "updated": timestamp(flow.now),
        }
        return flow.completed(manifest, store.location(manifest), job=job, progress=progress)
    absent = f"the store holds no backup {backup_id}"
    if state.phase == JobPhase.SUCCEEDED:
        message = f"Job {state.name} succeeded, but {absent}"
        return _fail_with_job(flow, CommonReason.BACKUP_FAILED, message, job)
    return _failed(flow, state, job, absent, retry)


def _stored(store: BackupStore, environment: str, backup_id: str) -> Manifest | None:
    try:
        return store.manifest(backup_id, environment)
    except BackupNotFound:
        return None


def _failed(
    flow: BackupFlow, state: JobState, job: dict[str, Any], absent: str, retry: int
) -> Outcome:
    result = state.result or {}
    code = result.get("exitCode") if result.get("outcome") == "failed" else None
    message = str(result.get("message") or "")
    if code == EXIT_TEMPORARY:
        # In process this waits and tries again: so does Job mode, with a new Job (the
        # same backup ID: this one published nothing). ``job.name`` goes first, so the
        # Job's absence then reads as "to be started again", not as "deleted".
        retried = {**job, "name": None, "phase": None, "attempts": None}
        try:
            flow.cluster.patch_status("Backup", flow.namespace, flow.name, {"job": retried})
            if not state.deleting and flow.jobs is not None:
                flow.jobs.delete_job(flow.namespace, state.name)
        except TemporaryError as err:
            message = err.message
        flow.patch.set(job=retried)
        return flow.wait(CommonReason.UNREACHABLE, message, backoff(retry))
    if code == EXIT_INVALID:
        reason = str(result.get("reason") or "")
        own = reason and reason not in (InvalidInput.reason, "CheckFailed")
        return _fail_with_job(flow, reason if own else BackupReason.INVALID_SELECTION, message, job)
    if result.get("outcome") == "completed":
        message = f"its pod reported backup {result.get('id')} published"
    why = f"Job {state.name} failed: {state.why}; {absent}"
    return _fail_with_job(
        flow, CommonReason.BACKUP_FAILED, f"{message} ({why})" if message else why, job
    )


def _fail_with_job(flow: BackupFlow, reason: str, message: str, job: dict[str, Any]) -> Outcome:
    outcome = flow.fail(reason, message)
    outcome.status["job"] = job
    return outcome
