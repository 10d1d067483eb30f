"""Heavy work as Kubernetes Jobs (``spec.execution.mode: Job``): build, adopt, read back.

A Job runs the operator's own image with the command the CLI runs (``ferry backup
create``), so both paths share one code path. What the container needs comes from the
object's Secrets through ``valueFrom`` and Secret volumes, never as values in the Job's
spec; its outcome comes back through the container's termination message (a small JSON
object, ``controller.cli.result``) and the backup store, never through its logs.

The Job's name is derived from the object's UID, so an operator that restarts while a
Job runs finds and adopts it instead of starting a second one. The operator's setting
``FERRY_JOBS_PER_NAMESPACE`` caps the Ferry Jobs that run at once in a namespace; the
rest wait in creation order (``JobQueued``). A slot is counted and taken under one lock
(``take_slot``): the Job is created there, suspended when its object still has to
quiesce its application (which must not hold the lock), and let go afterwards. A
suspended Job counts as a slot; one whose owner is gone is removed when slots are
counted.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from controller.api.backup import BackupPhase, BackupSpec
from controller.api.environment import EnvironmentSpec
from controller.api.environment_files import FilesSpec
from controller.api.execution import ExecutionSpec
from controller.api.migration import MigrationPhase
from controller.api.phases import Phase
from controller.api.reasons import BackupReason
from controller.api.resources import API_VERSION
from controller.api.restore import RestorePhase
from controller.db.connect import build_url
from controller.db.urls import redact
from controller.errors import InvalidInput, TemporaryError
from controller.flows.status import ready_reason
from controller.k8s.client import Cluster
from controller.k8s.job_access import progress_pod, progress_target
from controller.k8s.jobs import (
    POD_REPLACEMENT_POLICY,
    Jobs,
    JobSettings,
    JobState,
    is_active,
    is_suspended,
)

MANAGED_BY = "app.kubernetes.io/managed-by"
KIND_LABEL = "ferry.dev/job-for"
OBJECT_LABEL = "ferry.dev/job-object"
SELECTOR = f"{MANAGED_BY}=ferry"
RESULT_PATH = "/dev/termination-log"
STORE_KEY_DIR = "/var/run/ferry/store-key"
OPERATOR_UID = 10001  # the image's user (Dockerfile), as the operator's pod runs
_UNSAFE = re.compile(r"[^a-z0-9-]")
JOB_KINDS = (
    "Backup",
    "Restore",
    "Migration",
)  # the kinds whose work runs as Jobs, sharing the slots


def job_name(kind: str, name: str, uid: str) -> str:
    """``ferry-backup-<name>-<uid hash>``: the same for one object across operator
    restarts, different for a new object of the same name; short enough for the pods'
    names and the ``job-name`` label."""
    digest = hashlib.sha256(uid.encode()).hexdigest()[:8]
    base = _UNSAFE.sub("-", f"ferry-{kind.lower()}-{name}")[:43].rstrip("-")
    return f"{base}-{digest}"


def _secret_env(var: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": var, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def database_env(spec: EnvironmentSpec, prefix: str = "FERRY_DATABASE") -> list[dict[str, Any]]:
    """``FERRY_DATABASE_URL`` (and ``FERRY_DATABASE_PASSWORD``) from the Environment's
    Secrets; a literal URL only when it holds no password. ``prefix``: other names
    (a migration's source is ``FERRY_SOURCE_DATABASE_URL``)."""
    db = spec.database
    if db.url_from is not None:
        return [_secret_env(f"{prefix}_URL", db.url_from.name, db.url_from.key)]
    if db.url is not None:
        if redact(db.url) != db.url:
            raise InvalidInput(
                "spec.database.url holds a password, which a Job's spec would show: "
                "use urlFrom or passwordFrom for Job mode",
                reason=BackupReason.JOB_UNAVAILABLE,
            )
        return [{"name": f"{prefix}_URL", "value": db.url}]
    url = build_url(
        db.dialect.value, host=db.host, port=db.port, database=db.name, user=db.user, password=None
    )
    env = [{"name": f"{prefix}_URL", "value": url}]
    if db.password_from is not None:
        ref = db.password_from
        env.append(_secret_env(f"{prefix}_PASSWORD", ref.name, ref.key))
    return env


@dataclass(frozen=True)
class StoreMount:
    """The ``--store`` argument and what the container needs to reach the store."""

    argument: str
    env: tuple[dict[str, Any], ...] = ()
    volumes: tuple[dict[str, Any], ...] = ()
    mounts: tuple[dict[str, Any], ...] = ()


def job_text(state: JobState, execution: ExecutionSpec) -> str:
    """``Job NAME (running, pod 2 of 3)``: where a Job-mode object's work stands."""
    pods = f"pod {max(state.attempts, 1)} of {execution.backoff_limit + 1}"
    return f"Job {state.name} ({state.phase.lower()}, {pods})"


def with_files(
    mount: StoreMount, files: FilesSpec, execution: ExecutionSpec, subject: str, read_only: bool
) -> tuple[StoreMount, list[str]]:
    """``mount`` plus the claim that holds the application's files (``spec.files.path``),
    mounted at that path, and the CLI's ``--files PATH`` with its exclusions. Only a
    directory root on ``execution.filesVolumeClaim`` can be carried: an S3 prefix, or no
    claim, is refused (``JobUnavailable``) before anything runs. ``subject`` starts the
    refusal (``backup X holds files and Environment E``)."""
    if files.path is None:
        raise InvalidInput(
            f"{subject}'s spec.files is an S3 prefix, which a Job does not reach yet; run "
            "it in process (spec.execution.mode: InProcess)",
            reason=BackupReason.JOB_UNAVAILABLE,
        )
    if execution.files_volume_claim is None:
        raise InvalidInput(
            f"{subject} keeps its files in {files.path}: Job mode needs "
            "spec.execution.filesVolumeClaim, the claim that holds that directory",
            reason=BackupReason.JOB_UNAVAILABLE,
        )
    claim: dict[str, Any] = {"claimName": execution.files_volume_claim}
    volume_mount: dict[str, Any] = {"name": "files", "mountPath": files.path}
    if read_only:
        claim["readOnly"] = volume_mount["readOnly"] = True
    volume = {"name": "files", "persistentVolumeClaim": claim}
    args = ["--files", files.path, *(f"--files-exclude={p}" for p in files.exclude)]
    carried = replace(mount, volumes=(*mount.volumes, volume), mounts=(*mount.mounts, volume_mount))
    return carried, args


def store_mount(spec: EnvironmentSpec, execution: ExecutionSpec, s3_keys: set[str]) -> StoreMount:
    """How the Job's pod reaches the Environment's store. ``s3_keys`` are the keys of the
    S3 credentials Secret (their names only: the values stay in the Secret)."""
    store = spec.backup_store
    assert store is not None
    env: list[dict[str, Any]] = []
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    if store.key_from is not None:
        items = [{"key": store.key_from.key, "path": "keyring"}]
        volumes.append(
            {"name": "store-key", "secret": {"secretName": store.key_from.name, "items": items}}
        )
        mounts.append({"name": "store-key", "mountPath": STORE_KEY_DIR, "readOnly": True})
        env.append({"name": "FERRY_STORE_KEY_FILE", "value": f"{STORE_KEY_DIR}/keyring"})
    if store.path is not None:
        if execution.store_volume_claim is None:
            raise InvalidInput(
                f"the store {store.path} is a directory: Job mode needs "
                "spec.execution.storeVolumeClaim, the claim that holds it",
                reason=BackupReason.JOB_UNAVAILABLE,
            )
        claim = {"claimName": execution.store_volume_claim}
        volumes.append({"name": "store", "persistentVolumeClaim": claim})
        mounts.append({"name": "store", "mountPath": store.path})
        return StoreMount(store.path, tuple(env), tuple(volumes), tuple(mounts))
    s3 = store.s3
    assert s3 is not None
    env += _s3_env(s3.credentials_secret, s3_keys, s3.endpoint, s3.region)
    prefix = f"/{s3.prefix.strip('/')}" if s3.prefix.strip("/") else ""
    return StoreMount(f"s3://{s3.bucket}{prefix}", tuple(env), tuple(volumes), tuple(mounts))


def _s3_env(
    secret: str | None, keys: set[str], endpoint: str | None, region: str | None
) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = []
    if secret is not None:
        for var, alias in (
            ("AWS_ACCESS_KEY_ID", "accessKeyId"),
            ("AWS_SECRET_ACCESS_KEY", "secretAccessKey"),
        ):
            key = var if var in keys else alias if alias in keys else None
            if key is not None:
                env.append(_secret_env(var, secret, key))
    if endpoint:
        env.append({"name": "AWS_ENDPOINT_URL", "value": endpoint})
    if region:
        env.append({"name": "AWS_DEFAULT_REGION", "value": region})
    return env


def backup_args(spec: BackupSpec, environment: str, store: str, backup_id: str) -> list[str]:
    """The CLI's arguments: names and choices only, nothing secret; the backup's ID is
    the operator's (``flows.backup_job``), so the store can be asked for it."""
    args = ["backup", "create", "--store", store, "--environment", environment]
    args += ["--id", backup_id]
    args += ["--reason", spec.reason.value]
    for flag, names in (
        ("--tables", spec.selection.include),
        ("--exclude", spec.selection.exclude),
    ):
        if names:
            args += [flag, ",".join(names)]
    return args


def _container(
    settings: JobSettings, args: list[str], env: list[dict[str, Any]], execution: ExecutionSpec
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if execution.requests:
        resources["requests"] = dict(execution.requests)
    if execution.limits:
        resources["limits"] = dict(execution.limits)
    return {
        "name": "ferry",
        "image": settings.image,
        "imagePullPolicy": settings.pull_policy,
        "args": args,
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "TMPDIR", "value": "/tmp"},
            {"name": "FERRY_RESULT_FILE", "value": RESULT_PATH},
            *env,
        ],
        "resources": resources,
        "terminationMessagePath": RESULT_PATH,
        "terminationMessagePolicy": "File",  # never FallbackToLogsOnError: not the logs
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }


