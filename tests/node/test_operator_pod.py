"""The operator's pod under what production does to it: probes, metrics, an image upgrade
while a Migration waits for approval, and a kill in the middle of an apply. In each case
the Migration ends exactly once."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest

from tests.e2e.main_flows import DONE, Site, _scalar
from tests.e2e.test_operator import apply_ok, migration, wait_phase
from tests.harness.cluster import wait_for
from tests.node.conftest import SYSTEM_NS, OperatorPod, build_image, wait_ready

pytestmark = pytest.mark.node
LEDGER = "select count(*) from ferry_migrations where result = 'succeeded'"


def _applied_events(site: Site, name: str) -> int:
    events = site.kubectl.json("get", "events", "-n", site.namespace)["items"]
    return sum(
        1
        for e in events
        if e.get("reason") == "Applied" and e["involvedObject"].get("name") == name
    )


def test_pod_runs_as_the_chart_declares(operator: OperatorPod) -> None:
    wait_ready(operator)
    pod = operator.pods()[0]
    spec: dict[str, Any] = pod["spec"]  # type: ignore[assignment]
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["securityContext"]["runAsUser"] == 10001
    assert spec["serviceAccountName"] == "ferry"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # The metrics Service answers through kube-proxy, as Prometheus would scrape it.
    service = operator.kubectl.json("get", "service", "-n", SYSTEM_NS, "ferry-metrics")
    ip, port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["port"]
    body = wait_for(
        lambda: urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=5).read().decode(),
        timeout=30,
        description="the metrics Service",
    )
    assert "ferry_" in body


def test_image_upgrade_while_a_migration_awaits_approval(site: Site, operator: OperatorPod) -> None:
    site.declare()
    apply_ok(
        site.kubectl,
        site.namespace,
        migration("gated", "dev", "pre", "  approval: {required: true}\n"),
    )
    waiting = wait_phase(site.kubectl, site.namespace, "gated", {"AwaitingApproval"} | DONE, 120)
    assert waiting["phase"] == "AwaitingApproval", waiting
    old = operator.pods()[0]["metadata"]["name"]  # type: ignore[index]
    rebuilt = build_image(operator.control_plane, tag="node-tier-upgrade")
    try:
        operator.install(image=rebuilt)
        wait_ready(operator)
        pod = operator.pods()[0]
        assert pod["metadata"]["name"] != old  # type: ignore[index]
        assert pod["spec"]["containers"][0]["image"].endswith(rebuilt.tag)  # type: ignore[index]
        still = wait_phase(site.kubectl, site.namespace, "gated", {"AwaitingApproval"} | DONE, 60)
        assert still["phase"] == "AwaitingApproval"
        site.kubectl.merge_patch(
            "migration/gated",
            site.namespace,
            {"spec": {"approval": {"required": True, "planDigest": waiting["planDigest"]}}},
            check=True,
        )
        done = wait_phase(site.kubectl, site.namespace, "gated", DONE, 120)
        assert done["phase"] == "Succeeded", done
        assert _scalar(site.host_urls["pre"], LEDGER) == 1
        assert _applied_events(site, "gated") == 1
    finally:
        operator.install()


def test_pod_killed_mid_apply_ends_the_migration_once(site: Site, operator: OperatorPod) -> None:
    operator.install(env={"FERRY_FAILPOINTS": "rows:uiSchemas=sleep(20)"})
    try:
        wait_ready(operator)
        site.declare()
        before = _scalar(site.host_urls["pre"], "select count(*) from roles")
        apply_ok(site.kubectl, site.namespace, migration("release", "dev", "pre"))
        wait_for(
            lambda: "failpoint rows:uiSchemas" in operator.log(200),
            timeout=120,
            description="the apply paused at rows:uiSchemas",
        )
        victim = operator.pods()[0]["metadata"]["name"]  # type: ignore[index]
        operator.kubectl(
            "delete", "pod", "-n", SYSTEM_NS, str(victim), "--grace-period=0", "--force"
        )
        done = wait_phase(site.kubectl, site.namespace, "release", DONE, 180)
        assert done["phase"] == "Succeeded", done
        assert _scalar(site.host_urls["pre"], LEDGER) == 1
        assert _scalar(site.host_urls["pre"], "select count(*) from roles") == before + 1
        assert _applied_events(site, "release") == 1
    finally:
        operator.install()
