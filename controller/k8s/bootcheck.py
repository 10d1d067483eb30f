"""The boot check's pods: the workload's pod template, one Pod, its state, deletion.

A boot check (controller/flows/bootcheck.py) reads the declared workload's pod template,
creates one Pod from it, watches its phase and IP, asks its health endpoint and deletes
it. These are the only calls it makes, behind :class:`BootPods`, so the flow is tested
against a fake as well as against a real API server. Errors are classified as in
``workloads.py``: not found is ``None``; anything else is temporary.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from controller.errors import InvalidInput, TemporaryError
from controller.k8s.workloads import Health, KubeWorkloads, Workloads

REFUSALS = (400, 403, 404, 422)  # invalid pod, forbidden, no namespace


def _api_message(err: Any) -> str:
    """The API server's own message (a Status object), never anything else of the body."""
    try:
        message = str(json.loads(err.body or "{}").get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    return message[:300]


@dataclass(frozen=True)
class PodState:
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    ip: str | None  # status.podIP once the pod has one
    stopped: str | None  # why a container ended ("exit code 1", "OOMKilled"), or None

    @property
    def ended(self) -> str | None:
        """Why the pod will never answer (a container ended, the pod finished), or None."""
        if self.stopped:
            return self.stopped
        return f"the pod {self.phase}" if self.phase in ("Failed", "Succeeded") else None


@runtime_checkable
class BootPods(Workloads, Protocol):
    def pod_template(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The workload's ``spec.template`` as plain JSON data, or None."""
        ...

    def create_pod(self, namespace: str, body: dict[str, Any]) -> str | None:
        """None once created; why the API server refused it (invalid, forbidden)."""
        ...

    def pod_state(self, namespace: str, name: str) -> PodState | None: ...

    def delete_pods(self, namespace: str, selector: str) -> list[str]:
        """Delete every pod ``selector`` matches, at once; their names."""
        ...

    def health(self, url: str, timeout: float) -> Health: ...


def _stopped(status: Any) -> str | None:
    for c in (status.container_statuses or []) if status else []:
        term = c.state.terminated if c.state else None
        if term is not None:
            return f"container {c.name} ended: {term.reason or 'exit code'} {term.exit_code}"
        if (c.restart_count or 0) > 0:
            return f"container {c.name} restarted {c.restart_count} times"
    return None


class KubeBootPods(KubeWorkloads):
    """:class:`BootPods` (and :class:`Workloads`) over the official Kubernetes client."""

    def pod_template(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        read = (
            self.apps.read_namespaced_deployment
            if kind == "Deployment"
            else self.apps.read_namespaced_stateful_set
        )
        found = self._call(f"reading {kind} {namespace}/{name}", read, name, namespace)
        if found is None:
            return None
        data: dict[str, Any] = self.core.api_client.sanitize_for_serialization(found.spec.template)
        return data

    def create_pod(self, namespace: str, body: dict[str, Any]) -> str | None:
        from kubernetes.client.exceptions import ApiException

        name = body["metadata"]["name"]
        try:
            pod: Any = body  # the client serializes a plain dict as it is
            self.core.create_namespaced_pod(namespace, pod)
        except ApiException as err:
            if err.status in REFUSALS:  # the same pod would be refused again: an answer
                return f"{err.status} {err.reason or ''}: {_api_message(err)}".strip()
            raise TemporaryError(
                f"Kubernetes API: creating Pod {namespace}/{name}: {err.status} {err.reason}",
                delay=5,
            ) from err
        except OSError as err:
            raise TemporaryError(f"Kubernetes API: creating Pod {namespace}/{name}: {err}") from err
        return None

    def pod_state(self, namespace: str, name: str) -> PodState | None:
        found = self._call(
            f"reading Pod {namespace}/{name}", self.core.read_namespaced_pod, name, namespace
        )
        if found is None:
            return None
        status = found.status
        return PodState(
            str(status.phase or "Pending") if status else "Pending",
            (status.pod_ip or None) if status else None,
            _stopped(status),
        )

    def delete_pods(self, namespace: str, selector: str) -> list[str]:
        if not selector:
            raise InvalidInput("refusing to delete pods without a selector")
        found = self._call(
            f"listing the pods of {selector} in {namespace}",
            lambda: self.core.list_namespaced_pod(namespace, label_selector=selector),
        )
        names = [str(p.metadata.name) for p in (found.items if found else []) if p.metadata]
        for name in names:
            self._call(
                f"deleting Pod {namespace}/{name}",
                lambda n=name: self.core.delete_namespaced_pod(
                    n, namespace, grace_period_seconds=0
                ),
            )
        return names
