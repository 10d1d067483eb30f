"""An in-memory :class:`~controller.k8s.client.Cluster` for unit tests of the flows.

It keeps objects by (kind, namespace, name), answers label selectors of the two forms
the flows use (``key`` and ``key=value``), applies merge patches the way the API server
does (``None`` deletes a key, lists are replaced whole), and records every call, so a
test can assert both on the resulting state and on what the flow asked for.
"""

from __future__ import annotations

import copy
from typing import Any

from controller.errors import InvalidInput, TemporaryError


def merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    out = copy.deepcopy(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _matches(body: dict[str, Any], selector: str | None) -> bool:
    if not selector:
        return True
    labels = (body.get("metadata") or {}).get("labels") or {}
    for term in selector.split(","):
        key, sep, value = term.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


class FakeCluster:
    def __init__(self, *objects: dict[str, Any], secrets: dict[str, dict[str, str]] | None = None):
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, ...]] = []
        self.secrets = dict(secrets or {})
        self.events: list[tuple[str, str, str]] = []
        # Secrets whose reads fail as the real client's do when the API server does not
        # answer (a TemporaryError, retried), to reach the flows' temporary branches.
        self.unanswered: set[str] = set()
        for obj in objects:
            self.add(obj)

    def add(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", "ns")
        meta.setdefault("uid", f"uid-{obj['kind']}-{meta['name']}")
        self.objects[(obj["kind"], meta["namespace"], meta["name"])] = obj
        return obj

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list(
        self, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(obj)
            for (k, ns, _), obj in sorted(self.objects.items())
            if k == kind and ns == namespace and _matches(obj, label_selector)
        ]

    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", kind, body["metadata"]["name"]))
        if (kind, namespace, body["metadata"]["name"]) in self.objects:
            raise AssertionError(f"{kind} {body['metadata']['name']} exists already")
        return self.add({"kind": kind, **copy.deepcopy(body)})

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.calls.append(("delete", kind, name))
        self.objects.pop((kind, namespace, name), None)

    def patch(self, kind: str, namespace: str, name: str, body: dict[str, Any]) -> None:
        self.calls.append(("patch", kind, name))
        key = (kind, namespace, name)
        self.objects[key] = merge(self.objects[key], body)

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.calls.append(("patch_status", kind, name))
        key = (kind, namespace, name)
        if key in self.objects:
            self.objects[key] = merge(self.objects[key], {"status": status})

    def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        if name in self.unanswered:
            raise TemporaryError(
                f"Kubernetes API: reading Secret {namespace}/{name}: 503 Service Unavailable",
                delay=5,
            )
        if name not in self.secrets:
            raise InvalidInput(f"Secret {namespace}/{name} not found")
        return dict(self.secrets[name])

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        data = self.secret_data(namespace, name)
        if key not in data:  # as the real client says it
            raise InvalidInput(f"Secret {namespace}/{name} has no key {key!r}")
        return data[key]

    def event(self, obj: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))
