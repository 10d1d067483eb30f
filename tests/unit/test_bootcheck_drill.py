"""A drill with ``spec.drill.bootCheck``: the schedule's newest backup (of a real
NocoBase-shaped SQLite database) is restored into the scratch file, the Environment's
application is booted against it (in-memory pods), and the scratch is cleared. The
boot's result is in ``status.lastDrill.boot``; a boot that fails fails the drill
(``DrillBootFailed``), and a drill that asks for a boot the Environment does not declare
does not run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from controller.api.schedule import parse_backup_schedule
from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup
from controller.flows.drill import DrillClock, run_due_drill
from controller.flows.outcome import Event
from controller.flows.status import StatusPatch
from controller.k8s.bootcheck import PodState
from controller.k8s.workloads import Health
from tests.unit.fake_cluster import FakeCluster
from tests.unit.test_bootcheck import RUNNING, FakeBootPods
from tests.unit.test_flows_application import APP, env, urls  # noqa: F401

NOW = dt.datetime(2026, 11, 30, 5, 0, tzinfo=dt.UTC)  # after Sunday 04:00
BOOT = {"env": {"DB_STORAGE": "{database}"}, "port": 13000, "path": "/api/__health_check"}


def _schedule(boot: bool) -> dict[str, Any]:
    ref = {"secretKeyRef": {"name": "scratch", "key": "url"}}
    drill = {"schedule": "0 4 * * 0", "bootCheck": boot, "scratch": {"urlFrom": ref}}
    return {
        "kind": "BackupSchedule",
        "metadata": {"name": "nightly", "namespace": "ns", "generation": 1},
        "spec": {"environment": "pre", "schedule": "0 2 * * *", "drill": drill},
    }


def _drill(
    tmp_path: Path, url: str, pods: FakeBootPods, *, boot: bool = True, declared: bool = True
) -> tuple[dict[str, Any], list[Event], FakeCluster]:
    store = tmp_path / "backups"
    manifest, _ = create_backup(url, FilesystemStore(store), environment="pre")
    application = {**APP, "workload": {"kind": "Deployment", "name": "nocobase"}}
    if declared:
        application["bootCheck"] = BOOT
    backup = {
        "kind": "Backup",
        "metadata": {"name": "b1", "namespace": "ns", "uid": "b1-uid"},
        "status": {"phase": "Completed", "id": manifest.id, "completionTime": "x"},
    }
    scratch = f"sqlite:///{tmp_path / 'scratch.db'}"
    cluster = FakeCluster(
        env("pre", url, backups={"store": {"path": str(store)}}, application=application),
        backup,
        secrets={"scratch": {"url": scratch}},
    )
    body = _schedule(boot)
    patch, events = StatusPatch(body, NOW), []  # type: ignore[var-annotated]
    clock = DrillClock(dt.datetime(2026, 11, 20, tzinfo=dt.UTC), None, NOW)
    spec = parse_backup_schedule(body)
    run_due_drill("ns", spec, ZoneInfo("UTC"), [backup], cluster, patch, events, clock, pods)
    return patch.build(), events, cluster


def test_a_drill_boots_the_application_on_the_restored_copy(
    tmp_path: Path,
    urls: dict[str, str],  # noqa: F811
) -> None:
    pods = FakeBootPods([RUNNING], [Health(True, "HTTP 200")])
    seen: list[bool] = []
    pods.on_health = lambda: seen.append((tmp_path / "scratch.db").exists())
    status, events, cluster = _drill(tmp_path, urls["pre"], pods)
    drill = status["lastDrill"]
    assert drill["outcome"] == "Passed" and drill["boot"]["outcome"] == "Passed", drill
    assert "the application booted on it (HTTP 200" in drill["message"]
    assert seen == [True]  # booted while the restored copy existed
    env_of = {e["name"]: e.get("value") for e in pods.created[0]["spec"]["containers"][0]["env"]}
    assert env_of["DB_STORAGE"] == str(tmp_path / "scratch.db")
    owner = pods.created[0]["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Backup", "b1", "b1-uid")
    assert pods.live == {} and not (tmp_path / "scratch.db").exists()
    backup = cluster.get("Backup", "ns", "b1")
    assert backup is not None and backup["status"]["lastDrill"]["boot"]["outcome"] == "Passed"
    assert [e.reason for e in events] == ["DrillPassed"]


def test_a_backup_the_application_does_not_boot_on_fails_its_drill(
    tmp_path: Path,
    urls: dict[str, str],  # noqa: F811
) -> None:
    stopped = PodState("Failed", "10.0.0.7", "container app ended: Error 1")
    pods = FakeBootPods([RUNNING, stopped], [Health(False, "connection refused")])
    status, events, _ = _drill(tmp_path, urls["pre"], pods)
    drill = status["lastDrill"]
    assert drill["outcome"] == "Failed" and drill["boot"]["outcome"] == "Failed"
    assert drill["message"].endswith(
        "but the application did not boot on it: "
        "the application stopped: container app ended: Error 1"
    )
    failed = {c["type"]: c for c in status["conditions"]}["DrillFailed"]
    assert (failed["status"], failed["reason"]) == ("True", "DrillBootFailed")
    assert [e.reason for e in events] == ["DrillBootFailed"] and pods.live == {}
    assert not (tmp_path / "scratch.db").exists()


def test_a_boot_the_environment_does_not_declare_is_refused_before_restoring(
    tmp_path: Path,
    urls: dict[str, str],  # noqa: F811
) -> None:
    pods = FakeBootPods([RUNNING])
    status, _, _ = _drill(tmp_path, urls["pre"], pods, declared=False)
    drill = status["lastDrill"]
    assert (
        drill["outcome"] == "Failed"
        and "declares no spec.application.bootCheck" in (drill["message"])
    )
    assert {c["type"]: c for c in status["conditions"]}["DrillFailed"]["reason"] == "DrillNotRun"
    assert not pods.created and not (tmp_path / "scratch.db").exists()


def test_without_boot_check_a_drill_creates_no_pod(
    tmp_path: Path,
    urls: dict[str, str],  # noqa: F811
) -> None:
    pods = FakeBootPods([RUNNING])
    status, _, _ = _drill(tmp_path, urls["pre"], pods, boot=False)
    assert status["lastDrill"]["outcome"] == "Passed" and "boot" not in status["lastDrill"]
    assert pods.calls == []
