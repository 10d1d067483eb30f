"""Reading Ferry's installed CRDs, and telling about them with an Event.

The operator's start-up check (``controller.handlers.crd_gate``) asks the API server
for each of its CRDs by name (RBAC: ``get`` on ``customresourcedefinitions``, limited to
those names by ``resourceNames``); the comparison itself is pure
(``controller.api.crd_digest``). Errors are classified as in
:mod:`controller.k8s.client`: not found is ``None``, anything else is temporary.

An Event about a CRD is an Event about a cluster-scoped object, which the API server
keeps only in the ``default`` namespace; ``kubectl describe crd NAME`` shows it.
"""

from __future__ import annotations

from typing import Any, Protocol

from controller.k8s.client import _api_error, default_api_client, event_body

CRD_API_VERSION = "apiextensions.k8s.io/v1"
EVENTS_NAMESPACE = "default"  # where Events about cluster-scoped objects live


class CrdReader(Protocol):
    def crd(self, name: str) -> dict[str, Any] | None: ...

    def crd_event(
        self, name: str, crd: dict[str, Any] | None, type_: str, reason: str, message: str
    ) -> None: ...


class KubeCrds:
    """:class:`CrdReader` over the official Kubernetes client."""

    def __init__(self, api_client: Any = None) -> None:
        from kubernetes import client

        api_client = api_client or default_api_client()
        self.api_client = api_client
        self.extensions = client.ApiextensionsV1Api(api_client)
        self.core = client.CoreV1Api(api_client)

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        from kubernetes.client.exceptions import ApiException

        try:
            return fn(*args)
        except ApiException as err:
            if err.status == 404:
                return None
            raise _api_error(err, what) from err
        except OSError as err:
            raise _api_error(err, what) from err

    def crd(self, name: str) -> dict[str, Any] | None:
        """The CRD as the API server has it (camelCase keys), or ``None``."""
        got = self._call(
            f"reading CustomResourceDefinition {name}",
            self.extensions.read_custom_resource_definition,
            name,
        )
        if got is None:
            return None
        body: dict[str, Any] = self.api_client.sanitize_for_serialization(got)
        return body

    def crd_event(
        self, name: str, crd: dict[str, Any] | None, type_: str, reason: str, message: str
    ) -> None:
        """An Event on the CRD (its UID when it exists, so ``kubectl describe`` finds it)."""
        uid = ((crd or {}).get("metadata") or {}).get("uid")
        involved = {
            "api_version": CRD_API_VERSION,
            "kind": "CustomResourceDefinition",
            "name": name,
            "uid": uid,
        }
        body = event_body(EVENTS_NAMESPACE, involved, type_, reason, message)
        self._call("posting an event", self.core.create_namespaced_event, EVENTS_NAMESPACE, body)
