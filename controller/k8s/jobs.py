"""Kubernetes Jobs and their pods, for the work Ferry runs outside its own process.

The flows build a Job's manifest (``controller.flows.jobs``) and read back its state;
this adapter only creates, reads, lists and deletes Jobs and lists their pods, as plain
dictionaries shaped like the API's JSON. API errors are classified as in
:mod:`controller.k8s.client`: not found is ``None``, a conflict on create is the Job that
exists already (a restarted operator adopts it), anything else is temporary.
"""

from __future__ import annotations

import enum
import json
import os
from dataclasses import dataclass
from typing import Any, Protocol, cast

from controller.errors import TemporaryError
from controller.k8s.client import default_api_client
from controller.k8s.job_access import access_objects

IMAGE_ENV = "FERRY_JOB_IMAGE"
PULL_POLICY_ENV = "FERRY_JOB_IMAGE_PULL_POLICY"
LIMIT_ENV = "FERRY_JOBS_PER_NAMESPACE"
DEFAULT_LIMIT = 4
#: A Job's replacement pod starts only once the pod it replaces has stopped (phase Failed).
POD_REPLACEMENT_POLICY = "Failed"


class JobPhase(enum.StrEnum):
    """A Job's state as ``status.job.phase`` shows it (Kubernetes' words, not Ferry's)."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@dataclass(frozen=True)
class JobSettings:
    """What the operator's installation says about Jobs (the chart sets the variables)."""

    image: str | None  # the operator's own image; None: Job mode is unavailable
    pull_policy: str = "IfNotPresent"
    per_namespace: int = DEFAULT_LIMIT  # concurrent Ferry Jobs per namespace

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> JobSettings:
        env = dict(os.environ if environ is None else environ)
        raw = env.get(LIMIT_ENV, "")
        limit = int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_LIMIT
        return cls(
            image=env.get(IMAGE_ENV) or None,
            pull_policy=env.get(PULL_POLICY_ENV) or "IfNotPresent",
            per_namespace=limit,
        )


class Jobs(Protocol):
    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list_jobs(self, namespace: str, label_selector: str) -> list[dict[str, Any]]: ...

    def delete_job(self, namespace: str, name: str) -> None: ...

    def job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]: ...

    def unsuspend_job(self, namespace: str, name: str) -> dict[str, Any] | None: ...


def _error(err: Exception, what: str) -> TemporaryError:
    status = getattr(err, "status", None)
    reason = getattr(err, "reason", "") or type(err).__name__
    return TemporaryError(f"Kubernetes API: {what}: {status or ''} {reason}".strip(), delay=5)


