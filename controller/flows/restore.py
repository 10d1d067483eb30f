"""Reconcile a Restore: put a backup back, or roll one Migration back.

A Restore is a one-shot. ``spec.backup`` names a Backup object (its status gives the
backup ID, its Environment the store) or is a backup ID (looked up in the target
Environment's store, or in every Environment's store when no target is given).
``spec.migration`` rolls that Migration back: only the tables it changed are
restored, business rows written since survive, and rows edited since stop it unless
``force``. Restores and Migrations take turns on one environment (``queue``). Refusals
(a damaged or incompatible backup, later edits) end it as Failed with every problem
listed; a failed restore leaves the target as it was (see ``commands.backup``).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from controller.api.backup import BackupPhase
from controller.api.execution import effective
from controller.api.migration import MigrationPhase
from controller.api.reasons import (
    ApplicationReason,
    CommonReason,
    ConditionType,
    EventType,
    RestoreReason,
)
from controller.api.restore import RestorePhase, RestoreSpec, parse_restore
from controller.backups.manifest import Manifest
from controller.backups.store import BackupStore
from controller.commands import environments
from controller.commands.backup import restore
from controller.commands.rollback import RollbackResult, rollback
from controller.errors import (
    BackupNotFound,
    CheckFailed,
    FerryError,
    InvalidInput,
    PermanentError,
    Reverted,
    TemporaryError,
)
from controller.flows.application import (
    Holder,
    Lifecycle,
    StepPhases,
    hold_deletion,
    leave_running,
)
from controller.flows.environment import new_baseline
from controller.flows.oneshot import OneShot
from controller.flows.outcome import Event, Outcome, backoff
from controller.flows.progress import with_progress
from controller.flows.queue import earlier_writer, is_ready
from controller.flows.restore_job import Restored, RestoreJob, RollbackOf, run_restore_job
from controller.flows.status import timestamp
from controller.k8s.client import Cluster
from controller.k8s.jobs import Jobs, JobSettings
from controller.k8s.workloads import Workloads

BACKUP_ID = re.compile(r"^\d{8}T\d{9}Z-[0-9a-f]+$")
PROBLEMS_SHOWN = 20
STEPS = StepPhases(RestorePhase.QUIESCING, RestorePhase.RESUMING, RestorePhase.CHECKING_HEALTH)


class _Wait(Exception):
    def __init__(
        self, reason: str, message: str, delay: float, phase: str = RestorePhase.PENDING
    ) -> None:
        super().__init__(message)
        self.reason, self.message, self.delay, self.phase = reason, message, delay, phase


class _Flow(OneShot):
    # A Restore waiting for an earlier Migration or Restore on its environment is Queued
    # (reason WaitingForTurn), as a Migration is; other waits leave it Pending.
    kind = "Restore"
    phases = RestorePhase
    pending = RestorePhase.PENDING
    workloads: Workloads | None = None  # the target application's scale and health
    lifecycle_options: dict[str, Any] | None = None  # its sleep and clock, for tests
    life: Lifecycle | None = None
    jobs: Jobs | None = None  # the Kubernetes Jobs API, for spec.execution.mode Job
    job_settings = JobSettings(image=None)

    def finish(self, phase: RestorePhase, reason: str, message: str) -> Outcome:
        self.patch.set(phase=phase, message=message, completionTime=timestamp(self.now))
        if phase == RestorePhase.COMPLETED:
            self.patch.ready(reason, message).set(error=None)
            self.patch.condition(ConditionType.RESTORED, True, reason, message)
            return Outcome(self.patch.build(), (Event(EventType.NORMAL, reason, message),))
        self.patch.stalled(reason, message).set(error=message)
        self.patch.condition(ConditionType.RESTORED, False, reason, message)
        return Outcome(self.patch.build(), (Event(EventType.WARNING, reason, message),))

    def restoring(self, message: str, **fields: Any) -> None:
        if self.life is None:
            self.show_phase(RestorePhase.RESTORING, RestoreReason.RESTORING, message, **fields)
            return
        # Through the patch that holds the application's conditions, so none goes missing.
        self.patch.progressing(RestoreReason.RESTORING, message)
        self.patch.set(phase=RestorePhase.RESTORING, message=message, **fields)
        self.life.write()

    def adopt(self, env: environments.ResolvedEnvironment) -> Lifecycle | None:
        """The target application's lifecycle as this Restore's status records it,
        without scaling anything (a Job's write runs on, or has ended)."""
        app = env.spec.application
        if app is None:
            return None
        if self.workloads is None:
            raise InvalidInput(f"Environment {env.name} declares an application; no client")

        def write() -> None:
            self.cluster.patch_status(self.kind, self.namespace, self.name, self.patch.build())

        previous = self.status.get("application")
        self.life = Lifecycle(
            app,
            self.workloads,
            self.namespace,
            self.patch,
            write,
            previous,
            STEPS,
            **(self.lifecycle_options or {}),
        )
        return self.life

    def quiesce(self, env: environments.ResolvedEnvironment) -> None:
        """Stop the target's application (``spec.application``) before writing."""
        life = self.adopt(env)
        if life is None:
            return
        hold_deletion(self.cluster, self.kind, self.body)
        life.quiesce()

    def completed(self, reason: str, message: str) -> Outcome:
        """Resume the application and wait until healthy, then Completed. An application
        unhealthy after a restore is said (a Warning event, ApplicationHealthy false),
        not undone: the restore is what was asked for."""
        if self.life is None:
            return self.finish(RestorePhase.COMPLETED, reason, message)
        self.life.resume()
        health = self.life.wait_healthy()
        if health.ok:
            return self.finish(RestorePhase.COMPLETED, reason, message)
        warning = f"the application of {self.life.app.workload} was unhealthy afterwards"
        outcome = self.finish(RestorePhase.COMPLETED, reason, f"{message}; {warning}")
        unhealthy = Event(
            EventType.WARNING,
            ApplicationReason.APPLICATION_UNHEALTHY,
            f"{warning}: {health.detail}",
        )
        return Outcome(outcome.status, (*outcome.events, unhealthy))

    def guarded_run(self, retry: int) -> Outcome:
        return leave_running(
            Holder(self.body, self.workloads, self.patch),
            lambda: self.life,
            lambda: self.run(retry),
            lambda err: self.wait(err.reason, err.message, 5.0, RestorePhase.RESUMING),
        )

    def failed(self, reason: str, message: str) -> Outcome:
        return self.finish(RestorePhase.FAILED, reason, message)

    def run(self, retry: int) -> Outcome:
        try:
            spec = parse_restore(self.body)
        except InvalidInput as err:
            return self.failed(CommonReason.INVALID_SPEC, err.message)
        try:
            if spec.migration:
                return self.roll_back(spec, spec.migration)
            return self.restore_backup(spec)
        except _Wait as wait:
            return self.wait(wait.reason, wait.message, wait.delay, wait.phase)
        except CheckFailed as err:
            problems = err.problems[:PROBLEMS_SHOWN]
            more = len(err.problems) - len(problems)
            detail = "; ".join(problems) + (f"; and {more} more" if more > 0 else "")
            message = err.message if detail == err.message else f"{err.message}: {detail}"
            return self.failed(err.reason, message)
        except InvalidInput as err:
            if err.reason == CommonReason.ENVIRONMENT_NOT_FOUND:
                return self.wait(err.reason, err.message, 5.0)
            own = err.reason != InvalidInput.reason
            return self.failed(err.reason if own else RestoreReason.REFUSED, err.message)
        except TemporaryError as err:
            return self.wait(err.reason, err.message, backoff(retry, err.delay))
        except Reverted as err:  # failed while writing, and the target is as it was
            return self.finish(RestorePhase.REVERTED, err.reason, err.message)
        except PermanentError as err:
            own = err.reason != PermanentError.reason
            return self.failed(err.reason if own else RestoreReason.RESTORE_FAILED, err.message)
        except FerryError as err:
            return self.failed(RestoreReason.RESTORE_FAILED, err.message)

    # --- which backup, which store, which environment ---------------------------------

    def _store_of(self, env: environments.ResolvedEnvironment) -> BackupStore:
        if env.store is None:
            raise InvalidInput(
                f"Environment {env.name} has no spec.backups.store",
                reason=CommonReason.NO_BACKUP_STORE,
            )
        return env.store

    def _by_name(
        self, spec: RestoreSpec, obj: dict[str, Any]
    ) -> tuple[environments.ResolvedEnvironment, Manifest, str, dict[str, Any]]:
        """The Environment whose store holds the backup, its manifest, the target's name
        and the backup as ``status.backup`` names it (``_by_id`` too)."""
        ref = str(spec.backup)
        status = obj.get("status") or {}
        phase = status.get("phase")
        if phase == BackupPhase.FAILED:
            raise InvalidInput(
                f"Backup {ref} failed; nothing to restore", reason=CommonReason.BACKUP_FAILED
            )
        if phase != BackupPhase.COMPLETED or not status.get("id"):
            raise _Wait(
                RestoreReason.BACKUP_NOT_READY, f"waiting for Backup {ref} to complete", 5.0
            )
        own = str((obj.get("spec") or {}).get("environment"))
        holder = environments.lookup(self.cluster, self.namespace, own)
        manifest = self._store_of(holder).manifest(str(status["id"]), own)
        return holder, manifest, spec.environment or own, {"name": ref, "id": manifest.id}

    def _by_id(
        self, spec: RestoreSpec
    ) -> tuple[environments.ResolvedEnvironment, Manifest, str, dict[str, Any]]:
        backup_id = str(spec.backup)
        if spec.environment:
            target = environments.lookup(self.cluster, self.namespace, spec.environment)
            manifest = self._store_of(target).manifest(backup_id)
            return target, manifest, target.name, {"id": manifest.id}
        unreadable: list[InvalidInput] = []
        for body in self.cluster.list("Environment", self.namespace):
            env = environments.resolve(body, self.cluster)
            if env.store is None:
                continue
            try:
                manifest = env.store.manifest(backup_id)
            except BackupNotFound:
                continue
            except InvalidInput as err:  # there, but refused: a wrong key, a bad seal
                unreadable.append(err)
                continue
            return env, manifest, manifest.environment, {"id": manifest.id}
        if unreadable:
            raise unreadable[0]
        raise InvalidInput(
            f"no Environment's backup store in {self.namespace} has backup {backup_id}",
            reason=RestoreReason.BACKUP_NOT_FOUND,
        )

    def gate(self, target: str) -> environments.ResolvedEnvironment:
        """Wait for the target to be Ready and for earlier writers to finish."""
        env = environments.lookup(self.cluster, self.namespace, target)
        if not is_ready(self.cluster, self.namespace, env.name):
            raise _Wait(
                CommonReason.ENVIRONMENT_NOT_READY,
                f"waiting for Environment {env.name} to be Ready",
                3.0,
            )
        blocker = earlier_writer(self.cluster, self.body, env.name)
        if blocker:
            raise _Wait(
                CommonReason.WAITING_FOR_TURN,
                f"{blocker} writes to {env.name} first",
                2.0,
                RestorePhase.QUEUED,
            )
        return env

    def _baseline(self, env: environments.ResolvedEnvironment) -> None:
        try:
            fingerprint = environments.fingerprint_of(env).value
            self.cluster.patch_status(
                "Environment", self.namespace, env.name, new_baseline(fingerprint)
            )
        except FerryError:
            pass  # the next Environment check records the baseline instead

    # --- restore a backup -------------------------------------------------------------

    def restore_backup(self, spec: RestoreSpec) -> Outcome:
        ref = str(spec.backup)
        obj = self.cluster.get("Backup", self.namespace, ref)
        if obj is not None:
            holder, manifest, target, backup_ref = self._by_name(spec, obj)
        elif BACKUP_ID.match(ref):
            holder, manifest, target, backup_ref = self._by_id(spec)
        else:
            raise _Wait(RestoreReason.BACKUP_NOT_FOUND, f"waiting for Backup {ref} to exist", 10.0)
        self.patch.set(environment=target, backup=backup_ref)
        into = environments.lookup(self.cluster, self.namespace, target)
        execution = effective(spec.execution, into.spec.execution)
        if execution.is_job:
            job = RestoreJob(spec, into, holder, manifest, execution)
            return run_restore_job(self, job)
        store = self._store_of(holder)
        env = self.gate(target)
        self.quiesce(env)
        tables = list(spec.tables) or None
        self.restoring(
            f"restoring backup {manifest.id} into {env.name}",
            environment=env.name,
            backup=backup_ref,
        )
        result = restore(
            store,
            manifest.id,
            env.url,
            tables=tables,
            environment=env.name,
            force=spec.force,
            progress=self.progress,
            files=env.files if manifest.files else None,
            quiesced=self.life is not None,  # the safety backup's files are exact
        )
        return self.restored(
            env,
            manifest,
            Restored(
                tables=list(result.tables),
                dropped=list(result.dropped),
                rows=result.rows,
                safety_backup=result.safety_backup,
                undone=list(result.undone),
                files=result.files.to_dict() if result.files else None,
            ),
        )

    def restored(
        self, env: environments.ResolvedEnvironment, manifest: Manifest, done: Restored
    ) -> Outcome:
        """The status of a written restore, in process or in a Job; resume, Completed."""
        self._baseline(env)
        self.patch.set(
            tables=done.tables,
            dropped=done.dropped,
            rows=done.rows,
            safetyBackup={"id": done.safety_backup} if done.safety_backup else None,
            undoneMigrations=done.undone or None,
        )
        told = _files_told(done.files, manifest, env)
        self.patch.set(files=done.files)
        return self.completed(
            RestoreReason.RESTORED,
            f"restored {len(done.tables)} tables ({done.rows} rows){told} of backup "
            f"{manifest.id} into {env.name}",
        )

    # --- roll a migration back --------------------------------------------------------

    def roll_back(self, spec: RestoreSpec, name: str) -> Outcome:
        migration = self.cluster.get("Migration", self.namespace, name)
        if migration is None:
            raise _Wait(
                RestoreReason.MIGRATION_NOT_FOUND, f"waiting for Migration {name} to exist", 10.0
            )
        mstatus = migration.get("status") or {}
        phase = mstatus.get("phase")
        if phase in (MigrationPhase.FAILED, MigrationPhase.ROLLED_BACK):
            raise InvalidInput(
                f"Migration {name} is {phase}: there is nothing of it to roll back",
                reason=RestoreReason.NOTHING_TO_ROLL_BACK,
            )
        if phase != MigrationPhase.SUCCEEDED:
            raise _Wait(
                RestoreReason.MIGRATION_NOT_FINISHED, f"waiting for Migration {name} to finish", 5.0
            )
        migration_id = mstatus.get("migrationId")
        backup = mstatus.get("backup") or {}
        if not migration_id or not backup.get("id"):
            raise InvalidInput(
                f"Migration {name} has no pre-migration backup to roll back to",
                reason=RestoreReason.NO_PRE_MIGRATION_BACKUP,
            )
        target = spec.environment or str((migration.get("spec") or {}).get("target"))
        backup_ref = {k: backup[k] for k in ("name", "id") if backup.get(k)}
        self.patch.set(environment=target, backup=backup_ref, migration={"name": name})
        into = environments.lookup(self.cluster, self.namespace, target)
        execution = effective(spec.execution, into.spec.execution)
        if execution.is_job:  # ``ferry rollback`` in a Job (``flows.restore_job``)
            manifest = self._store_of(into).manifest(str(backup["id"]))
            of = RollbackOf(name, str(migration_id))
            return run_restore_job(self, RestoreJob(spec, into, into, manifest, execution, of))
        env = self.gate(target)
        store = self._store_of(env)
        self.quiesce(env)
        self.restoring(
            f"rolling Migration {name} back in {env.name}",
            environment=env.name,
            backup=backup_ref,
        )
        result = rollback(
            store, str(migration_id), env.url, force=spec.force, progress=self.progress
        )
        return self.rolled_back(env, name, result)

    def rolled_back(
        self,
        env: environments.ResolvedEnvironment,
        name: str,
        result: RollbackResult,
        note: str = "",
    ) -> Outcome:
        """The status of a committed rollback, in process or in a Job; resume, Completed.
        ``note``: how it is known, when not from the rollback's own result."""
        self._baseline(env)
        self.patch.set(
            migration={"name": name, "id": result.migration_id},
            tables=list(result.tables),
            dropped=list(result.dropped),
            laterEdits=list(result.later_edits[:PROBLEMS_SHOWN]),
            safetyBackup={"id": result.safety_backup} if result.safety_backup else None,
        )
        return self.completed(
            CommonReason.ROLLED_BACK,
            f"rolled Migration {name} back: restored {len(result.tables)} tables, dropped "
            f"{len(result.dropped)}, from backup {result.backup_id}{note}",
        )


def _files_told(
    put: dict[str, Any] | None, manifest: Manifest, env: environments.ResolvedEnvironment
) -> str:
    """What a restore's message says of the files (``status.files``, as
    ``FilesRestored.to_dict`` has it): what was written, left as it was and moved aside,
    or why the backup's files were not restored."""
    if put is not None:
        moved = f" to {put['root']}/{put['displacedTo']}" if put.get("displacedTo") else ""
        written, unchanged = int(put.get("written") or 0), int(put.get("unchanged") or 0)
        return (
            f" and {written + unchanged} files ({written} written, "
            f"{unchanged} unchanged, {put.get('displaced') or 0} moved aside{moved})"
        )
    if manifest.files is not None and manifest.files.entries:
        held = len(manifest.files.entries)
        return f" (not its {held} files: Environment {env.name} declares no spec.files)"
    return ""


def reconcile_restore(
    body: dict[str, Any],
    cluster: Cluster,
    *,
    now: dt.datetime,
    retry: int = 0,
    workloads: Workloads | None = None,
    lifecycle_options: dict[str, Any] | None = None,
    jobs: Jobs | None = None,
    settings: JobSettings | None = None,
) -> Outcome:
    """Carry out a new Restore; a finished one is left alone. ``workloads``: the target
    application's scale and health (``spec.application``). In Job mode
    (``spec.execution``) ``jobs`` runs the write as a Kubernetes Job
    (``flows.restore_job``)."""
    if RestorePhase.is_finished((body.get("status") or {}).get("phase")):
        return Outcome({})
    flow = _Flow(body, cluster, now)
    flow.workloads, flow.lifecycle_options = workloads, lifecycle_options
    flow.jobs, flow.job_settings = jobs, settings or JobSettings.from_environ()
    return with_progress(flow.guarded_run(retry), flow.progress)