@dataclass(frozen=True)
class JobRequest:
    """One Job to run for one object."""

    kind: str
    body: dict[str, Any]  # the object the Job works for (its owner)
    args: list[str]
    env: list[dict[str, Any]]
    store: StoreMount
    execution: ExecutionSpec


def job_manifest(request: JobRequest, settings: JobSettings) -> dict[str, Any]:
    meta = request.body.get("metadata") or {}
    name = job_name(request.kind, str(meta.get("name")), str(meta.get("uid")))
    labels = {MANAGED_BY: "ferry", KIND_LABEL: request.kind.lower(), OBJECT_LABEL: name}
    execution = request.execution
    container = _container(settings, request.args, [*request.env, *request.store.env], execution)
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}, *request.store.mounts]
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        # No API access but the progress token below (``controller.k8s.job_access``).
        "automountServiceAccountToken": False,
        # The pause container is PID 1, not the CLI: a PID 1 ignores a SIGTERM it has
        # no handler for yet (one that comes while Python starts), so a deleted pod
        # would run its backup on until the grace period's SIGKILL.
        "shareProcessNamespace": True,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": OPERATOR_UID,
            "runAsGroup": OPERATOR_UID,
            "fsGroup": OPERATOR_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [{"name": "tmp", "emptyDir": {}}, *request.store.volumes],
    }
    target = progress_target(request.kind, str(meta.get("namespace")), str(meta.get("name")))
    progress_pod(target, execution.service_account_name or name, container, pod)
    owner = {
        "apiVersion": API_VERSION,
        "kind": request.kind,
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": True,
        "blockOwnerDeletion": False,
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels, "ownerReferences": [owner]},
        "spec": {
            "backoffLimit": execution.backoff_limit,
            # One pod at a time: a replacement starts only once the previous pod has
            # stopped, so two writers of the backup's one ID never run side by side.
            "podReplacementPolicy": POD_REPLACEMENT_POLICY,
            "activeDeadlineSeconds": execution.active_deadline_seconds,
            "template": {"metadata": {"labels": labels}, "spec": pod},
        },
    }


