"""Environment handlers: observe on every change and periodically (drift, reachability)."""

from __future__ import annotations

import os
from typing import Any

import kopf

from controller.api.resources import GROUP, VERSION
from controller.flows.environment import environment_deleted, reconcile_environment
from controller.handlers import metrics
from controller.handlers.common import reconciled, write

CHECK_SECONDS = float(os.environ.get("FERRY_ENVIRONMENT_CHECK_SECONDS", "60"))


def _reconcile(body: Any, retry: int) -> None:
    outcome = reconciled("Environment", body, retry, reconcile_environment)
    meta = body.get("metadata", {})
    if "drift" in outcome.status:
        metrics.DRIFT.labels(meta.get("namespace"), meta.get("name")).set(
            1 if outcome.status["drift"] else 0
        )
    write("Environment", body, outcome)


@kopf.on.create(GROUP, VERSION, "environments")
@kopf.on.resume(GROUP, VERSION, "environments")
@kopf.on.update(GROUP, VERSION, "environments", field="spec")
def environment_changed(body: Any, retry: int, **_: Any) -> None:
    _reconcile(body, retry)


@kopf.timer(GROUP, VERSION, "environments", interval=CHECK_SECONDS, initial_delay=CHECK_SECONDS)
def environment_check(body: Any, retry: int = 0, **_: Any) -> None:
    _reconcile(body, retry)


@kopf.on.delete(GROUP, VERSION, "environments", optional=True)  # no finalizer
def environment_gone(body: Any, **_: Any) -> None:
    environment_deleted(dict(body))
