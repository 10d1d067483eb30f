"""Typed view of an Environment's ``spec.application``: the workload that serves it.

NocoBase caches its configuration in memory, so a promotion into a running application
leaves it serving stale configuration. An Environment that declares its application
lets Ferry stop it (scale the workload to zero and wait until no pod is left), write,
start it again with the replica count it had, and wait until its health check answers.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from controller.api.bootcheck import FIELDS_READ as BOOT_FIELDS
from controller.api.bootcheck import BootCheckSpec, parse_boot_check
from controller.api.resources import Node
from controller.errors import InvalidInput

DEFAULT_QUIESCE_SECONDS = 300
DEFAULT_HEALTH_SECONDS = 300
MAX_SECONDS = 3600
# http(s)://host[:port][/path]: a Service's DNS name (svc.ns.svc[.cluster.local]) or any
# host the operator reaches; no credentials in the URL (it is shown in status).
HEALTH_URL = re.compile(r"^https?://[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?(:[0-9]{1,5})?(/\S*)?$")

FIELDS_READ: tuple[str, ...] = (
    "spec.application.workload.kind",
    "spec.application.workload.name",
    "spec.application.quiesce.strategy",
    "spec.application.quiesce.timeoutSeconds",
    "spec.application.health.url",
    "spec.application.health.timeoutSeconds",
    "spec.allowRunningApplication",
    *BOOT_FIELDS,
)


class WorkloadKind(enum.StrEnum):
    DEPLOYMENT = "Deployment"
    STATEFUL_SET = "StatefulSet"


class QuiesceStrategy(enum.StrEnum):
    SCALE_TO_ZERO = "ScaleToZero"


@dataclass(frozen=True)
class HealthCheck:
    url: str  # an HTTP GET; any 2xx answer is healthy
    timeout_seconds: int = DEFAULT_HEALTH_SECONDS  # how long after resuming it may take


@dataclass(frozen=True)
class ApplicationSpec:
    kind: WorkloadKind
    name: str
    strategy: QuiesceStrategy = QuiesceStrategy.SCALE_TO_ZERO
    quiesce_timeout_seconds: int = DEFAULT_QUIESCE_SECONDS  # until no pod is left
    health: HealthCheck | None = None
    boot_check: BootCheckSpec | None = None  # boot it against a rehearsal or drill copy

    @property
    def workload(self) -> str:
        return f"{self.kind.value}/{self.name}"


def _seconds(node: Node, key: str, default: int) -> int:
    value = node.integer(key, minimum=1)
    if value is None:
        return default
    if value > MAX_SECONDS:
        raise InvalidInput(f"{node.where}.{key}: at most {MAX_SECONDS}, got {value}")
    return value


def parse_application(spec: Node) -> ApplicationSpec | None:
    """``spec.application``, or None when the Environment declares none."""
    app = spec.child("application")
    if app is None:
        return None
    if spec.boolean("allowRunningApplication"):
        raise InvalidInput(
            "spec.allowRunningApplication is for an Environment without spec.application: "
            "a declared application is always quiesced"
        )
    workload = app.child("workload", required=True)
    assert workload is not None
    quiesce = app.child("quiesce")
    health = app.child("health")
    return ApplicationSpec(
        kind=workload.enum("kind", WorkloadKind),
        name=workload.name("name", required=True) or "",
        strategy=(
            quiesce.enum("strategy", QuiesceStrategy, QuiesceStrategy.SCALE_TO_ZERO)
            if quiesce is not None
            else QuiesceStrategy.SCALE_TO_ZERO
        ),
        quiesce_timeout_seconds=(
            _seconds(quiesce, "timeoutSeconds", DEFAULT_QUIESCE_SECONDS)
            if quiesce is not None
            else DEFAULT_QUIESCE_SECONDS
        ),
        health=(
            HealthCheck(
                url=health.required_string("url", pattern=HEALTH_URL),
                timeout_seconds=_seconds(health, "timeoutSeconds", DEFAULT_HEALTH_SECONDS),
            )
            if health is not None
            else None
        ),
        boot_check=parse_boot_check(app),
    )
