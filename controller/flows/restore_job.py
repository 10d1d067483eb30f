"""A Restore in Job mode: its write runs as a Kubernetes Job running ``ferry restore``.

The operator does what it does in process around the write: it finds the backup, waits
for its turn on the target, takes a Job slot, quiesces the target's application, and
afterwards records the result, resumes the application and checks its health. The Job's
pod runs the CLI's restore, the same code as in process: it checks the backup, takes
the safety backup and writes the rows in one transaction; its termination message
brings the result back (``cli.result.write_restored``), never its logs.

While the Job runs, the application stays quiesced across reconciles (``Lifecycle.kept``)
and is scaled to zero again if something scaled it up. A pod that dies is replaced by
the Job (``backoffLimit``): a rerun restores the same backup again, which is safe
(docs/concepts.md, "Job mode"). A failed pod's error comes back as the error the CLI
raised, so the Restore ends exactly as the in-process path ends it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Protocol

from controller import errors
from controller.api.execution import ExecutionSpec
from controller.api.reasons import BackupReason
from controller.api.restore import RestorePhase, RestoreSpec
from controller.backups.manifest import Manifest
from controller.commands.backup import restored_tables
from controller.commands.environments import ResolvedEnvironment
from controller.commands.ledger_lookup import ledger_result
from controller.commands.rollback import RollbackResult, check_rollback
from controller.engine.progress import RESTORING
from controller.errors import CheckFailed, FerryError, InvalidInput, TemporaryError
from controller.flows.application import Lifecycle
from controller.flows.backup_job import EXIT_INVALID, EXIT_TEMPORARY, POLL_SECONDS, QUEUE_SECONDS
from controller.flows.jobs import (
    JobRequest,
    database_env,
    job_manifest,
    job_name,
    job_text,
    let_go,
    store_mount,
    suspended,
    take_slot,
    with_files,
)
from controller.flows.outcome import Outcome
from controller.flows.status import StatusPatch, timestamp
from controller.k8s.client import Cluster
from controller.k8s.jobs import JobPhase, Jobs, JobSettings, JobState, is_suspended, job_state
from controller.k8s.workloads import Workloads

ROLLED_BACK = "rolled-back"  # a migration's ledger row once its rollback committed
# The errors a failed pod's result may name (every class of the error tree): rebuilt,
# they end the Restore as they end it in process.
ERRORS: dict[str, type[FerryError]] = {
    name: cls
    for name, cls in vars(errors).items()
    if isinstance(cls, type) and issubclass(cls, FerryError)
}
UNKNOWN = (
    "no pod reported a result, so whether its transaction committed is not known: "
    "compare the target with the backup (ferry diff) or restore it again"
)


class RestoreFlow(Protocol):
    """What of the Restore flow (``flows.restore``) this module uses."""

    body: dict[str, Any]
    cluster: Cluster
    namespace: str
    name: str
    now: dt.datetime
    patch: StatusPatch
    jobs: Jobs | None
    job_settings: JobSettings
    workloads: Workloads | None
    life: Lifecycle | None

    def gate(self, target: str) -> ResolvedEnvironment: ...

    def adopt(self, env: ResolvedEnvironment) -> Lifecycle | None: ...

    def quiesce(self, env: ResolvedEnvironment) -> None: ...

    def restored(self, env: ResolvedEnvironment, manifest: Manifest, done: Restored) -> Outcome: ...

    def rolled_back(
        self, env: ResolvedEnvironment, name: str, done: RollbackResult, note: str = ""
    ) -> Outcome: ...

    def wait(
        self, reason: str, message: str, delay: float, phase: str | None = None
    ) -> Outcome: ...


@dataclass(frozen=True)
class Restored:
    """What a restore wrote, in process or in a Job: the Restore's status says it."""

    tables: list[str]
    dropped: list[str]
    rows: int
    safety_backup: str | None
    undone: list[str]
    files: dict[str, Any] | None  # FilesRestored.to_dict()


@dataclass(frozen=True)
class RollbackOf:
    """A Restore with ``spec.migration``: its Job runs ``ferry rollback`` of that
    Migration (the scoped rollback), not ``ferry restore``."""

    name: str  # the Migration
    migration_id: str  # its ledger ID


