"""Reconcile a Backup: back its Environment up into the Environment's store, once.

A Backup is a one-shot: once its status says Completed or Failed it is never run
again. A missing Environment is waited for; an unreachable database is retried with
backoff; anything the spec or the Environment makes impossible (no backup store, an
unknown table) ends it as Failed. Deleting the object deletes the stored artifact
only with ``deletionPolicy: Delete``, and never while a migration's rollback window
needs it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.api.backup import BackupPhase, DeletionPolicy, parse_backup
from controller.api.execution import effective
from controller.api.reasons import BackupReason, CommonReason, EventType
from controller.backups.manifest import Manifest
from controller.commands import environments
from controller.commands.backup import create_backup
from controller.errors import FerryError, InvalidInput, TemporaryError
from controller.flows.backup_job import BackupJob, run_backup_job
from controller.flows.oneshot import OneShot
from controller.flows.outcome import Event, Outcome, backoff
from controller.flows.progress import with_progress
from controller.flows.schedule import pinned_backup_ids
from controller.flows.status import timestamp
from controller.k8s.client import Cluster
from controller.k8s.jobs import Jobs, JobSettings

GLOB_CHARS = frozenset("*?[")
DELETE_ATTEMPTS = 5  # then the object goes and the artifact stays (an event says so)


def human_size(size: int) -> str:
    """``1536`` → ``1.5 KiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def manifest_status(manifest: Manifest, location: str) -> dict[str, Any]:
    return {
        "id": manifest.id,
        "location": location,
        "size": human_size(manifest.bytes),
        "sizeBytes": manifest.bytes,
        "tables": len(manifest.members),
        "rows": manifest.rows,
        "checksum": manifest.checksum,
        "files": files_status(manifest),
    }


def files_status(manifest: Manifest) -> dict[str, Any] | None:
    """``status.files`` of a Backup: what of the application's files it holds, and how
    consistent they are with its rows (None: a backup of the rows alone)."""
    section = manifest.files
    if section is None:
        return None
    return {
        "count": len(section.entries),
        "bytes": section.bytes,
        "consistency": section.consistency,
        "skipped": len(section.skipped),
    }


class _Flow(OneShot):
    kind = "Backup"
    phases = BackupPhase
    pending = BackupPhase.PENDING
    jobs: Jobs | None = None  # the Kubernetes Jobs API, for spec.execution.mode Job
    job_settings = JobSettings(image=None)

    def fail(self, reason: str, message: str) -> Outcome:
        self.patch.stalled(reason, message).set(
            phase=BackupPhase.FAILED,
            message=message,
            error=message,
            completionTime=timestamp(self.now),
        )
        return Outcome(self.patch.build(), (Event(EventType.WARNING, reason, message),))

    def run(self, retry: int) -> Outcome:
        try:
            spec = parse_backup(self.body)
        except InvalidInput as err:
            return self.fail(CommonReason.INVALID_SPEC, err.message)
        try:
            env = environments.lookup(self.cluster, self.namespace, spec.environment)
        except InvalidInput as err:
            if err.reason == CommonReason.ENVIRONMENT_NOT_FOUND:
                return self.wait(err.reason, err.message, 5.0)
            return self.fail(BackupReason.INVALID_ENVIRONMENT, err.message)
        except TemporaryError as err:
            return self.wait(err.reason, err.message, backoff(retry, err.delay))
        if env.store is None:
            return self.fail(
                CommonReason.NO_BACKUP_STORE,
                f"Environment {env.name} has no spec.backups.store to back up into",
            )
        execution = effective(spec.execution, env.spec.execution)
        if execution.is_job:
            return run_backup_job(self, BackupJob(spec, env, execution), retry)
        message = f"backing up {env.name} into {env.store.label}"
        self.show_phase(BackupPhase.RUNNING, BackupReason.BACKING_UP, message)
        selection = spec.selection
        try:
            manifest, location = create_backup(
                env.url,
                env.store,
                environment=env.name,
                reason=spec.reason.value,
                tables=list(selection.include) or None,
                exclude=list(selection.exclude),
                progress=self.progress,
                files=env.files,
            )
        except InvalidInput as err:
            own = err.reason != InvalidInput.reason
            return self.fail(err.reason if own else BackupReason.INVALID_SELECTION, err.message)
        except TemporaryError as err:
            reason = CommonReason.UNREACHABLE
            return self.wait(reason, err.message, backoff(retry, err.delay))
        except FerryError as err:
            return self.fail(CommonReason.BACKUP_FAILED, err.message)
        return self.completed(manifest, location)

    def completed(self, manifest: Manifest, location: str, **fields: Any) -> Outcome:
        files = f", {len(manifest.files.entries)} files" if manifest.files else ""
        done = (
            f"backed up {len(manifest.members)} tables, {manifest.rows} rows{files} "
            f"({human_size(manifest.bytes)}) as {manifest.id}"
        )
        self.patch.ready(CommonReason.COMPLETED, done).set(
            phase=BackupPhase.COMPLETED,
            message=done,
            error=None,
            completionTime=timestamp(self.now),
            **manifest_status(manifest, location),
            **fields,
        )
        return Outcome(self.patch.build(), (Event(EventType.NORMAL, CommonReason.COMPLETED, done),))


