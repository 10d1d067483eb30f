"""Retention through the operator: a pinned Backup survives rules that would prune it,
each prune is an event on the schedule naming the Backup and the rules, kept Backups
say what keeps them, and unpinning lets a Backup go.

The tiers' arithmetic over spread-out times is tested where times can be chosen
(tests/unit/test_retention_tiers.py: the API server sets creationTimestamp); here the
backups are minutes apart, so ``keepYearly: 1`` and ``keepLast: 1`` agree on the newest,
which checks the wiring (the schedule's time zone reaches the tiers) without depending
on the date the test runs.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from controller.api.schedule import parse_backup_schedule
from tests.e2e.conftest import Apply, Kubectl
from tests.e2e.test_backups_operator import (
    exists,
    schedule_backups,
    store,  # noqa: F401 (a fixture)
    tidy,  # noqa: F401 (a fixture)
    wait_phase,
)
from tests.e2e.test_operator import apply_ok, environment
from tests.harness.cluster import wait_for

pytestmark = pytest.mark.e2e
ZONE = "Pacific/Kiritimati"  # UTC+14: the tiers read the year there, not in UTC


def scheduled_backup(name: str, pinned: bool = False) -> str:
    annotations = '\n  annotations: {ferry.dev/pinned: "true"}' if pinned else ""
    return f"""
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata:
  name: {name}
  labels: {{ferry.dev/schedule: nightly}}{annotations}
spec: {{environment: dev, deletionPolicy: Delete, reason: scheduled}}
"""


def pruned_events(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    """Backup name → message of the schedule's BackupPruned events."""
    got = kubectl.json(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=nightly,reason=BackupPruned",
    )
    messages = [str(e.get("message") or "") for e in got.get("items", [])]
    return {m.split(":")[0].rsplit(" ", 1)[-1]: m for m in messages}


def kept_by(kubectl: Kubectl, namespace: str) -> dict[str, str]:
    return {
        b["metadata"]["name"]: (b["metadata"].get("annotations") or {}).get("ferry.dev/kept-by", "")
        for b in schedule_backups(kubectl, namespace, "nightly")
    }


def test_pinned_backups_survive_and_pruning_explains_itself(
    kubectl: Kubectl,
    namespace: str,
    tidy: None,  # noqa: F811
    sqlite_envs: dict[str, str],
    store: Path,  # noqa: F811
    operator: Any,
) -> None:
    apply_ok(
        kubectl, namespace, environment("dev", "development", sqlite_envs["dev"], store=str(store))
    )
    # Four completed backups of "nightly", oldest first, before the schedule exists
    # (nothing prunes them yet); the oldest is pinned.
    ids = {}
    for name in ("nightly-a", "nightly-b", "nightly-c", "nightly-d"):
        apply_ok(kubectl, namespace, scheduled_backup(name, pinned=name == "nightly-a"))
        done = wait_phase(kubectl, "backup", namespace, name, {"Completed", "Failed"})
        assert done["phase"] == "Completed", done
        ids[name] = done["id"]
    newest = kubectl.json("get", "backup", "nightly-d", "-n", namespace)["metadata"]
    created = dt.datetime.fromisoformat(newest["creationTimestamp"].replace("Z", "+00:00"))
    year = created.astimezone(ZoneInfo(ZONE)).year

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
  timeZone: {ZONE}
  retention: {{keepLast: 1, keepYearly: 1}}
""",
    )
    wait_for(
        lambda: sorted(pruned_events(kubectl, namespace)) == ["nightly-b", "nightly-c"],
        timeout=60,
        description="BackupPruned events for nightly-b and nightly-c",
    )
    events = pruned_events(kubectl, namespace)
    assert events["nightly-b"] == (
        "retention deleted Backup nightly-b: not kept by keepLast=1 (not among the 1 newest), "
        f"keepYearly=1 (a newer backup stands for year {year})"
    )
    assert not exists(kubectl, "backup", namespace, "nightly-b")
    assert not exists(kubectl, "backup", namespace, "nightly-c")
    assert not (store / "dev" / ids["nightly-b"]).exists()  # deletionPolicy Delete
    assert (store / "dev" / ids["nightly-a"]).exists()
    wait_for(
        lambda: (
            kept_by(kubectl, namespace)
            == {"nightly-a": "pinned", "nightly-d": "minKeep, keepLast, keepYearly"}
        ),
        timeout=30,
        description="ferry.dev/kept-by on the kept Backups",
    )

    # Unpinned, the oldest goes on the next pass, and says which rules let it go.
    kubectl("annotate", "backup", "nightly-a", "-n", namespace, "ferry.dev/pinned-")
    wait_for(
        lambda: not exists(kubectl, "backup", namespace, "nightly-a"),
        timeout=30,
        description="retention deletes the unpinned nightly-a",
    )
    assert "not kept by keepLast=1" in pruned_events(kubectl, namespace)["nightly-a"]
    assert sorted(kept_by(kubectl, namespace)) == ["nightly-d"]


def tiered(retention: str) -> str:
    return f"""
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {{name: tiered}}
spec: {{environment: dev, schedule: "@daily", retention: {retention}}}
"""


def test_the_api_server_keeps_tiers_and_refuses_bad_ones(
    ferry_crds: list[str], kubectl: Kubectl, apply: Apply, namespace: str
) -> None:
    good = (
        "{keepLast: 3, keepHourly: 24, keepDaily: 7, keepWeekly: 4, keepMonthly: 12, keepYearly: 0}"
    )
    proc = apply(tiered(good), namespace)
    assert proc.returncode == 0, proc.stderr
    stored = kubectl.json("get", "backupschedules.ferry.dev", "tiered", "-n", namespace)
    retention = parse_backup_schedule(stored).retention
    assert (retention.keep_hourly, retention.keep_daily, retention.keep_weekly) == (24, 7, 4)
    assert (retention.keep_monthly, retention.keep_yearly, retention.keep_last) == (12, 0, 3)
    for bad, needle in (
        ("{keepDaily: -1}", "spec.retention.keepDaily"),
        ("{keepWeekly: 10001}", "spec.retention.keepWeekly"),
        ("{keepMonthly: '3'}", "spec.retention.keepMonthly"),
        ("{keepYearly: 1.5}", "spec.retention.keepYearly"),
    ):
        proc = apply(tiered(bad), namespace)
        assert proc.returncode != 0, f"accepted {bad}"
        assert needle in proc.stderr, proc.stderr
