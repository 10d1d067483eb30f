"""The application is part of the release, on the real node: a stand-in application runs
as a Deployment (two Ready pods behind a Service), and the operator's pod quiesces it,
applies, resumes it and checks its health through the Service name, as it would
NocoBase's. An application that does not come back healthy has the migration rolled back.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.main_flows import DONE, Site, _scalar
from tests.e2e.test_operator import apply_ok, migration, status, wait_phase
from tests.harness.cluster import REPO_ROOT, ControlPlane, wait_for
from tests.node.conftest import OperatorPod

pytestmark = pytest.mark.node
REPLICAS = 2
BASE = "localhost/ferry-base:bookworm"

# Python's http.server from the base image: 200 on /, 404 on any missing path.
STAND_IN = f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      securityContext: {{runAsNonRoot: true, runAsUser: 65534}}
      containers:
      - name: web
        image: {BASE}
        imagePullPolicy: Never
        command: [python3, -m, http.server, "8000", --directory, /usr/share]
        ports: [{{containerPort: 8000}}]
        readinessProbe: {{httpGet: {{path: /, port: 8000}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 8000, targetPort: 8000}}]
"""


@pytest.fixture(scope="session")
def base_image(control_plane: ControlPlane) -> str:
    """The Debian base image (hack/image/base.sh), imported into the node."""
    proc = subprocess.run(
        [str(REPO_ROOT / "hack" / "image" / "base.sh")],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref, archive = proc.stdout.strip().splitlines()[-1].split()
    control_plane.import_image(Path(archive))
    return ref


def _pods(site: Site) -> list[dict[str, Any]]:
    got = site.kubectl.json("get", "pods", "-n", site.namespace, "-l", "app=web")
    return [p for p in got["items"] if not p["metadata"].get("deletionTimestamp")]


def _ready(site: Site) -> bool:
    pods = _pods(site)
    return len(pods) == REPLICAS and all(
        c.get("ready") for p in pods for c in p.get("status", {}).get("containerStatuses", [])
    )


def _declare_with_application(site: Site, health_path: str) -> set[str]:
    """The stand-in running and Ready; dev, and pre declaring it. Returns its pods' UIDs."""
    apply_ok(site.kubectl, site.namespace, STAND_IN)
    wait_for(lambda: _ready(site), timeout=120, description="the stand-in's pods Ready")
    site.declare()
    url = f"http://web.{site.namespace}.svc:8000{health_path}"
    site.kubectl.merge_patch(
        "environment/pre",
        site.namespace,
        {
            "spec": {
                "allowRunningApplication": None,
                "application": {
                    "workload": {"kind": "Deployment", "name": "web"},
                    "quiesce": {"timeoutSeconds": 60},
                    "health": {"url": url, "timeoutSeconds": 15},
                },
            }
        },
        check=True,
    )
    return {p["metadata"]["uid"] for p in _pods(site)}


def _conditions(got: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in got.get("conditions", [])}


def test_promotion_quiesces_and_resumes_a_running_deployment(
    site: Site, operator: OperatorPod, base_image: str
) -> None:
    before = _declare_with_application(site, "/")
    apply_ok(site.kubectl, site.namespace, migration("release", "dev", "pre"))
    done = wait_phase(site.kubectl, site.namespace, "release", DONE, 180)
    assert done["phase"] == "Succeeded", done
    assert _conditions(done)["ApplicationQuiesced"] == ("False", "Resumed")
    assert _conditions(done)["ApplicationHealthy"][0] == "True"
    wait_for(lambda: _ready(site), timeout=120, description="the stand-in Ready again")
    # Every pod that served before the write was stopped; new ones serve the new state.
    assert not before & {p["metadata"]["uid"] for p in _pods(site)}
    deployment = site.kubectl.json("get", "deployment", "web", "-n", site.namespace)
    assert deployment["spec"]["replicas"] == REPLICAS
    reasons = site.kubectl(
        "get", "events", "-n", site.namespace, "--field-selector",
        "involvedObject.name=release", "-o", "jsonpath={.items[*].reason}",
    ).stdout  # fmt: skip
    assert "Applied" in reasons


def test_unhealthy_application_is_rolled_back_on_the_node(
    site: Site, operator: OperatorPod, base_image: str
) -> None:
    _declare_with_application(site, "/no-such-page")  # http.server answers 404
    roles = _scalar(site.host_urls["pre"], "select count(*) from roles")
    apply_ok(site.kubectl, site.namespace, migration("release", "dev", "pre"))
    done = wait_phase(site.kubectl, site.namespace, "release", DONE, 240)
    assert done["phase"] == "RolledBack", done
    assert _conditions(done)["ApplicationHealthy"] == ("False", "ApplicationUnhealthy")
    assert _scalar(site.host_urls["pre"], "select count(*) from roles") == roles
    wait_for(lambda: _ready(site), timeout=120, description="the stand-in resumed")
    assert status(site.kubectl, "environment", site.namespace, "pre")["reachable"] is True
