"""Restore drills through the operator: a BackupSchedule's ``spec.drill`` drills its
newest completed Backup into the scratch database of a Secret, records
``status.lastDrill`` on the Backup and the schedule with the ``DrillFailed`` condition,
and leaves the scratch as it found it; a backup damaged at rest turns the condition
True, naming the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl
from tests.e2e.test_backups_operator import (
    store,  # noqa: F401 (a fixture)
    tidy,  # noqa: F401 (a fixture)
    wait_phase,
)
from tests.e2e.test_operator import apply_ok, environment, status
from tests.harness.cluster import wait_for

pytestmark = pytest.mark.e2e


def _drill_now(kubectl: Kubectl, namespace: str) -> None:
    """Make the schedule's next drill due now: every minute from a time long past."""
    kubectl.merge_patch(
        "backupschedule/nightly",
        namespace,
        {"status": {"lastDrillTime": "2020-01-01T00:00:00Z", "lastDrill": None}},
        subresource="status",
        check=True,
    )


def _drilled(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    wait_for(
        lambda: bool(status(kubectl, "backupschedule", namespace, "nightly").get("lastDrill")),
        timeout=90,
        description="a drill recorded on the schedule",
    )
    return status(kubectl, "backupschedule", namespace, "nightly")


def _condition(got: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in got.get("conditions", []) if c["type"] == type_)


def test_a_schedule_drills_its_newest_backup(
    kubectl: Kubectl,
    namespace: str,
    tidy: None,  # noqa: F811
    sqlite_envs: dict[str, str],
    store: Path,  # noqa: F811
    tmp_path: Path,
    operator: Any,
) -> None:
    apply_ok(
        kubectl, namespace, environment("dev", "development", sqlite_envs["dev"], store=str(store))
    )
    apply_ok(
        kubectl,
        namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata:
  name: nightly-a
  labels: {ferry.dev/schedule: nightly}
spec: {environment: dev, deletionPolicy: Delete, reason: scheduled}
""",
    )
    done = wait_phase(kubectl, "backup", namespace, "nightly-a", {"Completed", "Failed"})
    assert done["phase"] == "Completed", done
    scratch = tmp_path / "scratch.db"
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "drill-scratch"},
        "stringData": {"url": f"sqlite:///{scratch}"},
    }
    apply_ok(kubectl, namespace, json.dumps(secret))
    apply_ok(
        kubectl,
        namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {name: nightly}
spec:
  environment: dev
  schedule: "0 0 1 1 *"
  drill:
    schedule: "* * * * *"
    scratch: {urlFrom: {secretKeyRef: {name: drill-scratch, key: url}}}
""",
    )
    wait_for(
        lambda: "conditions" in status(kubectl, "backupschedule", namespace, "nightly"),
        timeout=60,
        description="the schedule checked",
    )
    _drill_now(kubectl, namespace)
    got = _drilled(kubectl, namespace)
    drill = got["lastDrill"]
    assert (drill["outcome"], drill["backup"], drill["backupId"]) == (
        "Passed",
        "nightly-a",
        done["id"],
    ), drill
    cond = _condition(got, "DrillFailed")
    assert (cond["status"], cond["reason"]) == ("False", "DrillPassed")
    on_backup = status(kubectl, "backup", namespace, "nightly-a")["lastDrill"]
    assert on_backup["outcome"] == "Passed" and on_backup["time"] == drill["time"]
    assert not scratch.exists()  # created for the drill, removed after it

    # Damage a member at rest: the next drill fails and says which table.
    member = next((store / "dev" / done["id"] / "tables").glob("*roles*.arrow"))
    member.write_bytes(member.read_bytes()[:-16])
    _drill_now(kubectl, namespace)
    got = _drilled(kubectl, namespace)
    cond = _condition(got, "DrillFailed")
    assert (cond["status"], cond["reason"]) == ("True", "BackupNotRestorable"), cond
    assert "roles" in cond["message"] and got["lastDrill"]["outcome"] == "Failed"
    assert not scratch.exists()
