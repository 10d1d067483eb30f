"""Typed view of ``spec.execution``: where an object's heavy work runs.

``InProcess`` (the default) runs a backup or restore in the operator's own process, on
one of its worker threads. ``Job`` runs it as a Kubernetes Job from the operator's image,
with the same command the CLI runs, its own resources and a deadline, so many large
backups and restores do not share one pod's memory. An Environment sets it for
everything that works on it; a Backup or Restore may override it, key by key.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from controller.api.resources import Node
from controller.errors import InvalidInput

DEFAULT_DEADLINE_SECONDS = 3600
MAX_DEADLINE_SECONDS = 7 * 86400
DEFAULT_BACKOFF_LIMIT = 2
MAX_BACKOFF_LIMIT = 10
# Kubernetes' resource.Quantity, as its OpenAPI schema spells it.
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
RESOURCE_NAMES = ("cpu", "memory")


class ExecutionMode(enum.StrEnum):
    IN_PROCESS = "InProcess"
    JOB = "Job"


def fields(prefix: str) -> tuple[str, ...]:
    """The schema paths of an ``execution`` block under ``prefix`` (``spec``)."""
    base = f"{prefix}.execution"
    resources = tuple(
        f"{base}.resources.{group}.{name}"
        for group in ("requests", "limits")
        for name in RESOURCE_NAMES
    )
    return (
        f"{base}.mode",
        *resources,
        f"{base}.activeDeadlineSeconds",
        f"{base}.backoffLimit",
        f"{base}.serviceAccountName",
        f"{base}.storeVolumeClaim",
        f"{base}.filesVolumeClaim",
    )


@dataclass(frozen=True)
class ExecutionSpec:
    mode: ExecutionMode = ExecutionMode.IN_PROCESS
    requests: tuple[tuple[str, str], ...] = ()  # (resource, quantity), the container's
    limits: tuple[tuple[str, str], ...] = ()
    active_deadline_seconds: int = DEFAULT_DEADLINE_SECONDS
    backoff_limit: int = DEFAULT_BACKOFF_LIMIT  # pods that may die before the Job fails
    service_account_name: str | None = None  # default: the Job's own (k8s/job_access.py)
    # The PersistentVolumeClaim that holds a filesystem store (spec.backups.store.path),
    # mounted at that path in the Job's pod. S3 stores need none.
    store_volume_claim: str | None = None
    # The claim that holds the application's files (Environment spec.files.path), mounted
    # at that path in the Job's pod: read-only for a backup, writable for a restore.
    files_volume_claim: str | None = None
    declared: frozenset[str] = field(default_factory=frozenset)  # keys set in the spec

    @property
    def is_job(self) -> bool:
        return self.mode is ExecutionMode.JOB


def _quantities(node: Node | None) -> tuple[tuple[str, str], ...]:
    if node is None:
        return ()
    out = []
    for name in RESOURCE_NAMES:
        value = node.string(name, pattern=QUANTITY)
        if value is not None:
            out.append((name, value))
    return tuple(out)


def _bounded(node: Node, key: str, minimum: int, maximum: int, default: int) -> int:
    value = node.integer(key, minimum=minimum)
    if value is None:
        return default
    if value > maximum:
        raise InvalidInput(f"{node.where}.{key}: at most {maximum}, got {value}")
    return value


def parse_execution(spec: Node) -> ExecutionSpec | None:
    """``spec.execution``, or None when the object sets none."""
    node = spec.child("execution")
    if node is None:
        return None
    resources = node.child("resources")
    return ExecutionSpec(
        mode=node.enum("mode", ExecutionMode, ExecutionMode.IN_PROCESS),
        requests=_quantities(resources.child("requests") if resources else None),
        limits=_quantities(resources.child("limits") if resources else None),
        active_deadline_seconds=_bounded(
            node, "activeDeadlineSeconds", 1, MAX_DEADLINE_SECONDS, DEFAULT_DEADLINE_SECONDS
        ),
        backoff_limit=_bounded(node, "backoffLimit", 0, MAX_BACKOFF_LIMIT, DEFAULT_BACKOFF_LIMIT),
        service_account_name=node.name("serviceAccountName"),
        store_volume_claim=node.name("storeVolumeClaim"),
        files_volume_claim=node.name("filesVolumeClaim"),
        declared=frozenset(str(k) for k in node.data if node.data.get(k) is not None),
    )


def effective(own: ExecutionSpec | None, inherited: ExecutionSpec | None) -> ExecutionSpec:
    """An object's own ``execution`` over its Environment's, key by key: a Backup that
    sets only ``mode: InProcess`` keeps nothing of the Environment's Job settings it does
    not need, and one that sets only ``activeDeadlineSeconds`` keeps the Environment's
    mode."""
    if own is None:
        return inherited or ExecutionSpec()
    if inherited is None:
        return own
    keys = {
        "mode": "mode",
        "resources": ("requests", "limits"),
        "activeDeadlineSeconds": "active_deadline_seconds",
        "backoffLimit": "backoff_limit",
        "serviceAccountName": "service_account_name",
        "storeVolumeClaim": "store_volume_claim",
        "filesVolumeClaim": "files_volume_claim",
    }
    merged = {}
    for key, attrs in keys.items():
        source = own if key in own.declared else inherited
        for attr in (attrs,) if isinstance(attrs, str) else attrs:
            merged[attr] = getattr(source, attr)
    return ExecutionSpec(**merged, declared=own.declared | inherited.declared)