@dataclass(frozen=True)
class RestoreJob:
    spec: RestoreSpec
    env: ResolvedEnvironment  # the Environment restored into
    holder: ResolvedEnvironment  # the Environment whose store holds the backup
    manifest: Manifest  # the backup (a rollback's: the pre-migration backup)
    execution: ExecutionSpec
    rollback: RollbackOf | None = None


def run_restore_job(flow: RestoreFlow, work: RestoreJob) -> Outcome:
    """Start, follow or finish the Restore's Job. Errors are raised for the flow to end
    the Restore with, as it ends an in-process one."""
    jobs = flow.jobs
    if jobs is None or flow.job_settings.image is None:
        raise InvalidInput(
            "spec.execution.mode is Job, but this operator runs no Jobs: it has no job "
            "image (FERRY_JOB_IMAGE, which the chart sets)",
            reason=BackupReason.JOB_UNAVAILABLE,
        )
    uid = str((flow.body.get("metadata") or {}).get("uid"))
    name = job_name("Restore", flow.name, uid)
    env = work.env
    life = flow.adopt(env)
    if life is not None:
        life.kept = True  # until this call knows that no Job writes
    job = jobs.get_job(flow.namespace, name)
    if job is None or is_suspended(job):
        if life is not None:
            life.kept = False
        if job is None:
            return _start(flow, jobs, work)
        return _let_go(flow, jobs, work, job)  # created suspended before a crash
    state = job_state(job, jobs.job_pods(flow.namespace, name))
    if state.phase not in (JobPhase.SUCCEEDED, JobPhase.FAILED):
        return _running(flow, work, env, state)
    if life is not None:
        life.kept = False
    result = state.result or {}
    flow.patch.set(job=state.status)
    if work.rollback is not None:
        return _rollback_ended(flow, jobs, work, state, work.rollback)
    if result.get("outcome") == "completed":
        # Also when the Job failed after its pod had committed and said so.
        return _succeeded(flow, work, env, state, result)
    raise _error(flow, jobs, state, result)


def _rollback_ended(
    flow: RestoreFlow, jobs: Jobs, work: RestoreJob, state: JobState, of: RollbackOf
) -> Outcome:
    """A rollback's Job ended: its pod's result says what it restored; without one the
    target's ledger says whether the rollback committed (a pod that died after its
    commit, whose rerun found nothing left to roll back)."""
    result = state.result or {}
    if result.get("outcome") == "completed":
        if result.get("migration") != of.migration_id:
            raise FerryError(
                f"Job {state.name} reported migration {result.get('migration')!r}, "
                f"not {of.migration_id}"
            )
        return flow.rolled_back(work.env, of.name, rollback_result(result))
    if ledger_result(work.env.url, of.migration_id) == ROLLED_BACK:
        told = RollbackResult(of.migration_id, work.manifest.id, (), (), ())
        note = (
            f" (Job {state.name}'s pods reported no result of it; the ledger of "
            f"{work.env.name} records the rollback, which tables it restored is not known)"
        )
        return flow.rolled_back(work.env, of.name, told, note)
    raise _error(flow, jobs, state, result)


def rollback_result(result: dict[str, Any]) -> RollbackResult:
    """A ``ferry rollback`` pod's result (``cli.result.write_rolled_back``)."""

    def names(key: str) -> tuple[str, ...]:
        return tuple(str(n) for n in result.get(key) or ())

    return RollbackResult(
        migration_id=str(result.get("migration")),
        backup_id=str(result.get("backupId") or ""),
        tables=names("tables"),
        dropped=names("dropped"),
        later_edits=names("laterEdits"),
        safety_backup=result.get("safetyBackupId") or None,
        rows=int(result.get("rows") or 0),
    )


