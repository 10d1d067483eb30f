"""An in-memory Jobs API whose pods really run: each "pod" runs the Job's container
command (``ferry …``, ``controller.cli.main``) in this process, with the container's
environment resolved from the fake cluster's Secrets, and ends the way the kubelet and
the Job controller would record it (termination message, exit code, Job conditions)."""

from __future__ import annotations

import copy
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.cli.main import main
from controller.errors import TemporaryError
from controller.flows.application import release
from controller.flows.jobs import job_name
from controller.flows.outcome import Outcome
from controller.k8s.job_access import access_objects
from tests.unit.fake_cluster import FakeCluster


class FakeJobs:
    def __init__(self, cluster: FakeCluster, result_dir: Path) -> None:
        self.cluster = cluster
        self.jobs: dict[tuple[str, str], dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.calls: list[tuple[str, str]] = []
        self.result_dir = result_dir
        self.unanswered = False  # every call fails as an API server that does not answer
        # Each Job's owner's status as the API held it when the Job was created.
        self.status_at_create: dict[str, dict[str, Any]] = {}
        # What KubeJobs creates with each Job for its pod's progress token, by (kind, name).
        self.access: dict[tuple[str, str], dict[str, Any]] = {}

    def _check(self) -> None:
        if self.unanswered:
            raise TemporaryError("Kubernetes API: listing Jobs in ns: 503", delay=5)

    def create_job(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        name = body["metadata"]["name"]
        self.calls.append(("create", name))
        for obj in access_objects(namespace, body):  # kept when it exists, as KubeJobs does
            self.access.setdefault((obj["kind"], obj["metadata"]["name"]), copy.deepcopy(obj))
        if (namespace, name) in self.jobs:
            return copy.deepcopy(self.jobs[(namespace, name)])  # adopted, as KubeJobs does
        for owner in body["metadata"].get("ownerReferences") or []:  # other Jobs have none
            held = self.cluster.get(owner["kind"], namespace, owner["name"]) or {}
            self.status_at_create[name] = copy.deepcopy(held.get("status") or {})
        job = copy.deepcopy(body)
        job["metadata"]["namespace"] = namespace
        # A suspended Job starts no pod (the Job controller says so in a condition).
        suspended = {"conditions": [_true("Suspended", "JobSuspended")]}
        job["status"] = suspended if job.get("spec", {}).get("suspend") else {"active": 1}
        self.jobs[(namespace, name)] = job
        self.pods[(namespace, name)] = []
        return copy.deepcopy(job)

    def get_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        job = self.jobs.get((namespace, name))
        return copy.deepcopy(job) if job is not None else None

    def list_jobs(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        self._check()
        key, _, value = label_selector.partition("=")
        return [
            copy.deepcopy(j)
            for (ns, _), j in self.jobs.items()
            if ns == namespace and j["metadata"]["labels"].get(key) == value
        ]

    def delete_job(self, namespace: str, name: str) -> None:
        self._check()
        self.calls.append(("delete", name))
        self.jobs.pop((namespace, name), None)
        self.pods.pop((namespace, name), None)

    def job_pods(self, namespace: str, job_name: str) -> list[dict[str, Any]]:
        self._check()
        return copy.deepcopy(self.pods.get((namespace, job_name), []))

    def unsuspend_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        self._check()
        self.calls.append(("unsuspend", name))
        job = self.jobs.get((namespace, name))
        if job is None:
            return None
        if job["spec"].get("suspend"):
            job["spec"]["suspend"] = False
            job["status"] = {"active": 1}
        return copy.deepcopy(job)

    # What the node would do -------------------------------------------------------

    def only(self) -> dict[str, Any]:
        assert len(self.jobs) == 1, list(self.jobs)
        return next(iter(self.jobs.values()))

    def container_env(self, job: dict[str, Any]) -> dict[str, str]:
        container = job["spec"]["template"]["spec"]["containers"][0]
        env: dict[str, str] = {}
        for var in container["env"]:
            if "value" in var:
                env[var["name"]] = var["value"]
            else:
                ref = var["valueFrom"]["secretKeyRef"]
                env[var["name"]] = self.cluster.secrets[ref["name"]][ref["key"]]
        return env

    def run_pod(
        self, job: dict[str, Any], monkeypatch: pytest.MonkeyPatch, killed: int | None = None
    ) -> None:
        """One pod of ``job`` runs the container's command to its end; ``killed``: the
        pod is killed by that signal as the command returns (its result already
        written), and ends as the kubelet records that, with exit ``128 + killed``."""
        namespace, name = job["metadata"]["namespace"], job["metadata"]["name"]
        assert not self.jobs[(namespace, name)]["spec"].get("suspend"), f"{name} is suspended"
        result = self.result_dir / f"{name}-{len(self.pods[(namespace, name)])}"
        with monkeypatch.context() as env:
            for key, value in self.container_env(job).items():
                env.setenv(key, value)
            env.setenv("FERRY_RESULT_FILE", str(result))
            # The pod's progress token patches the object's status in this API (the
            # token's RBAC is proven against a real API server: tests/e2e).
            env.setattr("controller.cli.progress.TokenStatusWriter", lambda: self.cluster)
            code = main(job["spec"]["template"]["spec"]["containers"][0]["args"])
        message = result.read_text() if result.exists() else ""
        if killed is not None:
            code = 128 + killed
        self.end_pod(namespace, name, code, "Completed" if code == 0 else "Error", message)

    def end_pod(self, namespace: str, name: str, code: int, reason: str, message: str) -> None:
        """A pod of the Job ends (``OOMKilled`` and no message: the kernel killed it)."""
        job = self.jobs[(namespace, name)]
        pods = self.pods[(namespace, name)]
        pods.append(
            {
                "metadata": {"name": f"{name}-{len(pods)}", "creationTimestamp": f"t{len(pods)}"},
                "status": {
                    "containerStatuses": [
                        {
                            "state": {
                                "terminated": {
                                    "exitCode": code,
                                    "reason": reason,
                                    "message": message,
                                }
                            }
                        }
                    ]
                },
            }
        )
        status = job["status"]
        if code == 0:
            failed = {"failed": status["failed"]} if status.get("failed") else {}
            job["status"] = {"succeeded": 1, **failed, "conditions": [_true("Complete")]}
            return
        status["failed"] = int(status.get("failed") or 0) + 1
        if _fails_at_once(job, code):  # its podFailurePolicy says FailJob for this code
            job["status"] = {
                "failed": status["failed"],
                "conditions": [_true("Failed", "PodFailurePolicy", f"exit code {code}")],
            }
            return
        if status["failed"] > job["spec"]["backoffLimit"]:
            job["status"] = {
                "failed": status["failed"],
                "conditions": [
                    _true(
                        "Failed",
                        "BackoffLimitExceeded",
                        "Job has reached the specified backoff limit",
                    )
                ],
            }


def _fails_at_once(job: dict[str, Any], code: int) -> bool:
    rules = (job["spec"].get("podFailurePolicy") or {}).get("rules") or []
    return any(
        rule["action"] == "FailJob" and code in rule["onExitCodes"]["values"] for rule in rules
    )


def _true(type_: str, reason: str = "", message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": "True", "reason": reason, "message": message}


def secret_free(job: dict[str, Any], secrets: dict[str, dict[str, str]]) -> list[str]:
    """Every secret value that appears anywhere in the Job's manifest (none should)."""
    text = repr(job)
    return [v for data in secrets.values() for v in data.values() if v in text]


def assert_started(jobs: FakeJobs, outcome: Outcome, kind: str, name: str) -> dict[str, Any]:
    """The first reconcile of ``kind`` ``name`` in Job mode started its one Job, owned by
    the object and named after its UID, and says so (``JobRunning``, ``status.job``)."""
    job = jobs.only()
    job_id = job["metadata"]["name"]
    assert job_id == job_name(kind, name, f"uid-{kind}-{name}")
    ready = next(c for c in outcome.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "JobRunning")
    assert outcome.status["job"] == {"name": job_id, "phase": "Running", "attempts": 1}
    assert outcome.retry_after == 5.0
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == (kind, name, f"uid-{kind}-{name}")
    return job


def unanswered_url() -> str:
    """A PostgreSQL URL on a local port nobody listens on: the CLI exits 75 on it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql+psycopg://app@127.0.0.1:{port}/app"


def assert_stopped_before_resumed(
    jobs: FakeJobs, body: dict[str, Any], apps: Any, stop: Callable[[], str | None]
) -> None:
    """An object deleted while its only Job's pod runs: ``stop()`` (the deletion
    handler's first step) deletes the Job and says to wait while the pod runs, and the
    application (``Deployment/web``, quiesced from 2 replicas) is resumed only after."""
    name = jobs.only()["metadata"]["name"]
    running = {"metadata": {"name": f"{name}-0"}, "status": {"phase": "Running"}}
    jobs.pods[("ns", name)].append(running)
    kept = dict(jobs.pods)
    jobs.delete_job = lambda ns, n: jobs.calls.append(("delete", n))  # type: ignore[method-assign]
    waiting = stop()
    assert waiting is not None and f"{name}-0" in waiting
    assert ("delete", name) in jobs.calls and apps.replicas["Deployment/web"] == 0
    running["status"] = {"phase": "Failed"}  # the pod stopped
    jobs.pods = kept
    assert stop() is None
    assert release(body, apps) == "Deployment/web back at 2 replicas"
    assert apps.replicas["Deployment/web"] == 2