class KubeJobs:
    """:class:`Jobs` over the official Kubernetes client."""

    def __init__(self, api_client: Any = None) -> None:
        from kubernetes import client

        self.api_client = api_client or default_api_client()
        self.batch = client.BatchV1Api(self.api_client)
        self.core = client.CoreV1Api(self.api_client)
        self.rbac = client.RbacAuthorizationV1Api(self.api_client)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            result = fn(*args, **kwargs)
        except ApiException as err:
            if err.status == 404:
                return None
            raise _error(err, what) from err
        except OSError as err:
            raise _error(err, what) from err
        return self.api_client.sanitize_for_serialization(result)

    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        name = body["metadata"]["name"]
        self._grant(namespace, body)
        try:
            created = self.batch.create_namespaced_job(namespace, cast(Any, body))
        except ApiException as err:
            if err.status == 409:  # created by an earlier run of this operator: adopt it
                existing = self.get_job(namespace, name)
                if existing is not None:
                    return existing
            raise _error(err, f"creating Job {namespace}/{name}") from err
        except OSError as err:
            raise _error(err, f"creating Job {namespace}/{name}") from err
        result: dict[str, Any] = self.api_client.sanitize_for_serialization(created)
        return result

    def _grant(self, namespace: str, job: dict[str, Any]) -> None:
        """The account, Role and binding the Job's pod reports its progress with
        (``controller.k8s.job_access``); one that exists already (an earlier Job of the
        same object, or an operator that restarted) is kept."""
        from kubernetes.client.exceptions import ApiException

        create: dict[str, Any] = {
            "ServiceAccount": self.core.create_namespaced_service_account,
            "Role": self.rbac.create_namespaced_role,
            "RoleBinding": self.rbac.create_namespaced_role_binding,
        }
        for obj in access_objects(namespace, job):
            what = f"creating {obj['kind']} {namespace}/{obj['metadata']['name']}"
            if obj["kind"] == "ServiceAccount":
                obj = {**obj, **self._pull_secrets(namespace)}
            try:
                create[obj["kind"]](namespace, obj)
            except ApiException as err:
                if err.status != 409:
                    raise _error(err, what) from err
            except OSError as err:
                raise _error(err, what) from err

    def _pull_secrets(self, namespace: str) -> dict[str, Any]:
        """The namespace's ``default`` account's ``imagePullSecrets``, for the Job's own
        account: the pod pulls the image as it did when it ran as ``default``."""
        default = self._call(
            f"reading ServiceAccount {namespace}/default",
            self.core.read_namespaced_service_account,
            "default",
            namespace,
        )
        pull = (default or {}).get("imagePullSecrets")
        return {"imagePullSecrets": pull} if pull else {}

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._call(
            f"reading Job {namespace}/{name}", self.batch.read_namespaced_job, name, namespace
        )
        return result

    def list_jobs(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        result = self._call(
            f"listing Jobs in {namespace}",
            self.batch.list_namespaced_job,
            namespace,
            label_selector=label_selector,
        )
        return list((result or {}).get("items") or [])

    def delete_job(self, namespace: str, name: str) -> None:
        # Background propagation: the Job's pods go with it.
        self._call(
            f"deleting Job {namespace}/{name}",
            self.batch.delete_namespaced_job,
            name,
            namespace,
            propagation_policy="Background",
        )

    def job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        result = self._call(
            f"listing the pods of Job {namespace}/{job_name}",
            self.core.list_namespaced_pod,
            namespace,
            label_selector=f"batch.kubernetes.io/job-name={job_name}",
        )
        return list((result or {}).get("items") or [])

    def unsuspend_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Let a Job created suspended (``spec.suspend``) start its pod; None: it is gone."""
        result: dict[str, Any] | None = self._call(
            f"unsuspending Job {namespace}/{name}",
            self.batch.patch_namespaced_job,
            name,
            namespace,
            {"spec": {"suspend": False}},
        )
        return result


@dataclass(frozen=True)
class JobState:
    """What a Job and its pods say: the phase, the pods started, the newest result."""

    name: str
    phase: str
    attempts: int
    result: dict[str, Any] | None  # the newest terminated container's message, parsed
    why: str  # for a failed Job: its condition and how the last pod ended
    deleting: bool = False

    @property
    def status(self) -> dict[str, Any]:
        return {"name": self.name, "phase": self.phase, "attempts": self.attempts}


def _condition(job: dict[str, Any], type_: str) -> dict[str, Any] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def _terminated(pod: dict[str, Any]) -> dict[str, Any] | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        state = (status.get("state") or {}).get("terminated")
        if state:
            return dict(state)
    return None


def parse_result(message: str | None) -> dict[str, Any] | None:
    """The container's JSON result, or None when it wrote none (killed, OOM)."""
    if not message:
        return None
    try:
        data = json.loads(message)
    except ValueError:
        return None
    return data if isinstance(data, dict) and isinstance(data.get("outcome"), str) else None


def job_state(job: dict[str, Any], pods: list[dict[str, Any]]) -> JobState:
    name = str((job.get("metadata") or {}).get("name"))
    status = job.get("status") or {}
    ended = [
        (str((p.get("metadata") or {}).get("creationTimestamp") or ""), t)
        for p in pods
        if (t := _terminated(p)) is not None
    ]
    last = max(ended, key=lambda item: item[0])[1] if ended else None
    result = parse_result(last.get("message")) if last else None
    # Pods started: a deleted pod leaves the list at once, but the Job counts it failed.
    started = sum(int(status.get(k) or 0) for k in ("succeeded", "failed", "active"))
    attempts = max(len(pods), started)
    deleting = bool((job.get("metadata") or {}).get("deletionTimestamp"))
    if _condition(job, "Complete") or _condition(job, "SuccessCriteriaMet"):
        return JobState(name, JobPhase.SUCCEEDED, attempts, result, "", deleting)
    failed = _condition(job, "Failed")
    if failed is None and _condition(job, "FailureTarget"):
        # Failing, but its pods are still stopping (Kubernetes sets Failed once they
        # have): a pod deleted as it finished may yet publish its backup and say so.
        phase = JobPhase.RUNNING if int(status.get("active") or 0) else JobPhase.PENDING
        return JobState(name, phase, attempts, result, "", deleting)
    if failed:
        why = f"{failed.get('reason') or 'Failed'}: {failed.get('message') or ''}".rstrip(": ")
        if last is not None:
            ended_as = last.get("reason") or "Error"
            why += f"; the last pod ended {ended_as} (exit {last.get('exitCode')})"
        return JobState(name, JobPhase.FAILED, attempts, result, why, deleting)
    phase = JobPhase.RUNNING if int(status.get("active") or 0) else JobPhase.PENDING
    return JobState(name, phase, attempts, result, "", deleting)


def pod_stopped(pod: dict[str, Any]) -> bool:
    """The pod will run nothing more: it ended (Succeeded, Failed; its containers
    terminated), or it is being deleted and never started a container."""
    status = pod.get("status") or {}
    if status.get("phase") in ("Succeeded", "Failed"):
        return True
    states = [s.get("state") or {} for s in status.get("containerStatuses") or []]
    if states and all("terminated" in s for s in states):
        return True
    started = any("running" in s or "terminated" in s for s in states)
    return bool((pod.get("metadata") or {}).get("deletionTimestamp")) and not started


def is_active(job: dict[str, Any]) -> bool:
    return not any(
        _condition(job, t) for t in ("Complete", "Failed", "SuccessCriteriaMet", "FailureTarget")
    )


def is_suspended(job: dict[str, Any]) -> bool:
    """The Job was created suspended and not let go yet: it holds a slot, runs no pod."""
    return bool((job.get("spec") or {}).get("suspend"))
