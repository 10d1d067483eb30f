"""A rehearsal whose target declares ``spec.application.bootCheck``: the Migration flow
on NocoBase-shaped SQLite files, an in-memory cluster and in-memory pods. The
application is booted against the copy after the plan applied there; a boot that fails
ends the Migration ``Failed`` (``RehearsalBootFailed``) with the target's rows as they
were and its running application never quiesced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.flows.migration import reconcile_migration
from controller.k8s.bootcheck import PodState
from controller.k8s.workloads import Health
from tests.db.dbhelpers import dump
from tests.unit.fake_cluster import FakeCluster
from tests.unit.test_bootcheck import RUNNING, FakeBootPods
from tests.unit.test_flows_application import APP, NOW, env, migration, urls  # noqa: F401

BOOT = {"env": {"DB_STORAGE": "{database}"}, "port": 13000, "path": "/api/__health_check"}


def setup(tmp_path: Path, urls: dict[str, str]) -> FakeCluster:  # noqa: F811
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    pre = env("pre", urls["pre"], backups={"store": {"path": str(tmp_path / "backups")}},
              application={**APP, "workload": {"kind": "Deployment", "name": "nocobase"},
                           "bootCheck": BOOT})  # fmt: skip
    pre["spec"]["rehearsal"] = {"scratch": {"directory": str(scratch)}}
    body = migration()
    body["spec"]["rehearsal"] = "Required"
    return FakeCluster(env("dev", urls["dev"]), pre, body)


def run(cluster: FakeCluster, pods: FakeBootPods) -> dict[str, Any]:
    body = cluster.get("Migration", "ns", "release")
    assert body is not None
    outcome = reconcile_migration(body, cluster, now=NOW, on_phase=lambda _: None,
                                  workloads=pods)  # fmt: skip
    return outcome.status


def test_a_copy_the_application_boots_on_lets_the_apply_run(
    tmp_path: Path,
    urls: dict[str, str],  # noqa: F811
) -> None:
    cluster = setup(tmp_path, urls)
    target_before = dump(urls["pre"])
    copies: list[tuple[str, bool]] = []
    pods = FakeBootPods([RUNNING], [Health(True, "HTTP 200")])

    def booted() -> None:  # what the pod was pointed at, while it was asked
        env = {e["name"]: e.get("value") for e in pods.created[-1]["spec"]["containers"][0]["env"]}
        path = env["DB_STORAGE"]
        copies.append((path, Path(path).exists() and dump(f"sqlite:///{path}") != target_before))

    pods.on_health = booted
    status = run(cluster, pods)
    assert status["phase"] == "Succeeded", status
    boot = status["rehearsal"]["boot"]
    assert boot["outcome"] == "Passed" and boot["pod"].startswith("nocobase-boot-")
    (path, applied), *_ = copies
    assert applied  # the copy existed, with the plan applied, while the pod was asked
    assert Path(path).parent == tmp_path / "scratch" and not Path(path).exists()
    assert pods.live == {}
    assert status["rehearsal"]["message"].endswith("the application booted on it")


def test_a_release_that_breaks_the_boot_never_reaches_the_target(
    tmp_path: Path,
    urls: dict[str, str],  # noqa: F811
) -> None:
    cluster = setup(tmp_path, urls)
    before = dump(urls["pre"])
    stopped = PodState("Failed", "10.0.0.7", "container app ended: Error 1")
    pods = FakeBootPods([RUNNING, stopped], [Health(False, "HTTP 503")])
    status = run(cluster, pods)
    assert status["phase"] == "Failed", status
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Stalled"]["reason"] == "RehearsalBootFailed"
    assert status["message"] == (
        "the application did not boot against the copy: "
        "the application stopped: container app ended: Error 1"
    )
    assert status["rehearsal"]["boot"]["outcome"] == "Failed"
    assert dump(urls["pre"]) == before  # rows, schema, no ledger
    assert not [c for c in pods.calls if c[0] == "set_replicas"]  # never quiesced
    assert pods.replicas == {"Deployment/nocobase": 1} and pods.live == {}
    assert list((tmp_path / "scratch").iterdir()) == []


def test_a_boot_check_without_a_pod_client_is_refused_before_any_copy(
    tmp_path: Path,
    urls: dict[str, str],  # noqa: F811
) -> None:
    from tests.unit.fake_workloads import FakeWorkloads

    cluster = setup(tmp_path, urls)
    status = run(cluster, FakeWorkloads({"Deployment/nocobase": 1}))  # type: ignore[arg-type]
    assert status["phase"] == "Failed", status
    assert "declares spec.application.bootCheck; no client" in status["message"]
    assert list((tmp_path / "scratch").iterdir()) == []
