"""Reconcile an Environment: reachability, versions, variables, fingerprint, drift.

Drift: a locked environment's configuration fingerprint is compared with the baseline
Ferry recorded (at first observation, and after each migration or restore Ferry made);
a difference means someone changed the configuration by hand.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.api.environment import ConfigChanges
from controller.commands.environments import observe, resolve
from controller.errors import FerryError, InvalidInput, TemporaryError
from controller.flows.outcome import Event, Outcome
from controller.flows.status import StatusPatch, timestamp
from controller.k8s.client import Cluster


def reconcile_environment(
    body: dict[str, Any], cluster: Cluster, *, now: dt.datetime, retry: int = 0
) -> Outcome:
    patch = StatusPatch(body, now)
    status = body.get("status") or {}
    try:
        env = resolve(body, cluster)
        seen = observe(env, cluster)
    except InvalidInput as err:
        patch.stalled(err.reason if err.reason != "InvalidInput" else "InvalidSpec", err.message)
        return Outcome(
            patch.set(reachable=False).build(), (Event("Warning", "InvalidSpec", err.message),)
        )
    except TemporaryError as err:
        delay = min(300.0, 5.0 * 2 ** min(retry, 6))
        patch.progressing("Unreachable", err.message).set(reachable=False)
        return Outcome(patch.build(), (Event("Warning", "Unreachable", err.message),), delay)
    except FerryError as err:
        patch.progressing("Error", err.message).set(reachable=False)
        return Outcome(patch.build(), (Event("Warning", "Error", err.message),), 30.0)
    previous_drift = dict(status.get("drift") or {})
    fingerprint = seen.fingerprint.value
    baseline = previous_drift.get("baseline") or fingerprint
    events = []
    locked = env.spec.config_changes is ConfigChanges.LOCKED
    drifted = locked and fingerprint != baseline
    drift: dict[str, Any] = {
        "detected": drifted,
        "baseline": baseline,
        "lastCheckTime": timestamp(now),
    }
    if drifted:
        drift["since"] = previous_drift.get("since") or timestamp(now)
        patch.condition(
            "Drifted",
            True,
            "ConfigurationChanged",
            "the configuration changed outside Ferry (fingerprint "
            f"{fingerprint[:19]}…, expected {baseline[:19]}…)",
        )
        if not _was_true(status, "Drifted"):
            events.append(
                Event(
                    "Warning",
                    "DriftDetected",
                    "configuration changed outside Ferry in a locked environment",
                )
            )
    else:
        patch.condition("Drifted", False, "NoDrift" if locked else "ChangesAllowed", "")
    if seen.variables is not None:
        patch.set(
            variables={
                "created": list(seen.variables.created),
                "updated": list(seen.variables.updated),
                "unchanged": len(seen.variables.unchanged),
            }
        )
    patch.ready("Connected", f"{seen.dialect} {seen.server_version}")
    patch.set(
        reachable=True,
        dialect=seen.dialect,
        serverVersion=seen.server_version,
        applicationVersion=seen.app_version,
        fingerprint=fingerprint,
        drift=drift,
        tables={
            "total": seen.fingerprint.tables,
            "system": seen.fingerprint.configuration_tables,
            "systemRows": seen.fingerprint.configuration_rows,
        },
    )
    if not _was_true(status, "Ready"):
        events.append(Event("Normal", "Connected", f"{seen.dialect} {seen.server_version}"))
    return Outcome(patch.build(), tuple(events))


def _was_true(status: dict[str, Any], type_: str) -> bool:
    return any(
        c.get("type") == type_ and c.get("status") == "True" for c in status.get("conditions") or []
    )


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