def _start(flow: RestoreFlow, jobs: Jobs, work: RestoreJob) -> Outcome:
    env = flow.gate(work.env.name)
    if work.rollback is not None:  # refused as the pod would, before anything is scaled
        check_rollback(env.url, work.rollback.migration_id)
    manifest = suspended(_manifest(flow, work, env))  # refused before anything is scaled
    job, queued = take_slot(flow.cluster, jobs, flow.job_settings, flow.body, manifest)
    if job is None:
        return flow.wait(BackupReason.JOB_QUEUED, str(queued), QUEUE_SECONDS, RestorePhase.QUEUED)
    return _let_go(flow, jobs, work, job)


def _let_go(flow: RestoreFlow, jobs: Jobs, work: RestoreJob, job: dict[str, Any]) -> Outcome:
    """The Job holds its slot, suspended: quiesce the application (outside the slots'
    lock), then let the Job start its pod. A quiesce that fails gives the slot back."""
    name = str((job.get("metadata") or {}).get("name"))
    flow.patch.set(job=job_state(job, []).status)  # the deletion handler finds it
    started = let_go(jobs, flow.namespace, name, lambda: flow.quiesce(work.env))
    if flow.life is not None:
        flow.life.kept = True
    return _running(flow, work, work.env, job_state(started, []))


def _manifest(flow: RestoreFlow, work: RestoreJob, env: ResolvedEnvironment) -> dict[str, Any]:
    """The Job for this Restore; InvalidInput (``JobUnavailable``) when Job mode cannot
    carry it without putting a secret into the Job's spec."""
    store = work.holder.spec.backup_store
    s3 = store.s3 if store is not None else None
    keys: set[str] = set()
    if s3 is not None and s3.credentials_secret:
        keys = set(flow.cluster.secret_data(flow.namespace, s3.credentials_secret))
    mount = store_mount(work.holder.spec, work.execution, keys)
    files: list[str] = []
    if work.rollback is not None:
        args = rollback_args(work, work.rollback, mount.argument)
    else:
        args = restore_args(work, env, mount.argument)
    if work.rollback is None and work.manifest.files is not None and env.spec.files is not None:
        # The backup holds files and the target declares where they live: they go back,
        # as in process.
        subject = f"backup {work.manifest.id} holds files and Environment {env.name}"
        mount, files = with_files(mount, env.spec.files, work.execution, subject, False)
    request = JobRequest(
        kind="Restore",
        body=flow.body,
        args=[*args, *files],
        env=database_env(env.spec),
        store=mount,
        execution=work.execution,
    )
    return job_manifest(request, flow.job_settings)


def restore_args(work: RestoreJob, env: ResolvedEnvironment, store: str) -> list[str]:
    """The CLI's arguments: names and choices only, nothing secret."""
    args = ["restore", "--store", store, "--backup", work.manifest.id]
    args += ["--environment", env.name, "--format", "json"]
    if work.spec.tables:
        args.append(f"--tables={','.join(work.spec.tables)}")  # a name may start with -
    if work.spec.force:
        args.append("--force")
    if env.spec.application is not None:
        args.append("--quiesced")  # the operator stopped it before it created the Job
    return args


def rollback_args(work: RestoreJob, of: RollbackOf, store: str) -> list[str]:
    """``ferry rollback``'s arguments: the target comes from ``$FERRY_DATABASE_URL``."""
    args = ["rollback", "--store", store, "--migration", of.migration_id, "--format", "json"]
    return [*args, "--force"] if work.spec.force else args


def _running(
    flow: RestoreFlow, work: RestoreJob, env: ResolvedEnvironment, state: JobState
) -> Outcome:
    _hold(flow, env)
    what = f"restoring backup {work.manifest.id} into {env.name}"
    if work.rollback is not None:
        what = f"rolling Migration {work.rollback.name} back in {env.name}"
    message = f"{what} in {job_text(state, work.execution)}"
    flow.patch.progressing(BackupReason.JOB_RUNNING, message).set(
        phase=RestorePhase.RESTORING, message=message, environment=env.name, job=state.status
    )
    if flow.life is not None:
        flow.patch.set(application=dict(flow.life.state))
    return Outcome(flow.patch.build(), (), POLL_SECONDS)


