"""Job slots on the real node, for every kind at once, and a Migration's rollback as a Job.

A burst of Restores (one into each Environment with a store; pre's quiesces its stand-in
application between taking its slot and starting its pod) and Backups, more than the chart's
``jobs.maxPerNamespace``, never has more Jobs holding a slot, or more of them let go
(unsuspended), or more of their pods running, than the limit at any instant: the test
watches the Jobs while they run. A Restore with ``spec.migration`` in Job mode runs
``ferry rollback`` in a Job's pod, and its result comes from that pod's termination
message.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.e2e import main_flows
from tests.e2e.test_backups_operator import wait_phase
from tests.e2e.test_operator import apply_ok, migration, status
from tests.e2e.test_operator import wait_phase as wait_migration
from tests.node.conftest import STAND_IN_REPLICAS, OperatorPod, StandIn, stand_in_replicas
from tests.node.test_jobs import LIMIT, job_mode, job_pods, store_claim
from tests.node.test_migration_jobs import DONE, ledger

pytestmark = pytest.mark.node

ENVS = ("pre", "prod")  # the Environments with a store
BACKUPS = 4  # with the two Restores: LIMIT + 2 Jobs at once
ENDED = {"Completed", "Failed", "Reverted"}


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "ferry.dev/v1alpha1", "kind": kind, "metadata": {"name": name},
            "spec": spec}  # fmt: skip


def _ended(job: dict[str, Any]) -> bool:
    return any(
        c.get("status") == "True" and c["type"] in ("Complete", "Failed")
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _count(jobs: dict[str, dict[str, Any]]) -> tuple[int, int, int]:
    """Ferry's Jobs at one instant: holding a slot (not ended), let go of those (not
    suspended), and their pods running (the Jobs' ``status.active``)."""
    holding = [j for j in jobs.values() if not _ended(j)]
    let_go = [j for j in holding if not j["spec"].get("suspend")]
    active = sum(int((j.get("status") or {}).get("active") or 0) for j in jobs.values())
    return len(holding), len(let_go), active


@contextmanager
def watched_jobs(site: main_flows.Site) -> Iterator[list[tuple[int, int, int]]]:
    """``kubectl get jobs --watch`` on Ferry's Jobs while the block runs: the counts
    (``_count``) after every change to any of them, the list filled as they come."""
    cp = site.kubectl.control_plane
    argv = [str(cp.kubectl_path), "--kubeconfig", str(cp.kubeconfig), "get", "jobs", "-n",
            site.namespace, "-l", "app.kubernetes.io/managed-by=ferry", "--watch",
            "--output-watch-events", "-o", "json"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    counts: list[tuple[int, int, int]] = []
    jobs: dict[str, dict[str, Any]] = {}

    def follow() -> None:
        assert proc.stdout is not None
        decoder, text = json.JSONDecoder(), ""
        for line in proc.stdout:
            text += line
            try:  # one event: a JSON object, however kubectl lays it out
                event, end = decoder.raw_decode(text.lstrip())
            except ValueError:
                continue
            text = text.lstrip()[end:]
            job = event["object"]
            if event["type"] == "DELETED":
                jobs.pop(job["metadata"]["name"], None)
            else:
                jobs[job["metadata"]["name"]] = job
            counts.append(_count(jobs))

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    try:
        yield counts
    finally:
        time.sleep(2)  # the last changes reach the watch
        proc.terminate()
        proc.wait(timeout=30)
        reader.join(timeout=30)
    assert proc.stderr is not None
    assert counts, f"the watch saw no Job: {proc.stderr.read()}"


def test_a_burst_of_restores_and_backups_never_runs_more_jobs_than_the_limit(
    site: main_flows.Site, operator: OperatorPod, node_base_image: str
) -> None:
    StandIn(health_path="/").declare(site, node_base_image)
    kubectl, namespace = site.kubectl, site.namespace
    for env in ENVS:
        kubectl("wait", "--for=condition=Ready", f"environment/{env}", "-n", namespace,
                "--timeout=90s")  # fmt: skip
    store_claim(kubectl, operator, namespace)
    docs = [_doc("Backup", f"{env}-before", {"environment": env}) for env in ENVS]
    apply_ok(kubectl, namespace, yaml.safe_dump_all(docs))  # in process
    for env in ENVS:
        done = wait_phase(kubectl, "backup", namespace, f"{env}-before", ENDED, 180)
        assert done["phase"] == "Completed", done
        job_mode(site, env)
    burst = [_doc("Restore", f"back-{env}", {"backup": f"{env}-before"}) for env in ENVS]
    burst += [_doc("Backup", f"burst-{i}", {"environment": ENVS[i % 2]}) for i in range(BACKUPS)]
    assert len(burst) > LIMIT
    phases: dict[str, Any] = {}
    with watched_jobs(site) as counts:
        apply_ok(kubectl, namespace, yaml.safe_dump_all(burst))
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            phases = {d["metadata"]["name"]: status(kubectl, d["kind"].lower(), namespace,
                                                    d["metadata"]["name"]).get("phase")
                      for d in burst}  # fmt: skip
            if all(p in ENDED for p in phases.values()):
                break
            time.sleep(1)
    assert set(phases.values()) == {"Completed"}, phases
    peak = tuple(max(c[i] for c in counts) for i in range(3))
    print(f"peak over {len(counts)} Job changes (holding, let go, pods running): {peak}")
    assert peak[0] <= LIMIT and peak[1] <= LIMIT and peak[2] <= LIMIT, counts
    assert peak[2] >= 2, counts  # they did run side by side
    suspended = [c for c in counts if c[0] > c[1]]
    assert suspended, counts  # a Restore's Job held its slot suspended while pre quiesced
    events = kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert "JobQueued" in events  # the rest waited for a slot
    jobs = kubectl.json("get", "jobs", "-n", namespace)["items"]
    assert len(jobs) == len(burst) and not any(j["spec"].get("suspend") for j in jobs)
    assert stand_in_replicas(site) == STAND_IN_REPLICAS


def test_a_migrations_rollback_in_job_mode_runs_ferry_rollback_in_a_job_pod(
    site: main_flows.Site, operator: OperatorPod
) -> None:
    site.declare()
    kubectl, namespace = site.kubectl, site.namespace
    kubectl("wait", "--for=condition=Ready", "environment/pre", "-n", namespace,
            "--timeout=90s")  # fmt: skip
    store_claim(kubectl, operator, namespace)
    apply_ok(kubectl, namespace, migration("release", "dev", "pre"))  # in process
    applied = wait_migration(kubectl, namespace, "release", DONE, 240)
    assert applied["phase"] == "Succeeded", applied
    job_mode(site, "pre")
    apply_ok(kubectl, namespace, yaml.safe_dump(_doc("Restore", "undo", {"migration": "release"})))
    done = wait_phase(kubectl, "restore", namespace, "undo", ENDED, 240)
    assert done["phase"] == "Completed", done
    assert done["migration"] == {"name": "release", "id": applied["migrationId"]}
    assert done["job"]["phase"] == "Succeeded" and done["job"]["attempts"] == 1, done["job"]
    assert ledger(site.host_urls["pre"]) == [(applied["migrationId"], "rolled-back")]
    (pod,) = job_pods(kubectl, namespace, done["job"]["name"])
    container = pod["spec"]["containers"][0]
    assert container["args"][:2] == ["rollback", "--store"]
    assert container["image"] == f"{operator.image.repository}:{operator.image.tag}"
    told = json.loads(pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    assert (told["outcome"], told["migration"]) == ("completed", applied["migrationId"])
    assert told["tables"] == done["tables"] and told["safetyBackupId"] == done["safetyBackup"]["id"]
    job = kubectl.json("get", "job", done["job"]["name"], "-n", namespace)
    password = sa.make_url(site.operator_urls["pre"]).password
    shown = json.dumps(job) + json.dumps(done) + site.operator_log(400)
    assert password and password not in shown
