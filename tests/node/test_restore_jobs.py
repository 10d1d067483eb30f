"""Restores in Job mode on the real node: the Job's pod, from the image built here, runs
``ferry restore`` against PostgreSQL through its Service, with the store on the node's
volume (the claim of ``tests/node/test_jobs.py``).

While the pod writes (held mid-restore by a lock on a table it must read for its safety
backup), the Restore shows its Job and the target's application stays at zero across
the operator's reconciles; afterwards the rows are back and the application runs again.
A pod deleted mid-restore is replaced by the Job and the Restore completes once.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.e2e import main_flows
from tests.e2e.main_flows import _scalar
from tests.e2e.test_backups_operator import wait_phase
from tests.e2e.test_operator import apply_ok, status
from tests.harness.cluster import wait_for
from tests.node.conftest import STAND_IN_REPLICAS, OperatorPod, StandIn, stand_in_pods
from tests.node.test_jobs import job_mode, job_pods, store_claim

pytestmark = pytest.mark.node

EDITED = "select count(*) from roles where title = 'edited by hand'"
FINAL = {"Completed", "Failed", "Reverted"}


def _apply(site: main_flows.Site, kind: str, name: str, spec: dict[str, Any]) -> None:
    doc = {"apiVersion": "ferry.dev/v1alpha1", "kind": kind, "metadata": {"name": name}}
    apply_ok(site.kubectl, site.namespace, yaml.safe_dump({**doc, "spec": spec}))


def backed_up_then_edited(site: main_flows.Site, env: str) -> str:
    """A Backup of ``env`` taken in process, then every role's title edited: what a
    restore of that backup puts back. Returns the Backup's name."""
    _apply(site, "Backup", f"{env}-before", {"environment": env})
    done = wait_phase(site.kubectl, "backup", site.namespace, f"{env}-before", FINAL, 180)
    assert done["phase"] == "Completed", done
    engine = sa.create_engine(site.host_urls[env])
    with engine.begin() as conn:
        conn.exec_driver_sql("update roles set title = 'edited by hand'")
    engine.dispose()
    assert _scalar(site.host_urls[env], EDITED) == 3
    return f"{env}-before"


def prepared(
    site: main_flows.Site, operator: OperatorPod, env: str, app_image: str = "",
    **execution: Any,
) -> tuple[Path, str]:  # fmt: skip
    """The site declared (with the stand-in as pre's application when ``app_image``),
    ``env`` backed up and edited, then in Job mode: the store's host directory and the
    Backup's name."""
    if app_image:
        StandIn(health_path="/").declare(site, app_image)
    else:
        site.declare()
    site.kubectl("wait", "--for=condition=Ready", f"environment/{env}", "-n", site.namespace,
                 "--timeout=90s")  # fmt: skip
    host = store_claim(site.kubectl, operator, site.namespace)
    backup = backed_up_then_edited(site, env)
    job_mode(site, env, **execution)
    return host, backup


@contextmanager
def roles_locked(url: str) -> Iterator[None]:
    """``roles`` under an exclusive lock: the restore's safety backup, which reads it
    first, waits there mid-restore for as long as the block runs."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("LOCK TABLE roles IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        engine.dispose()


def restoring_pod(site: main_flows.Site, restore: str) -> dict[str, Any] | None:
    """The Restore's Job's pod once it runs, while the Restore says it is restoring."""
    got = status(site.kubectl, "restore", site.namespace, restore)
    job = (got.get("job") or {}).get("name")
    if got.get("phase") != "Restoring" or not job:
        return None
    running = [
        p for p in job_pods(site.kubectl, site.namespace, job)
        if p["status"].get("phase") == "Running" and not p["metadata"].get("deletionTimestamp")
    ]  # fmt: skip
    return running[0] if running else None


def restore_started(site: main_flows.Site, name: str, backup: str) -> dict[str, Any]:
    """A Restore of ``backup`` created, and its Job's pod once it runs."""
    _apply(site, "Restore", name, {"backup": backup})
    wait_for(lambda: restoring_pod(site, name) is not None, timeout=180,
             description=f"the pod of Restore {name}'s Job running")  # fmt: skip
    pod = restoring_pod(site, name)
    assert pod is not None
    return pod


def still_running(site: main_flows.Site, pod: dict[str, Any]) -> bool:
    """Whether ``pod``'s container runs yet (the restore waits at the lock)."""
    name = pod["metadata"]["name"]
    got = site.kubectl.json("get", "pod", name, "-n", site.namespace)
    statuses = got["status"].get("containerStatuses") or []
    return bool(statuses) and all("running" in (s.get("state") or {}) for s in statuses)


def _result(site: main_flows.Site, job: str) -> dict[str, Any]:
    pods = [
        p for p in job_pods(site.kubectl, site.namespace, job)
        if p["status"].get("phase") == "Succeeded"
    ]  # fmt: skip
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    return dict(json.loads(terminated["message"]))


