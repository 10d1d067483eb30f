"""Job mode on the real node: Backups run as Jobs from the image built here.

The operator (its pod, from the chart) creates each Backup's Job; the Job's pod runs
``ferry backup create`` against PostgreSQL through its Service and writes the archive
into the store on the node's volume, which a claim in the test's namespace mounts at
the store's path. The result comes back in the pod's termination message; a pod
deleted while it runs is replaced (``backoffLimit``); a pod deleted with no retry left
ends its Backup as the store says for the ID the operator chose; the chart's limit of
concurrent Jobs holds for a burst of Backups.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.e2e import main_flows
from tests.e2e.conftest import Kubectl
from tests.e2e.test_backups_operator import wait_phase
from tests.e2e.test_operator import apply_ok, status
from tests.harness.cluster import wait_for
from tests.node.conftest import OPERATOR_UID, OperatorPod

pytestmark = pytest.mark.node

LIMIT = 4  # the chart's jobs.maxPerNamespace


def store_claim(kubectl: Kubectl, operator: OperatorPod, namespace: str) -> Path:
    """A claim in ``namespace`` on the directory the operator's store for it lives in
    (``STORE_MOUNT/namespace`` in its pod): the Job mounts it at that same path."""
    host = operator.workdir / "backups" / namespace
    host.mkdir(parents=True, exist_ok=True)
    os.chown(host, OPERATOR_UID, OPERATOR_UID)
    pv = f"ferry-jobs-{namespace}"[:63]
    docs = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": pv},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(host), "type": "Directory"},
                "claimRef": {"namespace": namespace, "name": "ferry-backups"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "ferry-backups", "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": pv,
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    ]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    return host


def job_mode(site: main_flows.Site, env: str, **execution: Any) -> None:
    patch = {
        "spec": {"execution": {"mode": "Job", "storeVolumeClaim": "ferry-backups", **execution}}
    }
    site.kubectl("patch", "environment", env, "-n", site.namespace, "--type=merge",
                 "-p", json.dumps(patch))  # fmt: skip


def backup(kubectl: Kubectl, namespace: str, name: str, env: str = "prod") -> None:
    doc = {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Backup",
        "metadata": {"name": name},
        "spec": {"environment": env},
    }
    apply_ok(kubectl, namespace, yaml.safe_dump(doc))


def jobs(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    return list(kubectl.json("get", "jobs", "-n", namespace)["items"])


def job_pods(kubectl: Kubectl, namespace: str, job: str) -> list[dict[str, Any]]:
    got = kubectl.json("get", "pods", "-n", namespace, "-l", f"batch.kubernetes.io/job-name={job}")
    return list(got["items"])


def prepared(site: main_flows.Site, operator: OperatorPod, **execution: Any) -> Path:
    site.declare()
    site.kubectl("wait", "--for=condition=Ready", "environment/prod", "-n", site.namespace,
                 "--timeout=90s")  # fmt: skip
    host = store_claim(site.kubectl, operator, site.namespace)
    job_mode(site, "prod", **execution)
    return host


def test_a_backup_runs_as_a_job_pod_and_lands_in_the_store(
    site: main_flows.Site, operator: OperatorPod
) -> None:
    host = prepared(site, operator)
    backup(site.kubectl, site.namespace, "nightly")
    done = wait_phase(
        site.kubectl, "backup", site.namespace, "nightly", {"Completed", "Failed"}, 240
    )
    assert done["phase"] == "Completed", done
    assert done["job"]["phase"] == "Succeeded" and done["job"]["attempts"] == 1
    (job,) = jobs(site.kubectl, site.namespace)
    assert job["metadata"]["name"] == done["job"]["name"]
    assert job["metadata"]["ownerReferences"][0]["kind"] == "Backup"
    (pod,) = job_pods(site.kubectl, site.namespace, done["job"]["name"])
    spec = pod["spec"]["containers"][0]
    assert spec["image"] == operator.image.repository + ":" + operator.image.tag
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    result = json.loads(terminated["message"])
    assert result["outcome"] == "completed" and result["id"] == done["id"]
    assert result["rows"] == done["rows"] and done["tables"] > 5
    assert (host / "prod" / done["id"] / "manifest.json").is_file()
    # Nothing secret in the Job, the Backup's status, the events or the operator's log.
    password = sa.make_url(site.operator_urls["prod"]).password
    shown = json.dumps(job) + json.dumps(done) + site.operator_log(400)
    shown += site.kubectl("get", "events", "-n", site.namespace, "-o", "yaml").stdout
    assert password and password not in shown


@contextmanager
def table_locked(url: str) -> Iterator[None]:
    """A business table the backup must read, held under an exclusive lock for as long
    as the block runs: a backup that reaches it waits there, mid-run, however fast the
    machine (a big table alone was read within a second on a quiet one)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE bulk AS SELECT g AS id, md5(g::text) AS payload "
                "FROM generate_series(1, 1000) AS g"
            )
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("LOCK TABLE bulk IN ACCESS EXCLUSIVE MODE")
            yield
    finally:
        engine.dispose()


