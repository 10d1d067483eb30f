"""A Migration in Job mode: its apply runs as a Kubernetes Job running ``ferry migrate``.

Everything around the apply stays in the operator, on the in-process code path:
planning and the approval gate, the rehearsal, quiescing the target's application,
resuming it, the health check and the scoped rollback of an unhealthy result. The Job's
pod runs the CLI's ``ferry migrate`` with the approved digest and the migration ID the
operator chose (``status.migrationId``) before the Job existed: it takes the
pre-migration backup, applies, verifies and writes the ledger row, the same code as in
process.

A Git source (``spec.source.git``) reaches the Job as the CLI's ``--source
git+URL#revision=COMMIT&path=DIR``, pinned to the commit the operator checked out and
planned (``status.source.commit``), so the Job plans the very tree that was approved; its
credentials Secret is mounted as a Secret volume the CLI reads
(``FERRY_GIT_CREDENTIALS_DIR``), never copied into the Job's spec.

The target's ledger row of that ID, not the pod, says how the apply ended: when the Job
ends, and as soon as a pod of it has died while the ledger already records the ID (a
pod deleted after its commit), the row decides Succeeded or Failed, whatever the
termination message says or whether the pod is still there. A pod that dies before
anything committed is replaced per ``backoffLimit``; its rerun of the same ID is safe
(``ferry migrate`` treats a succeeded row of its ID as already applied). Exit codes 1
and 2 (the apply failed, or was refused) fail the Job at once (``podFailurePolicy``):
a failed apply is never retried by Kubernetes.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, replace
from typing import Any, Protocol

from controller.api.execution import ExecutionSpec
from controller.api.migration import MigrationPhase, MigrationSpec
from controller.api.reasons import BackupReason, MigrationReason
from controller.commands.environments import ResolvedEnvironment
from controller.commands.ledger_lookup import Recorded, ledger_record
from controller.commands.migrate import MigrationResult
from controller.commands.sources import git_spec
from controller.db.urls import dialect_of
from controller.engine.profiles import Profile
from controller.engine.progress import APPLYING
from controller.errors import CheckFailed, FerryError, InvalidInput, TemporaryError
from controller.flows.application import Lifecycle, hold_deletion, result_of
from controller.flows.backup_job import POLL_SECONDS, QUEUE_SECONDS
from controller.flows.jobs import (
    JobRequest,
    StoreMount,
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
from controller.flows.outcome import Event, Outcome
from controller.flows.restore_job import ERRORS, stop_job
from controller.flows.status import StatusPatch, timestamp
from controller.gitsource.remote import check_path, check_remote, check_revision, holds_credentials
from controller.gitsource.repository import CREDENTIALS_DIR_ENV, redact_url
from controller.k8s.client import Cluster
from controller.k8s.jobs import JobPhase, Jobs, JobSettings, JobState, is_suspended, job_state

INPUTS_DIR = "/var/run/ferry/inputs"  # the Migration's rules and variables, as files
INPUTS_ANNOTATION = "ferry.dev/{}"  # on the Job's pod, projected into INPUTS_DIR
FAIL_AT_ONCE = [1, 2]  # the CLI's exit codes for a failed and a refused apply
GIT_CREDENTIALS_DIR = "/var/run/ferry/git-credentials"  # spec.source.git.secretRef's keys


class MigrationFlow(Protocol):
    """What of the Migration flow (``flows.migration``) this module uses."""

    body: dict[str, Any]
    cluster: Cluster
    namespace: str
    name: str
    now: dt.datetime
    status: dict[str, Any]
    patch: StatusPatch
    events: list[Event]
    jobs: Jobs | None
    job_settings: JobSettings
    life: Lifecycle | None

    def lifecycle(self, target: ResolvedEnvironment) -> Lifecycle | None: ...

    def wait(self, phase: str, reason: str, message: str, delay: float) -> Outcome: ...

    def after_apply(
        self, result: MigrationResult, target: ResolvedEnvironment, spec: MigrationSpec
    ) -> Outcome: ...

    def conclude(
        self, result: MigrationResult, target: ResolvedEnvironment, *, skip: bool
    ) -> Outcome: ...


@dataclass(frozen=True)
class GitPin:
    """A Git source as the operator checked it out: the Job clones exactly ``commit``."""

    repository: str
    commit: str  # the hex commit the operator resolved and planned (status.source.commit)
    path: str
    secret_name: str | None


@dataclass(frozen=True)
class MigrationJob:
    spec: MigrationSpec
    target: ResolvedEnvironment
    source: ResolvedEnvironment | None  # None: a Git source (``git``)
    execution: ExecutionSpec
    migration_id: str  # chosen by the operator before the Job exists (status.migrationId)
    git: GitPin | None = None  # set once the operator has checked the source out


def _jobs(flow: MigrationFlow) -> Jobs:
    if flow.jobs is None or flow.job_settings.image is None:
        raise InvalidInput(
            "spec.execution.mode is Job, but this operator runs no Jobs: it has no job "
            "image (FERRY_JOB_IMAGE, which the chart sets)",
            reason=BackupReason.JOB_UNAVAILABLE,
        )
    return flow.jobs


def _name(flow: MigrationFlow) -> str:
    return job_name("Migration", flow.name, str((flow.body.get("metadata") or {}).get("uid")))


def follow_migration_job(flow: MigrationFlow, work: MigrationJob) -> Outcome | None:
    """Follow the Migration's Job, or finish after it; None when no Job was started yet
    (or one ended with nothing committed and was removed): plan, approve and start one."""
    life = flow.life = flow.lifecycle(work.target)
    if life is not None and life.state.get("result"):
        # The Job ended and its result is recorded: resume, health, rollback as in process.
        return flow.after_apply(result_of(life.state["result"]), work.target, work.spec)
    jobs = _jobs(flow)
    job = jobs.get_job(flow.namespace, _name(flow))
    if job is None and not flow.status.get("job"):
        return None
    if job is not None and is_suspended(job):
        return _let_go(flow, jobs, work, job)  # created suspended before a crash
    if life is not None:
        life.kept = True  # until this call knows that no Job writes
    state = job_state(job, jobs.job_pods(flow.namespace, _name(flow))) if job else None
    ended = state is None or state.phase in (JobPhase.SUCCEEDED, JobPhase.FAILED)
    died = state is not None and int(((job or {}).get("status") or {}).get("failed") or 0) > 0
    recorded = ledger_record(work.target.url, work.migration_id) if ended or died else None
    if not ended and recorded is None:
        assert state is not None
        return _running(flow, work, state)
    if not ended and state is not None and not state.deleting:
        jobs.delete_job(flow.namespace, state.name)  # no rerun once the ledger has the ID
    if life is not None:
        life.kept = False
    if state is not None:
        flow.patch.set(job=state.status)
    if recorded is None and state is None:
        return None  # the Job went away before anything committed: a new one starts
    return _ended(flow, work, state, recorded)


def start_migration_job(flow: MigrationFlow, work: MigrationJob, digest: str) -> Outcome:
    """Start the Job that applies ``digest`` (approved, or rehearsed): refused before
    anything is scaled when Job mode cannot carry it, queued for a slot, else the
    application quiesced and the Job created."""
    jobs = _jobs(flow)
    manifest = suspended(_manifest(flow, work, digest))
    job, queued = take_slot(flow.cluster, jobs, flow.job_settings, flow.body, manifest)
    if job is None:
        return flow.wait(MigrationPhase.QUEUED, BackupReason.JOB_QUEUED, str(queued), QUEUE_SECONDS)
    return _let_go(flow, jobs, work, job)


def _let_go(flow: MigrationFlow, jobs: Jobs, work: MigrationJob, job: dict[str, Any]) -> Outcome:
    """The Job holds its slot, suspended: quiesce the application (outside the slots'
    lock), then let the Job start its pod. A quiesce that fails gives the slot back."""
    flow.patch.set(migrationId=work.migration_id, job=job_state(job, []).status)

    def quiesce() -> None:
        if flow.life is not None:
            hold_deletion(flow.cluster, "Migration", flow.body)
            flow.life.quiesce()

    started = let_go(jobs, flow.namespace, _name(flow), quiesce)
    if flow.life is not None:
        flow.life.kept = True
    return _running(flow, work, job_state(started, []))


def _running(flow: MigrationFlow, work: MigrationJob, state: JobState) -> Outcome:
    if flow.life is not None:
        flow.life.hold(MigrationPhase.APPLYING)
    message = f"applying to {work.target.name} in {job_text(state, work.execution)}"
    flow.patch.progressing(BackupReason.JOB_RUNNING, message).set(
        phase=MigrationPhase.APPLYING,
        message=message,
        job=state.status,
        migrationId=work.migration_id,
    )
    if flow.life is not None:
        flow.patch.set(application=dict(flow.life.state))
    return Outcome(flow.patch.build(), tuple(flow.events), POLL_SECONDS)


def _ended(
    flow: MigrationFlow, work: MigrationJob, state: JobState | None, recorded: Recorded | None
) -> Outcome:
    """The apply is over: the ledger's row says how, the pod's result adds what the
    ledger does not keep; with no row, nothing committed and the pod's error ends the
    Migration as it ends an in-process one."""
    told = (state.result if state is not None else None) or {}
    if recorded is None:
        result = _uncommitted(flow, work, state, told)
    else:
        result = _from_ledger(work, recorded, told)
    if result.status == "succeeded":
        _applied_progress(flow)
    if flow.life is not None:
        return flow.after_apply(result, work.target, work.spec)
    return flow.conclude(result, work.target, skip=work.spec.skip_backup)


def _applied_progress(flow: MigrationFlow) -> None:
    """The apply's last progress, as the in-process path leaves it: every changed table
    of the approved plan written (unknown for a plan too large for the status)."""
    plan = flow.status.get("plan") or {}
    if plan.get("truncated") or not plan.get("tables"):
        return
    totals = plan.get("totals") or {}
    tables = len(plan["tables"])
    flow.patch.set(
        progress={
            "phase": APPLYING,
            "tables": f"{tables}/{tables}",
            "rows": sum(int(totals.get(k) or 0) for k in ("insert", "update", "delete")),
            "updated": timestamp(flow.now),
        }
    )


def _from_ledger(work: MigrationJob, recorded: Recorded, told: dict[str, Any]) -> MigrationResult:
    mine = told.get("id") == work.migration_id
    if recorded.result != "succeeded":
        message = recorded.error or str(told.get("message") or "") if mine else recorded.error
        return MigrationResult(
            work.migration_id, recorded.result, None, message, backup_id=recorded.backup_id
        )
    status, message, warnings = "succeeded", "", tuple[str, ...]()
    if mine and told.get("status") == "noop" and told.get("planned"):
        status, message = "noop", str(told.get("message") or "")  # it already matched
    elif mine and told.get("status") == "succeeded":
        warnings = tuple(str(w) for w in told.get("warnings") or ())
    return MigrationResult(
        work.migration_id,
        status,
        None,
        message,
        backup_id=recorded.backup_id,
        warnings=warnings,
    )


def _uncommitted(
    flow: MigrationFlow, work: MigrationJob, state: JobState | None, told: dict[str, Any]
) -> MigrationResult:
    """The ledger has no row of the ID: nothing was committed with one (on MySQL/MariaDB
    see :func:`unrecorded_state`). An error the CLI raised is
    raised again (the Job removed first when the Migration waits and tries again)."""
    name = state.name if state is not None else _name(flow)
    error = ERRORS.get(str(told.get("error") or ""))
    if told.get("outcome") == "failed" and error is not None:
        message = str(told.get("message") or f"Job {name} failed")
        reason = str(told.get("reason") or "") or None
        err: FerryError
        if issubclass(error, CheckFailed):
            problems = [str(p) for p in told.get("problems") or []] or [message]
            err = CheckFailed(message, problems=problems, reason=reason)
        else:
            err = error(message, reason=reason)
        again = isinstance(err, TemporaryError) or err.reason == MigrationReason.PLAN_CHANGED
        if again and state is not None and not state.deleting and flow.jobs is not None:
            flow.jobs.delete_job(flow.namespace, name)
        raise err
    why = state.why if state is not None else "it was deleted"
    message = (
        f"Job {name} failed ({why or 'no pod reported a result'}); the ledger of "
        f"{work.target.name} records nothing for {work.migration_id}: "
        f"{unrecorded_state(work.target.url)}"
    )
    return MigrationResult(work.migration_id, "failed", None, message)


def unrecorded_state(url: str) -> str:
    """What a target whose ledger has no row of the migration holds: nothing of it,
    except on MySQL/MariaDB, whose DDL commits on its own, so a pod stopped during the
    schema step may have left some of it (a failure there restores; a kill cannot)."""
    try:
        dialect = dialect_of(url)
    except FerryError:
        dialect = ""
    if dialect != "mysql":
        return "nothing was applied"
    return (
        "no row change was committed, but MySQL/MariaDB commits schema changes on its "
        "own, so a pod stopped while applying them may have left some: compare the "
        "target with its pre-migration backup before planning again"
    )


# --- the Job ------------------------------------------------------------------------


def _manifest(flow: MigrationFlow, work: MigrationJob, digest: str) -> dict[str, Any]:
    """The Job for this Migration; InvalidInput (``JobUnavailable``) when Job mode
    cannot carry it without putting a secret into the Job's spec."""
    target = work.target
    backup = not work.spec.skip_backup and target.spec.backup_store is not None
    mount = _store(flow, work) if backup else StoreMount("")
    source_args, env, mount = _source(work, mount)
    args = ["migrate", "--id", work.migration_id, "--approved-digest", digest, *source_args]
    args += ["--environment", target.name, "--profile", target.profile.value]
    args += ["--backup-store", mount.argument] if backup else ["--skip-backup"]
    if backup and target.spec.files is not None:  # the pre-migration backup holds them
        subject = f"Environment {target.name}"
        mount, files = with_files(mount, target.spec.files, work.execution, subject, True)
        args += files
    if target.spec.application is not None:
        args.append("--quiesced")  # the operator stopped it before it created the Job
    inputs = _inputs(flow, work)
    args += [f"--{key}={INPUTS_DIR}/{key}.json" for key in inputs]
    request = JobRequest(
        kind="Migration",
        body=flow.body,
        args=[*args, "--format", "json"],
        env=[*database_env(target.spec), *env],
        store=_with_inputs(mount, inputs),
        execution=work.execution,
    )
    manifest = job_manifest(request, flow.job_settings)
    template = manifest["spec"]["template"]
    annotations = {INPUTS_ANNOTATION.format(k): v for k, v in inputs.items()}
    if annotations:
        template["metadata"]["annotations"] = annotations
    exits = {"containerName": "ferry", "operator": "In", "values": FAIL_AT_ONCE}
    manifest["spec"]["podFailurePolicy"] = {"rules": [{"action": "FailJob", "onExitCodes": exits}]}
    return manifest