def test_a_restore_runs_as_a_job_pod_while_the_application_stays_quiesced(
    site: main_flows.Site, operator: OperatorPod, node_base_image: str
) -> None:
    host, backup = prepared(site, operator, "pre", node_base_image)
    with roles_locked(site.host_urls["pre"]):
        pod = restore_started(site, "back", backup)
        held = status(site.kubectl, "restore", site.namespace, "back")
        time.sleep(12)  # two of the operator's looks at the running Job, at least
        later = status(site.kubectl, "restore", site.namespace, "back")
        deployment = site.kubectl.json("get", "deployment", "web", "-n", site.namespace)
        serving = stand_in_pods(site)
        assert still_running(site, pod)  # mid-restore: its safety backup waits at the lock
    for seen in (held, later):
        assert seen["phase"] == "Restoring", seen
        assert seen["application"]["quiesced"] is True, seen
        assert seen["job"]["name"].startswith("ferry-restore-back-"), seen
    reasons = {c["type"]: c["reason"] for c in later["conditions"]}
    assert reasons["Ready"] == "JobRunning", later["conditions"]
    assert deployment["spec"]["replicas"] == 0 and serving == []

    done = wait_phase(site.kubectl, "restore", site.namespace, "back", FINAL, 240)
    assert done["phase"] == "Completed", done
    assert done["job"]["phase"] == "Succeeded" and done["job"]["attempts"] == 1
    assert _scalar(site.host_urls["pre"], EDITED) == 0  # the rows are back
    deployment = site.kubectl.json("get", "deployment", "web", "-n", site.namespace)
    assert deployment["spec"]["replicas"] == STAND_IN_REPLICAS
    assert done["application"]["quiesced"] is False
    (job,) = [j for j in site.kubectl.json("get", "jobs", "-n", site.namespace)["items"]
              if j["metadata"]["name"] == done["job"]["name"]]  # fmt: skip
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"{operator.image.repository}:{operator.image.tag}"
    assert container["args"][0] == "restore" and "--quiesced" in container["args"]
    result = _result(site, done["job"]["name"])
    assert result["outcome"] == "completed" and result["rows"] == done["rows"]
    assert result["safetyBackupId"] == done["safetyBackup"]["id"]
    assert (host / "pre" / done["safetyBackup"]["id"] / "manifest.json").is_file()
    password = sa.make_url(site.operator_urls["pre"]).password
    shown = json.dumps(job) + json.dumps(done) + site.operator_log(400)
    assert password and password not in shown


def test_a_restore_pod_deleted_mid_restore_is_replaced_and_completes_once(
    site: main_flows.Site, operator: OperatorPod
) -> None:
    _, backup = prepared(site, operator, "prod", backoffLimit=2)
    kubectl, namespace = site.kubectl, site.namespace
    with roles_locked(site.host_urls["prod"]):
        first = restore_started(site, "again", backup)
        time.sleep(3)
        assert still_running(site, first)  # mid-restore: its safety backup waits at the lock
        job = status(kubectl, "restore", namespace, "again")["job"]["name"]
        # Stopped at the lock, the pod ends only with the grace period's SIGKILL; its
        # session, still queued for the lock, never writes (its transaction is gone).
        kubectl("delete", "pod", first["metadata"]["name"], "-n", namespace, "--wait=true",
                timeout=120)  # fmt: skip
    done = wait_phase(kubectl, "restore", namespace, "again", FINAL, 240)
    assert done["phase"] == "Completed", done
    assert done["job"]["name"] == job and done["job"]["attempts"] >= 2, done["job"]
    counted = kubectl.json("get", "job", job, "-n", namespace)["status"]
    assert counted.get("failed", 0) >= 1 and counted.get("succeeded") == 1, counted
    assert _scalar(site.host_urls["prod"], EDITED) == 0
    events = kubectl.json(
        "get", "events", "-n", namespace, "--field-selector", "involvedObject.name=again"
    )["items"]
    restored = [e for e in events if e["reason"] == "Restored"]
    assert len(restored) == 1 and int(restored[0].get("count") or 1) == 1, restored


def test_a_restore_deleted_mid_restore_stops_its_job_then_resumes_the_application(
    site: main_flows.Site, operator: OperatorPod, node_base_image: str
) -> None:
    _, backup = prepared(site, operator, "pre", node_base_image)
    kubectl, namespace = site.kubectl, site.namespace
    with roles_locked(site.host_urls["pre"]):
        pod = restore_started(site, "gone", backup)
        job = status(kubectl, "restore", namespace, "gone")["job"]["name"]
        kubectl("delete", "restore", "gone", "-n", namespace, "--wait=false")
        # Until the Restore is gone, sample the workload's replica count beside the
        # Job's running pods: never both at once.
        both: list[tuple[int, list[str]]] = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            gone = kubectl("get", "restore", "gone", "-n", namespace, check=False).returncode
            replicas = kubectl.json("get", "deployment", "web", "-n", namespace)["spec"]
            running = _running_pods(site, job)
            if replicas["replicas"] and running:
                both.append((replicas["replicas"], running))
            if gone != 0:
                break
        assert gone != 0, "the deleted Restore stayed"
        assert both == [], f"the application ran beside {pod['metadata']['name']}'s Job"
        assert _running_pods(site, job) == []
    deployment = kubectl.json("get", "deployment", "web", "-n", namespace)
    assert deployment["spec"]["replicas"] == STAND_IN_REPLICAS
    assert kubectl("get", "job", job, "-n", namespace, check=False).returncode != 0
    assert _scalar(site.host_urls["pre"], EDITED) == 3  # nothing was restored


def _running_pods(site: main_flows.Site, job: str) -> list[str]:
    return [
        p["metadata"]["name"] for p in job_pods(site.kubectl, site.namespace, job)
        if any("running" in (c.get("state") or {})
               for c in p["status"].get("containerStatuses") or [])
    ]  # fmt: skip