def queued_for_slot(
    cluster: Cluster, jobs: Jobs, settings: JobSettings, body: dict[str, Any]
) -> str | None:
    """Why this object waits for a Job slot, or None when it may start one now. Slots go
    in creation order, whatever the kind: an object queued earlier takes a free slot
    first."""
    meta = body.get("metadata") or {}
    namespace = str(meta.get("namespace"))
    active = _holding(cluster, jobs, namespace)
    me = _order(body)
    earlier = sum(
        1
        for kind in JOB_KINDS
        for other in cluster.list(kind, namespace)
        if ready_reason(other.get("status") or {}) == BackupReason.JOB_QUEUED and _order(other) < me
    )
    if active + earlier < settings.per_namespace:
        return None
    return (
        f"namespace {namespace} runs {active} Ferry Job(s), its limit is "
        f"{settings.per_namespace}; {earlier} queued before this one"
    )


def _order(body: dict[str, Any]) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


# The operator's workers reconcile side by side: two that counted the same free slot
# would both take it. Counting and creating happen under this lock, for every kind.
_SLOTS = threading.Lock()


def take_slot(
    cluster: Cluster,
    jobs: Jobs,
    settings: JobSettings,
    body: dict[str, Any],
    manifest: dict[str, Any],
) -> tuple[dict[str, Any] | None, str | None]:
    """Count the namespace's slots and create the Job in one, under the lock: the Job
    created (or adopted), or None and why it is queued (``queued_for_slot``)."""
    namespace = str((body.get("metadata") or {}).get("namespace"))
    with _SLOTS:
        queued = queued_for_slot(cluster, jobs, settings, body)
        if queued:
            return None, queued
        return jobs.create_job(namespace, manifest), None