def _source(
    work: MigrationJob, mount: StoreMount
) -> tuple[list[str], list[dict[str, Any]], StoreMount]:
    """The source's arguments, environment and volumes: an Environment's database from
    its Secrets, or the pinned Git source with its credentials Secret as a volume."""
    if work.source is not None:
        return [], database_env(work.source.spec, "FERRY_SOURCE_DATABASE"), mount
    pin = work.git
    if pin is None:  # a bug: the flow pins the source before it starts a Job
        raise InvalidInput("spec.source.git was not checked out before its Job")
    _check_pin(pin)
    args = ["--source", git_spec(pin.repository, pin.commit, pin.path)]
    if pin.secret_name is None:
        return args, [], mount
    secret = {"secretName": pin.secret_name, "defaultMode": 0o440}
    volume = {"name": "git-credentials", "secret": secret}
    where = {"name": "git-credentials", "mountPath": GIT_CREDENTIALS_DIR, "readOnly": True}
    env = [{"name": CREDENTIALS_DIR_ENV, "value": GIT_CREDENTIALS_DIR}]
    return (
        args,
        env,
        replace(mount, volumes=(*mount.volumes, volume), mounts=(*mount.mounts, where)),
    )


def _check_pin(pin: GitPin) -> None:
    """The checks of an in-process checkout (the Job's CLI makes them again), and no
    credentials in the URL: the Job's arguments would show them."""
    shown = redact_url(pin.repository)
    check_remote(pin.repository, shown)
    check_revision(pin.commit)
    check_path(pin.path)
    if holds_credentials(pin.repository):
        raise InvalidInput(
            f"spec.source.git.repository ({shown}) holds credentials, which a Job's "
            "arguments would show: put them in the Secret of secretRef for Job mode",
            reason=BackupReason.JOB_UNAVAILABLE,
        )


