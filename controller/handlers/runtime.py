"""Start the operator: Kopf settings (Ferry's own finalizer and annotation prefix),
JSON logs, namespace scoping, liveness endpoint and metrics, and the CRD schema gate."""

from __future__ import annotations

import logging
from typing import Any

import kopf

from controller.flows.environment import start_connections, stop_connections
from controller.handlers import (  # noqa: F401 - registration
    backups,
    crd_gate,
    environments,
    metrics,
    migrations,
    restores,
    schedules,
)

PREFIX = "ferry.dev"
FINALIZER = f"{PREFIX}/finalizer"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    # No cluster-wide scans of namespaces and CRDs: the watched kinds are known, and the
    # least-privilege RBAC of the chart grants no such reads (docs/install.md).
    settings.scanning.disabled = True
    settings.posting.enabled = False  # Ferry posts its own events, with stable reasons
    settings.watching.server_timeout = 60
    settings.execution.max_workers = 8
    start_connections()  # one pool per Environment across a migration's phases


@kopf.on.cleanup()
def close(**_: Any) -> None:
    stop_connections()


def run(
    *,
    namespaces: list[str],
    liveness: str | None,
    metrics_port: int,
    metrics_address: str = "0.0.0.0",
    json_logs: bool = True,
    verbose: bool = False,
    check_crds: bool = True,
) -> None:
    kopf.configure(
        verbose=verbose, log_format=kopf.LogFormat.JSON if json_logs else kopf.LogFormat.FULL
    )
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    metrics.serve(metrics_port, metrics_address)
    # Before Kopf watches anything: installed CRDs older (or newer) than this operator
    # would prune the fields it writes, so it waits for the right ones (crd_gate).
    crd_gate.before_reconciling(check=check_crds, liveness=liveness)
    kopf.run(
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces,
        liveness_endpoint=liveness,
    )
