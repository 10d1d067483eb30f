"""Restore drills through the operator: a BackupSchedule's ``spec.drill`` drills its
newest (or, ``pick: Sampled``, a drawn) completed Backup into the scratch database of
a Secret, records
``status.lastDrill`` on the Backup and the schedule with the ``DrillFailed`` condition,
and leaves the scratch as it found it; a backup damaged at rest turns the condition
True, naming the table."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from controller.api.resources import SecretKeyRef
from controller.api.schedule import DrillPick, DrillSpec
from controller.flows.drill import drill_due, pick_backup
from controller.flows.status import timestamp
from tests.e2e.conftest import Kubectl
from tests.e2e.test_backups_operator import (
    store,  # noqa: F401 (a fixture)
    tidy,  # noqa: F401 (a fixture)
    wait_phase,
)
from tests.e2e.test_operator import apply_ok, environment, status
from tests.harness.cluster import wait_for

pytestmark = pytest.mark.e2e
LONG_AGO = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)  # the last drill, as _drill_now sets it


def _drill_now(kubectl: Kubectl, namespace: str) -> None:
    """Make the schedule's next drill due now: every minute from a time long past."""
    kubectl.merge_patch(
        "backupschedule/nightly",
        namespace,
        {"status": {"lastDrillTime": timestamp(LONG_AGO), "lastDrill": None}},
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


@pytest.fixture
def store_of_dev(
    kubectl: Kubectl,
    namespace: str,
    tidy: None,  # noqa: F811
    sqlite_envs: dict[str, str],
    store: Path,  # noqa: F811
    operator: Any,
) -> Path:
    """The operator running, and the Environment dev (SQLite) backing up into ``store``;
    that store."""
    apply_ok(
        kubectl, namespace, environment("dev", "development", sqlite_envs["dev"], store=str(store))
    )
    return store


def _backup(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any]:
    """A Completed Backup of the schedule ``nightly``; its status."""
    apply_ok(
        kubectl,
        namespace,
        f"""
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata:
  name: {name}
  labels: {{ferry.dev/schedule: nightly}}
spec: {{environment: dev, deletionPolicy: Delete, reason: scheduled}}
""",
    )
    done = wait_phase(kubectl, "backup", namespace, name, {"Completed", "Failed"})
    assert done["phase"] == "Completed", done
    return done


def _schedule(kubectl: Kubectl, namespace: str, scratch: Path, drill: str) -> None:
    """The schedule ``nightly`` (no backup of its own this year) drilling into ``scratch``
    on ``drill``, a YAML flow mapping's inner fields (its cron and pick)."""
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
        f"""
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {{name: nightly}}
spec:
  environment: dev
  schedule: "0 0 1 1 *"
  drill: {{{drill}, scratch: {{urlFrom: {{secretKeyRef: {{name: drill-scratch, key: url}}}}}}}}
""",
    )
    wait_for(
        lambda: "conditions" in status(kubectl, "backupschedule", namespace, "nightly"),
        timeout=60,
        description="the schedule checked",
    )


def test_a_schedule_drills_its_newest_backup(
    kubectl: Kubectl, namespace: str, store_of_dev: Path, tmp_path: Path
) -> None:
    done = _backup(kubectl, namespace, "nightly-a")
    scratch = tmp_path / "scratch.db"
    _schedule(kubectl, namespace, scratch, 'schedule: "* * * * *"')
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
    member = next((store_of_dev / "dev" / done["id"] / "tables").glob("*roles*.arrow"))
    member.write_bytes(member.read_bytes()[:-16])
    _drill_now(kubectl, namespace)
    got = _drilled(kubectl, namespace)
    cond = _condition(got, "DrillFailed")
    assert (cond["status"], cond["reason"]) == ("True", "BackupNotRestorable"), cond
    assert "roles" in cond["message"] and got["lastDrill"]["outcome"] == "Failed"
    assert not scratch.exists()


def test_a_sampled_drill_restores_the_backup_its_time_draws_and_names_it(
    kubectl: Kubectl, namespace: str, store_of_dev: Path, tmp_path: Path
) -> None:
    """``pick: Sampled``: the drill restores the backup :func:`pick_backup` draws for
    the drill's scheduled time, which a test can therefore predict. The drill runs at
    midnight on 1 January, so its time is known before the Backups are made, and as many
    Backups are made as it takes for the draw not to be the newest (the default's)."""
    spec = DrillSpec("0 0 1 1 *", SecretKeyRef("drill-scratch", "url"), DrillPick.SAMPLED)
    due = drill_due(
        spec, ZoneInfo("UTC"), created=LONG_AGO, last=LONG_AGO, now=dt.datetime.now(dt.UTC)
    )
    assert due is not None

    def names(n: int) -> list[dict[str, Any]]:
        return [
            {
                "metadata": {"name": f"b{i}"},
                "status": {"phase": "Completed", "id": f"{i}", "completionTime": f"{i:04d}"},
            }
            for i in range(n)
        ]

    count = next(
        n for n in range(3, 10) if pick_backup(names(n), DrillPick.SAMPLED, due) != names(n)[-1]
    )
    for i in range(count):
        _backup(kubectl, namespace, f"nightly-{i}")
    owned = kubectl.json("get", "backup", "-n", namespace)["items"]
    drawn = pick_backup(owned, DrillPick.SAMPLED, due)
    assert drawn is not None and drawn != pick_backup(owned, DrillPick.NEWEST, due)

    _schedule(kubectl, namespace, tmp_path / "scratch.db", 'schedule: "0 0 1 1 *", pick: Sampled')
    _drill_now(kubectl, namespace)
    got = _drilled(kubectl, namespace)
    drill = got["lastDrill"]
    assert got["lastDrillTime"] == timestamp(due)
    assert (drill["outcome"], drill["backup"], drill["backupId"]) == (
        "Passed",
        drawn["metadata"]["name"],
        drawn["status"]["id"],
    ), drill
    on_backup = status(kubectl, "backup", namespace, drawn["metadata"]["name"])["lastDrill"]
    assert on_backup["backupId"] == drawn["status"]["id"] and on_backup["time"] == drill["time"]
    others = [b["metadata"]["name"] for b in owned if b is not drawn]
    assert not any(status(kubectl, "backup", namespace, n).get("lastDrill") for n in others)
