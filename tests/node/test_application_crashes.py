"""The operator's pod crashes at each step of a promotion into a running application.

A stand-in application (Python's ``http.server`` as PID 1, so it ignores SIGTERM and its
pods stay Terminating for their whole grace period) runs as a Deployment with two
replicas; the Environment ``pre`` declares it. At each step the operator's pod dies: its
pod force-deleted (the Deployment creates a new one) or its container SIGKILLed through
containerd (the kubelet restarts it in the same pod). Each time the new operator ends the
Migration as it should (Succeeded, or RolledBack when the health stays bad), the ledger
records it exactly once, and the workload is back at its recorded two replicas.

Failpoints (``FERRY_FAILPOINTS``, the chart's ``operator.env``) hold the operator in the
backup, the apply and after the commit; the crash also installs the chart without them,
so the new pod does not pause again. Quiescing and the health wait need no failpoint:
the stand-in's slow termination and its late health answer hold those steps open.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.db.dbhelpers import rows
from tests.e2e.main_flows import DONE, Site, _scalar
from tests.e2e.test_operator import apply_ok, migration, status, wait_phase
from tests.harness.cluster import wait_for
from tests.node.conftest import (
    CHART,
    RELEASE,
    STAND_IN_REPLICAS,
    SYSTEM_NS,
    OperatorPod,
    StandIn,
    chart_values,
    stand_in_pods,
    stand_in_ready,
    stand_in_replicas,
    wait_ready,
)
from tests.node.test_application import _conditions

pytestmark = pytest.mark.node
REPLICAS = STAND_IN_REPLICAS


def phase(site: Site) -> str:
    return str(status(site.kubectl, "migration", site.namespace, "release").get("phase"))


# --- the ways the operator dies ------------------------------------------------------


def operator_pod(operator: OperatorPod) -> dict[str, Any]:
    pods: list[dict[str, Any]] = operator.pods()  # type: ignore[assignment]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    assert len(live) == 1, live
    return live[0]


def delete_pod(operator: OperatorPod, replicas: int = 1) -> None:
    """The chart installed without failpoints (and with ``replicas`` operator pods), then
    the running pod force-deleted: it dies at once, wherever it was."""
    victim = operator_pod(operator)["metadata"]["name"]
    values = chart_values(operator.image, operator.claim)
    values["replicaCount"] = replicas
    operator.helm("upgrade", "--install", RELEASE, str(CHART), values=values)
    operator.kubectl(
        "delete", "pod", "-n", SYSTEM_NS, str(victim), "--grace-period=0", "--force"
    )  # fmt: skip


def kill_container(operator: OperatorPod) -> None:
    """SIGKILL to the operator's container through the node's containerd; the kubelet
    restarts it in the same pod."""
    pod = operator_pod(operator)
    restarts = pod["status"]["containerStatuses"][0]["restartCount"]
    container = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    cp = operator.control_plane
    ctr = f"{cp.value('FERRY_NODE_BIN')}/ctr"
    address = cp.value("CONTAINERD_ADDRESS")
    subprocess.run(
        [ctr, "--address", address, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", container],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip

    def restarted() -> bool:
        now = operator_pod(operator)
        return bool(
            now["metadata"]["name"] == pod["metadata"]["name"]
            and now["status"]["containerStatuses"][0]["restartCount"] == restarts + 1
        )

    wait_for(restarted, timeout=60, description="the kubelet restarted the operator's container")


# --- the cases -----------------------------------------------------------------------


READY = StandIn(health_path="/healthy", health_wait=60)


@dataclass(frozen=True)
class Case:
    failpoint: str  # FERRY_FAILPOINTS while the first pod runs ("" for none)
    crash: Callable[[OperatorPod], None]
    reached: Callable[[Site, OperatorPod], bool]  # the step is under way: crash now
    ended: str = "Succeeded"
    stand_in: StandIn = READY


def paused_at(step: str) -> Callable[[Site, OperatorPod], bool]:
    def reached(site: Site, operator: OperatorPod) -> bool:
        return f"failpoint {step}" in operator.log(200) and stand_in_replicas(site) == 0

    return reached


def quiescing(site: Site, operator: OperatorPod) -> bool:
    """Scaled to zero, its pods still terminating (they ignore SIGTERM)."""
    return (
        phase(site) == "Quiescing"
        and stand_in_replicas(site) == 0
        and bool(stand_in_pods(site, True))
    )


def rolling_back(site: Site, operator: OperatorPod) -> bool:
    """Unhealthy, so quiesced again to roll back; its pods still terminating."""
    pods = stand_in_pods(site, terminating=True)
    return phase(site) == "RollingBack" and stand_in_replicas(site) == 0 and bool(pods)


def checking_health(site: Site, operator: OperatorPod) -> bool:
    return phase(site) == "CheckingHealth" and stand_in_replicas(site) == REPLICAS


# Healthy 25 s after its pods start: the crash lands while the operator waits for it.
LATE = StandIn(healthy_after=25, health_path="/healthy", health_wait=120)
NEVER = StandIn(healthy_after=-1, health_path="/healthy", health_wait=20)
SLOW_NEVER = StandIn(grace=15, healthy_after=-1, health_path="/healthy", health_wait=10)
CASES = {
    # Its pods take 30 s to terminate: the crash lands while the operator waits for them.
    "quiescing": Case("", kill_container, quiescing, stand_in=StandIn(grace=30)),
    "backing-up": Case("member:uiSchemas=sleep(300)", delete_pod, paused_at("member:uiSchemas")),
    "applying": Case("rows:uiSchemas=sleep(300)", delete_pod, paused_at("rows:uiSchemas")),
    "committed": Case("committed=sleep(300)", delete_pod, paused_at("committed")),
    "checking-health": Case("", kill_container, checking_health, stand_in=LATE),
    "unhealthy": Case("", delete_pod, checking_health, "RolledBack", stand_in=NEVER),
    # Never healthy, its pods slow to terminate: the crash lands in the rollback's quiesce.
    "rolling-back": Case("", kill_container, rolling_back, "RolledBack", stand_in=SLOW_NEVER),
}


@pytest.mark.parametrize("step", list(CASES))
def test_operator_crash_at_each_step_ends_the_migration_once(
    site: Site, operator: OperatorPod, node_base_image: str, step: str
) -> None:
    case = CASES[step]
    operator.install(env={"FERRY_FAILPOINTS": case.failpoint} if case.failpoint else None)
    try:
        wait_ready(operator)
        case.stand_in.declare(site, node_base_image)
        roles = _scalar(site.host_urls["pre"], "select count(*) from roles")
        apply_ok(site.kubectl, site.namespace, migration("release", "dev", "pre"))
        wait_for(lambda: case.reached(site, operator), timeout=180, description=f"the step {step}")
        assert phase(site) not in DONE
        case.crash(operator)
        wait_ready(operator)
        done = wait_phase(site.kubectl, site.namespace, "release", DONE, 240)
    finally:
        operator.install()
    assert done["phase"] == case.ended, done
    # The count recorded before the first scale to zero, restored: never zero.
    assert done["application"]["replicas"] == REPLICAS
    assert done["application"]["quiesced"] is False
    assert _conditions(done)["ApplicationQuiesced"] == ("False", "Resumed")
    assert stand_in_replicas(site) == REPLICAS
    wait_for(lambda: stand_in_ready(site), timeout=120, description="the stand-in serves again")
    ledger = [r[0] for r in rows(site.host_urls["pre"], "ferry_migrations", "result")]
    applied = roles + 1 if case.ended == "Succeeded" else roles
    assert ledger == ["succeeded" if case.ended == "Succeeded" else "rolled-back"], ledger
    assert _scalar(site.host_urls["pre"], "select count(*) from roles") == applied


def test_migration_deleted_while_quiesced_and_the_operator_down_resumes_the_application(
    site: Site, operator: OperatorPod, node_base_image: str
) -> None:
    operator.install(env={"FERRY_FAILPOINTS": "rows:uiSchemas=sleep(300)"})
    try:
        wait_ready(operator)
        StandIn().declare(site, node_base_image)
        apply_ok(site.kubectl, site.namespace, migration("release", "dev", "pre"))
        wait_for(
            lambda: paused_at("rows:uiSchemas")(site, operator),
            timeout=180,
            description="the apply paused while the stand-in is quiesced",
        )
        delete_pod(operator, replicas=0)
        wait_for(lambda: not operator.pods(), timeout=60, description="no operator pod")
        site.kubectl("delete", "migration", "release", "-n", site.namespace, "--wait=false")
        held = site.kubectl.json("get", "migration", "release", "-n", site.namespace)["metadata"]
        assert "ferry.dev/finalizer" in held["finalizers"] and held["deletionTimestamp"]
        assert stand_in_replicas(site) == 0  # nothing resumed it while the operator was down
        operator.install()
        gone = ("get", "migration", "release", "-n", site.namespace)
        wait_for(
            lambda: site.kubectl(*gone, check=False).returncode != 0,
            timeout=120,
            description="the Migration is gone",
        )
        log = operator.log(400)
    finally:
        operator.install()
    assert stand_in_replicas(site) == REPLICAS
    assert f"resumed Deployment/web back at {REPLICAS} replicas" in log
    wait_for(lambda: stand_in_ready(site), timeout=120, description="the stand-in serves again")