def _store(flow: MigrationFlow, work: MigrationJob) -> StoreMount:
    store = work.target.spec.backup_store
    keys: set[str] = set()
    if store is not None and store.s3 is not None and store.s3.credentials_secret:
        keys = set(flow.cluster.secret_data(flow.namespace, store.s3.credentials_secret))
    return store_mount(work.target.spec, work.execution, keys)


def _inputs(flow: MigrationFlow, work: MigrationJob) -> dict[str, str]:
    """The Migration's rules and the target's variable names, as the CLI reads them
    (``--rules``, ``--variables``): JSON in the pod's annotations, names and choices
    only (a variable's value is never among them)."""
    out: dict[str, str] = {}
    rules = (flow.body.get("spec") or {}).get("rules")
    if rules:
        out["rules"] = json.dumps(rules, sort_keys=True)
    target = work.target
    if target.profile is not Profile.NOCOBASE and target.spec.variables:
        out["variables"] = json.dumps(sorted(v.name for v in target.spec.variables))
    return out


def _with_inputs(mount: StoreMount, inputs: dict[str, str]) -> StoreMount:
    if not inputs:
        return mount
    items = [
        {"path": f"{key}.json", "fieldRef": {"fieldPath": _annotation_path(key)}} for key in inputs
    ]
    volume = {"name": "inputs", "downwardAPI": {"items": items}}
    where = {"name": "inputs", "mountPath": INPUTS_DIR, "readOnly": True}
    return StoreMount(mount.argument, mount.env, (*mount.volumes, volume), (*mount.mounts, where))


def _annotation_path(key: str) -> str:
    return f"metadata.annotations['{INPUTS_ANNOTATION.format(key)}']"


def stop_migration_job(body: dict[str, Any], jobs: Jobs) -> str | None:
    """A Migration deleted while its Job may write: ``restore_job.stop_job``'s rule."""
    return stop_job(body, jobs, "Migration")