def suspended(manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` created suspended: the Job holds its slot but starts no pod until
    ``Jobs.unsuspend_job`` (its object quiesces its application in between)."""
    held = copy.deepcopy(manifest)
    held["spec"]["suspend"] = True
    return held


def let_go(jobs: Jobs, namespace: str, name: str, quiesce: Callable[[], None]) -> dict[str, Any]:
    """While the suspended Job ``name`` holds its slot, ``quiesce()`` the application
    (outside the slots' lock), then let the Job start its pod: the Job as it is now. A
    quiesce that fails deletes the Job, which never ran a pod: its slot is free again
    (or, when the API does not answer, the next call finds it suspended)."""
    try:
        quiesce()
    except Exception:
        with contextlib.suppress(TemporaryError):
            jobs.delete_job(namespace, name)
        raise
    started = jobs.unsuspend_job(namespace, name)
    if started is None:
        raise TemporaryError(f"Job {name} was deleted before it started", delay=10.0)
    return started


def _holding(cluster: Cluster, jobs: Jobs, namespace: str) -> int:
    """The Ferry Jobs that hold a slot in ``namespace``: every unfinished one, suspended
    or not. A suspended one whose owner is gone (deleted between the Job's creation and
    its start) or finished (ended by something else before it let the Job go) never
    starts: it is removed here and holds nothing."""
    held = 0
    for job in jobs.list_jobs(namespace, SELECTOR):
        if not is_active(job):
            continue
        if is_suspended(job) and not _owner_waits(cluster, namespace, job):
            name = str((job.get("metadata") or {}).get("name"))
            jobs.delete_job(namespace, name)
            continue
        held += 1
    return held


_PHASES: dict[str, type[Phase]] = {
    "Backup": BackupPhase,
    "Restore": RestorePhase,
    "Migration": MigrationPhase,
}


def _owner_waits(cluster: Cluster, namespace: str, job: dict[str, Any]) -> bool:
    """Whether the object that owns ``job`` exists (the same UID) and is not finished."""
    for owner in (job.get("metadata") or {}).get("ownerReferences") or []:
        kind = str(owner.get("kind"))
        if kind in _PHASES:
            found = cluster.get(kind, namespace, str(owner["name"])) or {}
            if (found.get("metadata") or {}).get("uid") != owner.get("uid"):
                return False
            return not _PHASES[kind].is_finished((found.get("status") or {}).get("phase"))
    return True  # not one of Ferry's objects' Jobs: left alone