def reconcile_backup(
    body: dict[str, Any],
    cluster: Cluster,
    *,
    now: dt.datetime,
    retry: int = 0,
    jobs: Jobs | None = None,
    settings: JobSettings | None = None,
) -> Outcome:
    """Take the backup a new Backup asks for; a finished Backup is left alone. In Job
    mode (``spec.execution``) ``jobs`` runs it as a Kubernetes Job (``flows.backup_job``)."""
    if BackupPhase.is_finished((body.get("status") or {}).get("phase")):
        return Outcome({})
    flow = _Flow(body, cluster, now)
    flow.jobs, flow.job_settings = jobs, settings or JobSettings.from_environ()
    return with_progress(flow.run(retry), flow.progress)


def finalize_backup(
    body: dict[str, Any], cluster: Cluster, *, now: dt.datetime, retry: int = 0
) -> Outcome:
    """The Backup object is being deleted: delete its artifact if the policy says so."""
    meta = body.get("metadata") or {}
    namespace = str(meta.get("namespace"))
    status = body.get("status") or {}
    backup_id = status.get("id")
    if not backup_id:
        return Outcome({})
    try:
        spec = parse_backup(body)
    except InvalidInput:
        return Outcome({})
    if spec.deletion_policy is not DeletionPolicy.DELETE:
        kept = f"kept backup {backup_id} (deletionPolicy Retain)"
        return _told(EventType.NORMAL, BackupReason.ARTIFACT_RETAINED, kept)
    try:
        if backup_id in pinned_backup_ids(cluster.list("Migration", namespace), now):
            pinned = f"kept backup {backup_id}: a migration's rollback window needs it"
            return _told(EventType.WARNING, BackupReason.ARTIFACT_PINNED, pinned)
        env = environments.lookup(cluster, namespace, spec.environment)
        if env.store is None:
            raise InvalidInput(f"Environment {env.name} has no backup store")
        try:
            manifest = env.store.manifest(str(backup_id), env.name)
        except InvalidInput:
            return Outcome({})  # already gone
        env.store.delete(manifest)
    except FerryError as err:
        if isinstance(err, TemporaryError) and retry + 1 < DELETE_ATTEMPTS:
            return Outcome({}, (), backoff(retry, err.delay))
        failed = f"could not delete backup {backup_id}: {err}"
        return _told(EventType.WARNING, BackupReason.ARTIFACT_KEPT, failed)
    return _told(EventType.NORMAL, BackupReason.ARTIFACT_DELETED, f"deleted backup {backup_id}")


def _told(type_: EventType, reason: BackupReason, message: str) -> Outcome:
    """An outcome that only posts one event: a deleted object has no status to write."""
    return Outcome({}, (Event(type_, reason, message),))
