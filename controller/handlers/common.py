"""Shared plumbing: the cluster client, writing an outcome, retry semantics."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import kopf

from controller.flows.outcome import Outcome
from controller.flows.unexpected import guarded
from controller.k8s.client import Cluster, KubeCluster
from controller.k8s.jobs import Jobs, KubeJobs

_cluster: Cluster | None = None
_jobs: Jobs | None = None


def cluster() -> Cluster:
    global _cluster  # noqa: PLW0603 - one client per operator process
    if _cluster is None:
        _cluster = KubeCluster()
    return _cluster


def jobs() -> Jobs:
    """The Jobs API, for objects whose spec.execution.mode is Job."""
    global _jobs  # noqa: PLW0603 - one client per operator process
    if _jobs is None:
        _jobs = KubeJobs()
    return _jobs


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def reconciled(kind: str, body: Any, retry: int, flow: Callable[..., Outcome]) -> Outcome:
    """``flow(body, cluster, now=…, retry=…)``'s outcome, with an error it did not expect
    turned into status (:func:`~controller.flows.unexpected.guarded`)."""
    when = now()
    return guarded(
        kind,
        dict(body),
        lambda: flow(dict(body), cluster(), now=when, retry=retry),
        now=when,
        retry=retry,
    )


def write(kind: str, body: Any, outcome: Outcome) -> None:
    """Patch the status, post the events, and retry when the outcome asks for it."""
    meta = body.get("metadata", {})
    client = cluster()
    if outcome.status:
        client.patch_status(kind, meta["namespace"], meta["name"], outcome.status)
    for event in outcome.events:
        client.event(dict(body), event.type, event.reason, event.message)
    if outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.retry_reason, delay=outcome.retry_after)
