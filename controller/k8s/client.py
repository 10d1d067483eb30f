"""The only module that talks to the Kubernetes API (besides Kopf's own machinery).

Reconcile code receives a :class:`Cluster` and never opens API clients itself, so it is
testable against a real API server and against a fake alike. API errors are classified
here: not found is ``None``; anything else is temporary and retried.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any, Protocol

from controller.api.resources import GROUP, VERSION
from controller.errors import InvalidInput, TemporaryError

PLURALS = {
    "Environment": "environments",
    "Backup": "backups",
    "BackupSchedule": "backupschedules",
    "Restore": "restores",
    "Migration": "migrations",
}


class Cluster(Protocol):
    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None: ...

    def list(
        self, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]: ...

    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]: ...

    def delete(self, kind: str, namespace: str, name: str) -> None: ...

    def patch(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> None: ...

    def patch_status(
        self, kind: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None: ...

    def secret_value(self, namespace: str, name: str, key: str) -> str: ...

    def secret_data(self, namespace: str, name: str) -> dict[str, str]: ...

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None: ...


def _api_error(err: Exception, what: str) -> Exception:
    status = getattr(err, "status", None)
    reason = getattr(err, "reason", "") or type(err).__name__
    return TemporaryError(f"Kubernetes API: {what}: {status or ''} {reason}".strip(), delay=5)


def default_api_client() -> Any:
    """The in-cluster ServiceAccount's client in a pod, else the kubeconfig's."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    return client.ApiClient()


def event_body(
    namespace: str | None, involved: dict[str, Any], type_: str, reason: str, message: str
) -> Any:
    """A ``CoreV1Event`` from Ferry about the object ``involved`` describes."""
    from kubernetes import client

    now = dt.datetime.now(dt.UTC)
    return client.CoreV1Event(
        metadata=client.V1ObjectMeta(
            generate_name=f"{involved.get('name') or 'ferry'}.", namespace=namespace
        ),
        involved_object=client.V1ObjectReference(**involved),
        reason=reason,
        message=message[:1024],
        type=type_,
        first_timestamp=now,
        last_timestamp=now,
        count=1,
        source=client.V1EventSource(component="ferry"),
    )


class KubeCluster:
    """:class:`Cluster` over the official Kubernetes client."""

    def __init__(self, api_client: Any = None, request_timeout: Any = None) -> None:
        from kubernetes import client

        api_client = api_client or default_api_client()
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        # How long a status patch may wait (seconds, or (connect, read)); None: no limit.
        self.timeout = {"_request_timeout": request_timeout} if request_timeout else {}

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args, **kwargs)
        except ApiException as err:
            if err.status == 404:
                return None
            raise _api_error(err, what) from err
        except OSError as err:
            raise _api_error(err, what) from err

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        result: dict[str, Any] | None = self._call(
            f"reading {kind} {namespace}/{name}",
            self.custom.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURALS[kind],
            name,
        )
        return result

    def list(
        self, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        kwargs = {"label_selector": label_selector} if label_selector else {}
        result = self._call(
            f"listing {kind} in {namespace}",
            self.custom.list_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURALS[kind],
            **kwargs,
        )
        return list((result or {}).get("items", []))

    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            f"creating a {kind} in {namespace}",
            self.custom.create_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURALS[kind],
            body,
        )
        return result

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self._call(
            f"deleting {kind} {namespace}/{name}",
            self.custom.delete_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURALS[kind],
            name,
        )

    def patch(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        """A JSON merge patch of the object itself (labels, ownerReferences)."""
        self._call(
            f"patching {kind} {namespace}/{name}",
            self.custom.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURALS[kind],
            name,
            body,
        )

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self._call(
            f"updating the status of {kind} {namespace}/{name}",
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            namespace,
            PLURALS[kind],
            name,
            {"status": status},
            **self.timeout,
        )

    def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        secret = self._call(
            f"reading Secret {namespace}/{name}", self.core.read_namespaced_secret, name, namespace
        )
        if secret is None:
            raise InvalidInput(f"Secret {namespace}/{name} not found")
        return {k: base64.b64decode(v).decode("utf-8") for k, v in (secret.data or {}).items()}

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        data = self.secret_data(namespace, name)
        if key not in data:
            raise InvalidInput(f"Secret {namespace}/{name} has no key {key!r}")
        return data[key]

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata", {})
        involved = {
            "api_version": obj.get("apiVersion"),
            "kind": obj.get("kind"),
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        }
        body = event_body(meta.get("namespace"), involved, type_, reason, message)
        self._call(
            "posting an event", self.core.create_namespaced_event, meta.get("namespace"), body
        )
