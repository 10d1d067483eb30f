"""Job mode on the real node: Backups run as Jobs from the image built here.

The operator (its pod, from the chart) creates each Backup's Job; the Job's pod runs
``ferry backup create`` against PostgreSQL through its Service and writes the archive
into the store on the node's volume, which a claim in the test's namespace mounts at
the store's path. The result comes back in the pod's termination message; a pod
deleted while it runs is replaced (``backoffLimit``); the chart's limit of concurrent
Jobs holds for a burst of Backups. (A pod deleted with no retry left: see the comment
above the burst test.)
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


def _delete_first_pod(site: main_flows.Site, backup_name: str, store: Path) -> str:
    """Delete the Job's first pod while its backup runs (its partial backup in the store,
    the read of the locked table pending), and wait until that pod is gone."""
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
    wait_for(lambda: not _running(kubectl, namespace, holder["pod"]), timeout=120,
             description="the deleted pod stopped")  # fmt: skip
    return holder["job"]


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
        job = _delete_first_pod(site, "replaced", host)
    done = wait_phase(
        site.kubectl, "backup", site.namespace, "replaced", {"Completed", "Failed"}, 240
    )
    assert done["phase"] == "Completed", done
    assert done["job"]["name"] == job and done["job"]["attempts"] >= 2, done["job"]
    # The Job controller counted the deleted pod as failed and started another.
    counted = site.kubectl.json("get", "job", job, "-n", site.namespace)["status"]
    assert counted.get("failed", 0) >= 1 and counted.get("succeeded") == 1, counted
    assert (host / "prod" / done["id"] / "manifest.json").is_file()
    # Not asserted: that the deleted pod removed its partial backup. Blocked in the
    # database (the lock), it does not act on SIGTERM before the grace period's SIGKILL,
    # and its partial stays for the stale-writer sweep (issue #12's note, 2026-12-01).


# "A pod deleted with no retry left ends the Backup as the store says" is out of the node
# tier until the backup ID is chosen by the operator (issue #12). In CI (2026-12-01) the
# pod, deleted as it finished, held its SIGTERM back and published its backup, but the
# operator had taken the Job's FailureTarget condition (set as the pod was deleted) for
# its end and failed the Backup 2 s after the deletion. That is fixed (it waits for
# Failed, set once the pod has stopped), but the stopped pod's termination message may
# be gone by then (the Job controller drops the pod's tracking finalizer first), and
# only asking the store for an ID the operator chose closes that. The unit tier covers
# what is fixed (tests/unit/test_jobs.py).


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
