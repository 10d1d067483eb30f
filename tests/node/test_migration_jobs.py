"""Migrations in Job mode on the real node: the Job's pod, from the image built here, runs
``ferry migrate`` with the approved digest and the operator's migration ID against
PostgreSQL through its Service, its pre-migration backup on the node's volume (the
claim of ``tests/node/test_jobs.py``).

The target's ledger row of that ID decides how the Migration ends: a Job whose pod
committed and was then deleted, before the operator looked, still ends Succeeded once.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from controller.flows.application import FINALIZER
from tests.e2e import main_flows
from tests.e2e.main_flows import _scalar
from tests.e2e.test_operator import apply_ok, migration, status, wait_phase
from tests.harness.cluster import wait_for
from tests.node.conftest import (
    RELEASE,
    STAND_IN_REPLICAS,
    SYSTEM_NS,
    OperatorPod,
    StandIn,
    stand_in_replicas,
    wait_ready,
)
from tests.node.test_jobs import job_mode, job_pods, store_claim

pytestmark = pytest.mark.node

DONE = {"Succeeded", "Failed", "RolledBack"}
LEDGER = "select id, result from ferry_migrations"
NEW_ROLE = "select count(*) from roles"


def ledger(url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [(str(r[0]), str(r[1])) for r in conn.exec_driver_sql(LEDGER)]
    finally:
        engine.dispose()


def declared(site: main_flows.Site) -> None:
    """dev → pre → prod declared, pre Ready and in Job mode (no claim yet)."""
    site.declare()
    site.kubectl("wait", "--for=condition=Ready", "environment/pre", "-n", site.namespace,
                 "--timeout=90s")  # fmt: skip
    job_mode(site, "pre")


def applied_events(site: main_flows.Site, name: str) -> list[dict[str, Any]]:
    events = site.kubectl.json(
        "get", "events", "-n", site.namespace, "--field-selector", f"involvedObject.name={name}"
    )["items"]
    return [e for e in events if e["reason"] == "Applied"]


def test_a_migration_applies_in_a_job_pod_and_ends_succeeded_with_one_ledger_row(
    site: main_flows.Site, operator: OperatorPod
) -> None:
    declared(site)
    host = store_claim(site.kubectl, operator, site.namespace)
    roles = _scalar(site.host_urls["pre"], NEW_ROLE)
    apply_ok(site.kubectl, site.namespace, migration("release", "dev", "pre"))
    done = wait_phase(site.kubectl, site.namespace, "release", DONE, 240)
    assert done["phase"] == "Succeeded", done
    assert done["job"]["phase"] == "Succeeded" and done["job"]["attempts"] == 1
    assert ledger(site.host_urls["pre"]) == [(done["migrationId"], "succeeded")]
    assert _scalar(site.host_urls["pre"], NEW_ROLE) == roles + 1
    assert (host / "pre" / done["backup"]["id"] / "manifest.json").is_file()
    (pod,) = job_pods(site.kubectl, site.namespace, done["job"]["name"])
    container = pod["spec"]["containers"][0]
    assert container["image"] == f"{operator.image.repository}:{operator.image.tag}"
    assert container["args"][:3] == ["migrate", "--id", done["migrationId"]]
    assert container["args"][4] == done["planDigest"]  # --approved-digest
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    told = json.loads(terminated["message"])
    assert (told["outcome"], told["status"], told["id"]) == (
        "completed",
        "succeeded",
        done["migrationId"],
    )
    assert told["backupId"] == done["backup"]["id"]
    job = site.kubectl.json("get", "job", done["job"]["name"], "-n", site.namespace)
    shown = json.dumps(job) + json.dumps(done) + site.operator_log(400)
    for env in ("dev", "pre"):
        password = sa.make_url(site.operator_urls[env]).password
        assert password and password not in shown


def _scale_operator(site: main_flows.Site, replicas: int) -> None:
    site.kubectl("scale", f"deployment/{RELEASE}", "-n", SYSTEM_NS, f"--replicas={replicas}")


def test_a_job_pod_deleted_after_its_commit_still_ends_the_migration_succeeded_once(
    site: main_flows.Site, operator: OperatorPod
) -> None:
    """The Job's pod cannot start until its store's claim exists: the operator is
    stopped meanwhile, the pod then commits and is deleted, and the restarted operator
    has only the ledger to go by."""
    declared(site)
    kubectl, namespace = site.kubectl, site.namespace
    apply_ok(kubectl, namespace, migration("release", "dev", "pre"))
    wait_for(lambda: bool(status(kubectl, "migration", namespace, "release").get("job")),
             timeout=120, description="the Migration's Job created")  # fmt: skip
    try:
        _scale_operator(site, 0)
        wait_for(lambda: not operator.pods(), timeout=120, description="no operator pod")
        seen = status(kubectl, "migration", namespace, "release")
        assert seen["phase"] == "Applying", seen  # the operator never saw the Job end
        store_claim(kubectl, operator, namespace)
        name = seen["job"]["name"]

        def complete() -> bool:
            got = kubectl.json("get", "job", name, "-n", namespace)["status"]
            return int(got.get("succeeded") or 0) == 1

        wait_for(complete, timeout=240, description=f"Job {name} complete")
        assert len(ledger(site.host_urls["pre"])) == 1
        for pod in job_pods(kubectl, namespace, name):
            kubectl("delete", "pod", pod["metadata"]["name"], "-n", namespace, "--wait=true")
        assert job_pods(kubectl, namespace, name) == []
    finally:
        _scale_operator(site, 1)
        wait_ready(operator)
    done = wait_phase(kubectl, namespace, "release", DONE, 180)
    assert done["phase"] == "Succeeded", done
    assert done["message"] == "applied to pre" and done["backup"]["id"]
    assert ledger(site.host_urls["pre"]) == [(done["migrationId"], "succeeded")]
    counted = kubectl.json("get", "job", name, "-n", namespace)["status"]
    assert counted.get("succeeded") == 1 and not counted.get("failed"), counted
    events = applied_events(site, "release")
    assert len(events) == 1 and int(events[0].get("count") or 1) == 1, events


def test_a_migration_deleted_while_its_job_waits_stops_it_then_resumes_the_application(
    site: main_flows.Site, operator: OperatorPod, node_base_image: str
) -> None:
    """pre declares the stand-in; its Job's pod cannot start (no store claim yet), so
    the application is held at zero when the Migration is deleted: its finalizer
    deletes the Job, waits until no pod of it is left, then scales the stand-in back."""
    StandIn().declare(site, node_base_image)
    kubectl, namespace = site.kubectl, site.namespace
    kubectl("wait", "--for=condition=Ready", "environment/pre", "-n", namespace,
            "--timeout=90s")  # fmt: skip
    job_mode(site, "pre")
    roles = _scalar(site.host_urls["pre"], NEW_ROLE)
    apply_ok(kubectl, namespace, migration("release", "dev", "pre"))

    def held() -> bool:
        got = status(kubectl, "migration", namespace, "release")
        return bool(got.get("job")) and (got.get("application") or {}).get("quiesced") is True

    wait_for(held, timeout=180, description="the Migration's Job created, pre quiesced")
    job = status(kubectl, "migration", namespace, "release")["job"]["name"]
    assert stand_in_replicas(site) == 0
    meta = kubectl.json("get", "migration", "release", "-n", namespace)["metadata"]
    assert FINALIZER in (meta.get("finalizers") or []), meta  # the finalizer holds it
    kubectl("delete", "migration", "release", "-n", namespace, "--wait=false")
    wait_for(
        lambda: kubectl("get", "migration", "release", "-n", namespace, check=False).returncode,
        timeout=150,
        description="the deleted Migration gone",
    )
    assert kubectl("get", "job", job, "-n", namespace, check=False).returncode != 0
    assert job_pods(kubectl, namespace, job) == []
    deployment = kubectl.json("get", "deployment", "web", "-n", namespace)
    assert deployment["spec"]["replicas"] == STAND_IN_REPLICAS, site.operator_log(60)
    assert _scalar(site.host_urls["pre"], NEW_ROLE) == roles  # nothing was applied
