"""The application is part of the release, on the real node: a stand-in application runs
as a Deployment (two Ready pods behind a Service), and the operator's pod quiesces it,
applies, resumes it and checks its health through the Service name, as it would
NocoBase's. An application that does not come back healthy has the migration rolled back.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.main_flows import DONE, Site, _scalar
from tests.e2e.test_operator import apply_ok, migration, status, wait_phase
from tests.harness.cluster import wait_for
from tests.node.conftest import (
    STAND_IN_REPLICAS,
    OperatorPod,
    StandIn,
    stand_in_pods,
    stand_in_ready,
)

pytestmark = pytest.mark.node
REPLICAS = STAND_IN_REPLICAS


def _conditions(got: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in got.get("conditions", [])}


def test_promotion_quiesces_and_resumes_a_running_deployment(
    site: Site, operator: OperatorPod, node_base_image: str
) -> None:
    before = StandIn(health_path="/").declare(site, node_base_image)
    apply_ok(site.kubectl, site.namespace, migration("release", "dev", "pre"))
    done = wait_phase(site.kubectl, site.namespace, "release", DONE, 180)
    assert done["phase"] == "Succeeded", done
    assert _conditions(done)["ApplicationQuiesced"] == ("False", "Resumed")
    assert _conditions(done)["ApplicationHealthy"][0] == "True"
    wait_for(lambda: stand_in_ready(site), timeout=120, description="the stand-in Ready again")
    # Every pod that served before the write was stopped; new ones serve the new state.
    assert not before & {p["metadata"]["uid"] for p in stand_in_pods(site)}
    deployment = site.kubectl.json("get", "deployment", "web", "-n", site.namespace)
    assert deployment["spec"]["replicas"] == REPLICAS
    reasons = site.kubectl(
        "get", "events", "-n", site.namespace, "--field-selector",
        "involvedObject.name=release", "-o", "jsonpath={.items[*].reason}",
    ).stdout  # fmt: skip
    assert "Applied" in reasons


def test_unhealthy_application_is_rolled_back_on_the_node(
    site: Site, operator: OperatorPod, node_base_image: str
) -> None:
    StandIn(health_path="/no-such-page").declare(site, node_base_image)  # answers 404
    roles = _scalar(site.host_urls["pre"], "select count(*) from roles")
    apply_ok(site.kubectl, site.namespace, migration("release", "dev", "pre"))
    done = wait_phase(site.kubectl, site.namespace, "release", DONE, 240)
    assert done["phase"] == "RolledBack", done
    assert _conditions(done)["ApplicationHealthy"] == ("False", "ApplicationUnhealthy")
    assert _scalar(site.host_urls["pre"], "select count(*) from roles") == roles
    wait_for(lambda: stand_in_ready(site), timeout=120, description="the stand-in resumed")
    assert status(site.kubectl, "environment", site.namespace, "pre")["reachable"] is True
