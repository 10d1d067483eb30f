"""Typed view of ``spec.application.bootCheck``: boot the application against a copy.

A rehearsal (and a drill that asks for it) starts one short-lived Pod from the declared
workload's pod template, with the environment variables named here pointing it at the
scratch copy instead of the real database, and asks ``http://<pod IP>:<port><path>``
until it answers 2xx or ``timeoutSeconds`` pass. The values are templates of the copy's
coordinates: ``{database}``, ``{host}``, ``{port}``, ``{user}`` (never a password: the
pod keeps the credentials its template reads, and the copy lives on the same server).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

from controller.api.resources import Node
from controller.errors import InvalidInput

DEFAULT_BOOT_SECONDS = 300
MAX_BOOT_SECONDS = 3600
MAX_ENV = 32
PLACEHOLDERS = frozenset({"database", "host", "port", "user"})
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
HEALTH_PATH = re.compile(r"^/[^\s?#]*$")

FIELDS_READ: tuple[str, ...] = (
    "spec.application.bootCheck.env",
    "spec.application.bootCheck.port",
    "spec.application.bootCheck.path",
    "spec.application.bootCheck.timeoutSeconds",
    "spec.application.bootCheck.emptyDirVolumes",
)
VOLUME_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True)
class BootCheckSpec:
    env: tuple[tuple[str, str], ...]  # (variable, template), in the order declared
    port: int
    path: str
    timeout_seconds: int = DEFAULT_BOOT_SECONDS
    # the template's volumes the boot pod gets empty instead (the application's uploads
    # on a ReadWriteOnce claim: never shared with, nor written by, the boot pod)
    empty_dir_volumes: tuple[str, ...] = ()

    def rendered(self, copy: Mapping[str, str]) -> dict[str, str]:
        """The variables with the copy's coordinates filled in."""
        return {name: template.format_map(dict(copy)) for name, template in self.env}


def _template(where: str, value: object) -> str:
    if not isinstance(value, str) or len(value) > 1024:
        raise InvalidInput(f"{where}: expected a string of at most 1024 characters")
    try:
        parts = [(f, s, c) for _, f, s, c in string.Formatter().parse(value) if f is not None]
    except ValueError as err:
        raise InvalidInput(f"{where}: {err}") from None
    if any(f not in PLACEHOLDERS or s or c for f, s, c in parts):
        allowed = ", ".join("{" + p + "}" for p in sorted(PLACEHOLDERS))
        raise InvalidInput(f"{where}: only the placeholders {allowed} are allowed")
    return value


def _env(node: Node) -> tuple[tuple[str, str], ...]:
    raw = node.raw("env")
    if not isinstance(raw, Mapping) or not raw:
        raise InvalidInput(f"{node.where}.env: a non-empty map of variable → template")
    if len(raw) > MAX_ENV:
        raise InvalidInput(f"{node.where}.env: at most {MAX_ENV} variables")
    out = []
    for name, value in raw.items():
        if not isinstance(name, str) or not ENV_NAME.match(name) or len(name) > 253:
            raise InvalidInput(f"{node.where}.env: {name!r} is not a variable name")
        out.append((name, _template(f"{node.where}.env.{name}", value)))
    return tuple(out)


def parse_boot_check(app: Node) -> BootCheckSpec | None:
    """``spec.application.bootCheck``, or None."""
    node = app.child("bootCheck")
    if node is None:
        return None
    port = node.integer("port", minimum=1)
    if port is None or port > 65535:
        raise InvalidInput(f"{node.where}.port: a port from 1 to 65535 is required")
    timeout = node.integer("timeoutSeconds", minimum=1) or DEFAULT_BOOT_SECONDS
    if timeout > MAX_BOOT_SECONDS:
        raise InvalidInput(f"{node.where}.timeoutSeconds: at most {MAX_BOOT_SECONDS}")
    return BootCheckSpec(
        env=_env(node),
        port=port,
        path=node.required_string("path", pattern=HEALTH_PATH),
        timeout_seconds=timeout,
        empty_dir_volumes=node.string_list("emptyDirVolumes", pattern=VOLUME_NAME),
    )


BOOT_PASSED = "Passed"
BOOT_FAILED = "Failed"


@dataclass(frozen=True)
class BootResult:
    """What ``status.rehearsal.boot`` and ``status.lastDrill.boot`` say."""

    healthy: bool
    message: str  # "HTTP 200 after 41.2s", "container app ended: Error 1" … never a body
    seconds: float
    pod: str  # the boot pod's name (deleted since)

    def to_status(self) -> dict[str, object]:
        return {
            "outcome": BOOT_PASSED if self.healthy else BOOT_FAILED,
            "message": self.message,
            "durationSeconds": round(self.seconds, 3),
            "pod": self.pod,
        }
