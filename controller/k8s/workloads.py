"""The application's workload and health check: scale, pods, an HTTP GET.

An Environment's ``spec.application`` names a Deployment or StatefulSet. Ferry reads and
writes only its ``scale`` subresource (the replica count), lists the pods its selector
matches, and asks its health URL. These are the only calls the quiesce/resume steps make,
behind the :class:`Workloads` protocol so the flows are tested against a fake as well as
against a real API server. API errors are classified as in ``client.py``: not found is
``None``; anything else is temporary.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Protocol

from controller.errors import InvalidInput, TemporaryError

REQUEST_TIMEOUT = 5.0  # one health GET; the check's own timeout spans many


@dataclass(frozen=True)
class Scale:
    replicas: int  # spec.replicas as the scale subresource reports it
    selector: str  # status.selector: the label selector of the workload's pods


@dataclass(frozen=True)
class Health:
    ok: bool
    detail: str  # "HTTP 200", "HTTP 503", "connection refused" … never a body


class Workloads(Protocol):
    def scale(self, kind: str, namespace: str, name: str) -> Scale | None: ...

    def set_replicas(self, kind: str, namespace: str, name: str, replicas: int) -> bool:
        """False when the workload does not exist."""
        ...

    def pods(self, namespace: str, selector: str) -> list[str]: ...

    def health(self, url: str, timeout: float) -> Health: ...


def http_health(url: str, timeout: float) -> Health:
    """One GET of ``url``: healthy on any 2xx answer. Redirects are not followed (a
    health endpoint answers itself), and the body is never read into a message."""
    if not url.startswith(("http://", "https://")):
        raise InvalidInput(f"health URL must be http or https, got {url!r}")

    class _NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *_: Any, **__: Any) -> None:
            return None

    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as response:  # the scheme is checked above
            status = int(response.status)
    except urllib.error.HTTPError as err:
        status = err.code
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or type(err).__name__
        return Health(False, str(reason)[:200])
    return Health(200 <= status < 300, f"HTTP {status}")


class KubeWorkloads:
    """:class:`Workloads` over the official Kubernetes client."""

    def __init__(self, api_client: Any = None) -> None:
        from kubernetes import client, config

        if api_client is None:
            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            api_client = client.ApiClient()
        self.apps = client.AppsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args)
        except ApiException as err:
            if err.status == 404:
                return None
            raise TemporaryError(
                f"Kubernetes API: {what}: {err.status or ''} {err.reason or ''}".strip(), delay=5
            ) from err
        except OSError as err:
            raise TemporaryError(f"Kubernetes API: {what}: {err}", delay=5) from err

    def _scale_api(self, kind: str, verb: str) -> Any:
        suffix = "deployment_scale" if kind == "Deployment" else "stateful_set_scale"
        return getattr(self.apps, f"{verb}_namespaced_{suffix}")

    def scale(self, kind: str, namespace: str, name: str) -> Scale | None:
        found = self._call(
            f"reading the scale of {kind} {namespace}/{name}",
            self._scale_api(kind, "read"),
            name,
            namespace,
        )
        if found is None:
            return None
        return Scale(int(found.spec.replicas or 0), str(found.status.selector or ""))

    def set_replicas(self, kind: str, namespace: str, name: str, replicas: int) -> bool:
        done = self._call(
            f"scaling {kind} {namespace}/{name} to {replicas}",
            self._scale_api(kind, "patch"),
            name,
            namespace,
            {"spec": {"replicas": replicas}},
        )
        return done is not None

    def pods(self, namespace: str, selector: str) -> list[str]:
        if not selector:  # never list every pod of the namespace as the workload's
            raise InvalidInput("the workload reports no pod selector")
        from kubernetes import client

        found: client.V1PodList | None = self._call(
            f"listing the pods of {selector} in {namespace}",
            lambda: self.core.list_namespaced_pod(namespace, label_selector=selector),
        )
        return [str(p.metadata.name) for p in (found.items if found else []) if p.metadata]

    def health(self, url: str, timeout: float) -> Health:
        return http_health(url, timeout)