def _delete_first_pod(site: main_flows.Site, backup_name: str, store: Path) -> tuple[str, float]:
    """Delete the Job's first pod while its backup runs (its partial backup in the store,
    the read of the locked table pending), and wait until that pod is gone: the Job's
    name, and the seconds the pod took to stop."""
    kubectl, namespace = site.kubectl, site.namespace
    holder: dict[str, str] = {}

    def writing() -> bool:
        name = status(kubectl, "backup", namespace, backup_name).get("job", {}).get("name")
        pods = job_pods(kubectl, namespace, name) if name else []
        if name and pods and pods[0]["status"].get("phase") == "Running":
            holder["job"], holder["pod"] = name, pods[0]["metadata"]["name"]
            return any(store.rglob(".partial-*"))
        return False

    wait_for(writing, timeout=120, interval=0.2, description="the first pod's backup writing")
    kubectl("delete", "pod", holder["pod"], "-n", namespace, "--wait=false")
    deleted = time.monotonic()
    wait_for(lambda: not _running(kubectl, namespace, holder["pod"]), timeout=120,
             description="the deleted pod stopped")  # fmt: skip
    return holder["job"], time.monotonic() - deleted


def _running(kubectl: Kubectl, namespace: str, pod: str) -> bool:
    found = kubectl("get", "pod", pod, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return False  # gone
    statuses = json.loads(found.stdout).get("status", {}).get("containerStatuses") or []
    return any("running" in (s.get("state") or {}) for s in statuses)


def test_a_job_pod_deleted_mid_run_is_replaced(
    site: main_flows.Site, operator: OperatorPod
) -> None:
    host = prepared(site, operator, backoffLimit=2)
    with table_locked(site.host_urls["prod"]):
        backup(site.kubectl, site.namespace, "replaced")
        job, _ = _delete_first_pod(site, "replaced", host)
    done = wait_phase(
        site.kubectl, "backup", site.namespace, "replaced", {"Completed", "Failed"}, 240
    )
    assert done["phase"] == "Completed", done
    assert done["job"]["name"] == job and done["job"]["attempts"] >= 2, done["job"]
    # The Job controller counted the deleted pod as failed and started another.
    counted = site.kubectl.json("get", "job", job, "-n", site.namespace)["status"]
    assert counted.get("failed", 0) >= 1 and counted.get("succeeded") == 1, counted
    assert (host / "prod" / done["id"] / "manifest.json").is_file()
    assert not any(host.rglob(".partial-*"))  # the replacement (same ID) found none left


def _pod_of(kubectl: Kubectl, namespace: str, backup_name: str) -> tuple[str, dict[str, Any]]:
    """The Backup's Job's pod, once it runs (or ran): its Job's name and the pod."""
    found: dict[str, Any] = {}

    def started() -> bool:
        job = status(kubectl, "backup", namespace, backup_name).get("job", {}).get("name")
        pods = job_pods(kubectl, namespace, job) if job else []
        if pods and pods[0]["status"].get("phase") in ("Running", "Succeeded", "Failed"):
            found["job"], found["pod"] = job, pods[0]
            return True
        return False

    wait_for(started, timeout=120, interval=0.1, description=f"{backup_name}'s pod running")
    return found["job"], found["pod"]


def _terminated(kubectl: Kubectl, namespace: str, pod: str) -> bool:
    got = kubectl.json("get", "pod", pod, "-n", namespace)
    statuses = got.get("status", {}).get("containerStatuses") or []
    return any("terminated" in (s.get("state") or {}) for s in statuses)


# When the pod is deleted: while it waits on a locked table (it cannot have published),
# at delays after it starts (it may or may not have), and after it ended (it has).
MOMENTS = ["locked", "0.0", "0.7", "1.4", "2.1", "3.0", "ended"]


def test_a_pod_deleted_with_no_retry_left_ends_the_backup_as_the_store_says(
    site: main_flows.Site, operator: OperatorPod
) -> None:
    """``backoffLimit: 0``: the deleted pod is the last. Whatever moment it is deleted
    at, and whether or not its termination message survives, the Backup is Completed if
    and only if the store holds the backup ID the operator chose for it."""
    host = prepared(site, operator, backoffLimit=0)
    kubectl, namespace = site.kubectl, site.namespace
    outcomes: dict[str, str] = {}
    for i, moment in enumerate(MOMENTS):
        name = f"gone-{i}"
        if moment == "locked":
            with table_locked(site.host_urls["prod"]):
                backup(kubectl, namespace, name)
                _, took = _delete_first_pod(site, name, host)
                # Its query cancelled, it stopped at once (not at the grace period's
                # SIGKILL, 30 s on) and removed its partial backup, the lock still held.
                assert took < 20, took
                assert not any(host.rglob(".partial-*"))
        else:
            backup(kubectl, namespace, name)
            _, pod = _pod_of(kubectl, namespace, name)
            pod_name = pod["metadata"]["name"]
            if moment == "ended":
                wait_for(lambda pod_name=pod_name: _terminated(kubectl, namespace, pod_name),
                         timeout=120, description=f"{pod_name} ended")  # fmt: skip
            else:
                time.sleep(float(moment))
            kubectl("delete", "pod", pod_name, "-n", namespace, "--wait=false")
        done = wait_phase(kubectl, "backup", namespace, name, {"Completed", "Failed"}, 240)
        chosen = done["job"]["backupId"]
        stored = (host / "prod" / chosen / "manifest.json").is_file()
        assert (done["phase"] == "Completed") == stored, (moment, done)
        if stored:
            assert done["id"] == chosen and done["rows"] > 0, done
        else:
            assert f"the store holds no backup {chosen}" in done["message"], done
        outcomes[moment] = done["phase"]
    assert outcomes["locked"] == "Failed" and outcomes["ended"] == "Completed", outcomes
    ids = [status(kubectl, "backup", namespace, f"gone-{i}")["job"]["backupId"]
           for i in range(len(MOMENTS))]  # fmt: skip
    assert len(set(ids)) == len(MOMENTS)  # one ID per Backup, chosen by the operator


def test_the_namespace_limit_of_jobs_holds_for_a_burst(
    site: main_flows.Site, operator: OperatorPod
) -> None:
    prepared(site, operator)
    names = [f"burst-{i}" for i in range(LIMIT + 3)]
    for name in names:
        backup(site.kubectl, site.namespace, name)
    most = 0
    deadline = time.monotonic() + 420
    while time.monotonic() < deadline:
        active = [
            j for j in jobs(site.kubectl, site.namespace)
            if not any(c.get("status") == "True" and c["type"] in ("Complete", "Failed")
                       for c in (j.get("status") or {}).get("conditions") or [])
        ]  # fmt: skip
        most = max(most, len(active))
        phases = {n: status(site.kubectl, "backup", site.namespace, n).get("phase") for n in names}
        if all(p in ("Completed", "Failed") for p in phases.values()):
            break
        time.sleep(0.5)
    assert set(phases.values()) == {"Completed"}, phases
    assert 1 <= most <= LIMIT, most
    events = site.kubectl("get", "events", "-n", site.namespace, "-o", "json").stdout
    assert "JobQueued" in events  # the rest waited for a slot
    assert len(jobs(site.kubectl, site.namespace)) == len(names)