def _hold(flow: RestoreFlow, env: ResolvedEnvironment) -> None:
    """Keep the application at zero while the Job writes: something that scaled it up
    meanwhile (a GitOps tool's self-heal, a person) is scaled down again."""
    app = env.spec.application
    if app is None or flow.workloads is None:
        return
    scale = flow.workloads.scale(app.kind.value, flow.namespace, app.name)
    if scale is not None and scale.replicas != 0 and flow.life is not None:
        flow.life.quiesce(RestorePhase.RESTORING)


def _succeeded(
    flow: RestoreFlow,
    work: RestoreJob,
    env: ResolvedEnvironment,
    state: JobState,
    result: dict[str, Any],
) -> Outcome:
    if result.get("backupId") != work.manifest.id:
        raise FerryError(
            f"Job {state.name} reported backup {result.get('backupId')!r}, not {work.manifest.id}"
        )
    dropped = result.get("dropped")
    tables = restored_tables(work.manifest, list(work.spec.tables) or None)
    # The Job's last progress, as the in-process path leaves it: every table written.
    progress: dict[str, Any] = {"phase": RESTORING, "tables": f"{len(tables)}/{len(tables)}"}
    read = sum(m.bytes for m in work.manifest.members if m.table in tables)
    progress.update(rows=int(result.get("rows") or 0), bytes=read, updated=timestamp(flow.now))
    flow.patch.set(progress=progress)
    done = Restored(
        tables=tables,
        dropped=[str(t) for t in dropped] if isinstance(dropped, list) else [],
        rows=int(result.get("rows") or 0),
        safety_backup=result.get("safetyBackupId") or None,
        undone=[str(m) for m in result.get("undoneMigrations") or []],
        files=result.get("files") or None,
    )
    return flow.restored(env, work.manifest, done)


def _error(flow: RestoreFlow, jobs: Jobs, state: JobState, result: dict[str, Any]) -> FerryError:
    """The error the Job's last pod ended with, as the CLI raised it; a temporary one
    deletes the Job, so that a new one runs once the flow has waited."""
    if result.get("outcome") != "failed":
        return FerryError(f"Job {state.name} failed: {state.why}; {UNKNOWN}")
    code = int(result.get("exitCode") or 1)
    default = {EXIT_INVALID: InvalidInput, EXIT_TEMPORARY: TemporaryError}.get(code, FerryError)
    cls = ERRORS.get(str(result.get("error")), default)
    message = str(result.get("message") or f"Job {state.name} failed: {state.why}")
    reason = str(result.get("reason") or "") or None
    if issubclass(cls, TemporaryError) and not state.deleting:
        try:
            jobs.delete_job(flow.namespace, state.name)
        except TemporaryError as err:
            return err
    if issubclass(cls, CheckFailed):
        problems = [str(p) for p in result.get("problems") or []]
        return CheckFailed(message, problems=problems or None, reason=reason)
    return cls(message, reason=reason)


def stop_job(body: dict[str, Any], jobs: Jobs, kind: str = "Restore") -> str | None:
    """A Restore (or a Migration: ``kind``) is being deleted while it may hold its
    application at zero: delete its Job, and say what to wait for while a pod of it
    still runs (the application is resumed only once nothing writes any more). None:
    nothing runs."""
    if not (body.get("status") or {}).get("job"):
        return None  # never ran as a Job
    meta = body.get("metadata") or {}
    namespace = str(meta.get("namespace"))
    name = job_name(kind, str(meta.get("name")), str(meta.get("uid")))
    job = jobs.get_job(namespace, name)
    if job is not None and not (job.get("metadata") or {}).get("deletionTimestamp"):
        jobs.delete_job(namespace, name)
    running = [
        str((pod.get("metadata") or {}).get("name"))
        for pod in jobs.job_pods(namespace, name)
        if (pod.get("status") or {}).get("phase") not in (JobPhase.SUCCEEDED, JobPhase.FAILED)
        and not _ended(pod)
    ]
    if not running:
        return None
    return f"waiting for {', '.join(running)} of Job {name} to stop before resuming"


def _ended(pod: dict[str, Any]) -> bool:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return bool(statuses) and all((s.get("state") or {}).get("terminated") for s in statuses)
