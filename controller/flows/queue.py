"""At most one writer per target: Migrations and Restores take turns in creation order."""

from __future__ import annotations

from typing import Any

from controller.api.migration import MigrationPhase
from controller.api.reasons import ConditionType
from controller.api.restore import RestorePhase
from controller.flows.status import is_true
from controller.k8s.client import Cluster


def _finished(body: dict[str, Any]) -> bool:
    phase = (body.get("status") or {}).get("phase")
    return MigrationPhase.is_finished(phase) or RestorePhase.is_finished(phase)


def _order(body: dict[str, Any]) -> tuple[str, str]:
    meta = body.get("metadata") or {}
    return str(meta.get("creationTimestamp") or ""), str(meta.get("name") or "")


def _target(body: dict[str, Any]) -> str | None:
    spec = body.get("spec") or {}
    if body.get("kind") == "Migration":
        return spec.get("target")
    # A Restore may leave its environment to the backup's; it records the one it resolved.
    return spec.get("environment") or (body.get("status") or {}).get("environment")


def earlier_writer(cluster: Cluster, body: dict[str, Any], target: str) -> str | None:
    """The first unfinished Migration or Restore on ``target`` created before ``body``."""
    namespace = str((body.get("metadata") or {}).get("namespace"))
    me = _order(body)
    uid = (body.get("metadata") or {}).get("uid")
    writers = []
    for kind in ("Migration", "Restore"):
        for other in cluster.list(kind, namespace):
            other.setdefault("kind", kind)
            meta = other.get("metadata") or {}
            if meta.get("uid") == uid or meta.get("deletionTimestamp"):
                continue
            if _finished(other):
                continue
            if _target(other) == target and _order(other) < me:
                writers.append(other)
    if not writers:
        return None
    first = min(writers, key=_order)
    return f"{first['kind']} {first['metadata']['name']}"


def is_ready(cluster: Cluster, namespace: str, name: str) -> bool:
    body = cluster.get("Environment", namespace, name) or {}
    return is_true(body.get("status") or {}, ConditionType.READY)
