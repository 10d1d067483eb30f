"""Reconcile an Environment: reachability, versions, variables, fingerprint, drift.

Drift: a locked environment's configuration fingerprint is compared with the baseline
Ferry recorded (at first observation, and after each migration or restore Ferry made);
a difference means someone changed the configuration by hand.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.api.environment import ConfigChanges
from controller.api.reasons import CommonReason, ConditionType, EnvironmentReason, EventType
from controller.commands.environments import (
    ResolvedEnvironment,
    close_connections,
    forget,
    keep_connections,
    observe,
    resolve,
)
from controller.errors import FerryError, InvalidInput, TemporaryError
from controller.flows.outcome import Event, Outcome, backoff
from controller.flows.status import StatusPatch, is_true, timestamp
from controller.k8s.client import Cluster

ERROR_RETRY = 30.0  # seconds: an error neither invalid input nor temporary


def reconcile_environment(
    body: dict[str, Any], cluster: Cluster, *, now: dt.datetime, retry: int = 0
) -> Outcome:
    patch = StatusPatch(body, now)
    status = body.get("status") or {}
    try:
        env = resolve(body, cluster)
        seen = observe(env, cluster)
    except FerryError as err:
        return _unobserved(patch, err, retry)
    events = _check_drift(patch, status, env, seen.fingerprint.value, now)
    if seen.variables is not None:
        patch.set(
            variables={
                "created": list(seen.variables.created),
                "updated": list(seen.variables.updated),
                "unchanged": len(seen.variables.unchanged),
            }
        )
    versions = f"{seen.dialect} {seen.server_version}"
    patch.ready(EnvironmentReason.CONNECTED, versions)
    patch.set(
        reachable=True,
        dialect=seen.dialect,
        serverVersion=seen.server_version,
        applicationVersion=seen.app_version,
        fingerprint=seen.fingerprint.value,
        tables={
            "total": seen.fingerprint.tables,
            "system": seen.fingerprint.configuration_tables,
            "systemRows": seen.fingerprint.configuration_rows,
        },
    )
    if not is_true(status, ConditionType.READY):
        events.append(Event(EventType.NORMAL, EnvironmentReason.CONNECTED, versions))
    return Outcome(patch.build(), tuple(events))


def start_connections() -> None:
    """The operator keeps a connection pool per Environment across its reconciles."""
    keep_connections()


def stop_connections() -> None:
    close_connections()


def environment_deleted(body: dict[str, Any]) -> None:
    """Close the deleted Environment's connections (unless another uses them)."""
    meta = body.get("metadata", {})
    forget(meta.get("namespace", "default"), meta.get("name", ""))


def _unobserved(patch: StatusPatch, err: FerryError, retry: int) -> Outcome:
    """The Environment could not be resolved or observed: invalid (stalled until its
    spec changes), unreachable (retried with backoff) or another error (retried)."""
    patch.set(reachable=False)
    warn = EventType.WARNING
    if isinstance(err, InvalidInput):
        # The condition and the event carry the same reason: the error's own where it
        # has one (DatabaseNotFound, DatabaseAccessDenied …), else InvalidSpec.
        stalled = err.reason if err.reason != InvalidInput.reason else CommonReason.INVALID_SPEC
        patch.stalled(stalled, err.message)
        return Outcome(patch.build(), (Event(warn, stalled, err.message),))
    if isinstance(err, TemporaryError):
        reason = CommonReason.UNREACHABLE
        patch.progressing(reason, err.message)
        return Outcome(patch.build(), (Event(warn, reason, err.message),), backoff(retry))
    patch.progressing(EnvironmentReason.ERROR, err.message)
    event = Event(warn, EnvironmentReason.ERROR, err.message)
    return Outcome(patch.build(), (event,), ERROR_RETRY)


def _check_drift(
    patch: StatusPatch,
    status: dict[str, Any],
    env: ResolvedEnvironment,
    fingerprint: str,
    now: dt.datetime,
) -> list[Event]:
    """Set ``status.drift`` and the ``Drifted`` condition; the event of a new drift."""
    previous = dict(status.get("drift") or {})
    baseline = previous.get("baseline") or fingerprint
    locked = env.spec.config_changes is ConfigChanges.LOCKED
    drifted = locked and fingerprint != baseline
    drift: dict[str, Any] = {
        "detected": drifted,
        "baseline": baseline,
        "lastCheckTime": timestamp(now),
    }
    patch.set(drift=drift)
    if not drifted:
        reason = EnvironmentReason.NO_DRIFT if locked else EnvironmentReason.CHANGES_ALLOWED
        patch.condition(ConditionType.DRIFTED, False, reason, "")
        return []
    drift["since"] = previous.get("since") or timestamp(now)
    patch.condition(
        ConditionType.DRIFTED,
        True,
        EnvironmentReason.CONFIGURATION_CHANGED,
        "the configuration changed outside Ferry (fingerprint "
        f"{fingerprint[:19]}…, expected {baseline[:19]}…)",
    )
    if is_true(status, ConditionType.DRIFTED):
        return []
    message = "configuration changed outside Ferry in a locked environment"
    return [Event(EventType.WARNING, EnvironmentReason.DRIFT_DETECTED, message)]


def new_baseline(fingerprint: str, migration: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status patch that makes ``fingerprint`` the expected configuration (after a
    migration or restore Ferry made)."""
    patch: dict[str, Any] = {
        "fingerprint": fingerprint,
        "drift": {"detected": False, "baseline": fingerprint, "since": None},
    }
    if migration:
        patch["lastMigration"] = migration
    return patch
