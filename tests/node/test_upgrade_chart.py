"""Upgrading from the previous chart, as docs/install.md ("Upgrading") tells users to.

``helm upgrade`` never touches a chart's ``crds/``: after it, the new operator meets the
previous release's CRDs, which would silently prune its new fields. It must refuse to
reconcile (log line, Event on the CRD, metric) and start on its own once the CRDs of its
release are applied.
"""

from __future__ import annotations

import subprocess
import tarfile
import urllib.request
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import pytest

from tests.e2e.conftest import CRDS_DIR, Kubectl
from tests.e2e.test_operator import apply_ok
from tests.harness.cluster import REPO_ROOT, wait_for
from tests.node.conftest import RELEASE, SYSTEM_NS, OperatorPod, wait_ready

pytestmark = pytest.mark.node
#: The chart as last released before the CRD schema check (0.1.0, 2026-11-30).
PREVIOUS = "d8f0dd3"


def _previous_chart(into: Path) -> Path:
    """``charts/ferry`` at :data:`PREVIOUS`, from this repository's history."""
    archive = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "archive", "--format=tar", PREVIOUS, "charts/ferry"],
        capture_output=True,
        check=True,
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    return into / "charts" / "ferry"


@pytest.fixture
def alone(operator: OperatorPod, kubectl: Kubectl) -> Iterator[OperatorPod]:
    """The session's release is taken down for the test and put back (current CRDs too)."""
    operator.helm("uninstall", RELEASE, "--wait")
    try:
        yield operator
    finally:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS_DIR))
        operator.install()


def _metric(operator: OperatorPod, crd: str) -> float | None:
    service = operator.kubectl.json("get", "service", "-n", SYSTEM_NS, f"{RELEASE}-metrics")
    ip, port = service["spec"]["clusterIP"], service["spec"]["ports"][0]["port"]
    body = urllib.request.urlopen(f"http://{ip}:{port}/metrics", timeout=5).read().decode()
    line = next(
        (
            ln
            for ln in body.splitlines()
            if ln.startswith(f'ferry_crd_schema_mismatch{{crd="{crd}"')
        ),
        "",
    )
    return float(line.rsplit(" ", 1)[-1]) if line else None


def test_upgrade_from_the_previous_chart(
    alone: OperatorPod, kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    old = _previous_chart(tmp_path)
    # The previous release's CRDs, exactly as its chart ships them.
    kubectl("replace", "-f", str(old / "crds"))
    alone.helm("install", RELEASE, str(old), "--wait", "--timeout=180s", values={
        "image": {"repository": alone.image.repository, "tag": alone.image.tag,
                  "pullPolicy": "Never"},
    })  # fmt: skip
    # Written for the previous CRD: none of this release's fields.
    dev = f"""
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec: {{stage: development, database: {{dialect: sqlite, url: "sqlite:///{tmp_path}/x.db"}}}}
"""
    apply_ok(kubectl, namespace, dev)

    alone.install()  # helm upgrade to this chart: its crds/ are not applied
    wait_ready(alone)
    env_crd = "environments.ferry.dev"
    annotations = kubectl.json("get", "crd", env_crd)["metadata"].get("annotations") or {}
    assert "ferry.dev/schema-digest" not in annotations
    wait_for(lambda: f"CRD {env_crd} has no ferry.dev/schema-digest" in alone.log(200),
             timeout=60, description="the operator's log line about the lagging CRD")  # fmt: skip
    wait_for(lambda: _metric(alone, env_crd) == 1.0, timeout=60, description="the metric at 1")
    events = kubectl.json("get", "events", "-n", "default")["items"]
    assert any(
        e.get("reason") == "CRDSchemaMismatch" and e["involvedObject"].get("name") == env_crd
        for e in events
    )
    status = kubectl.json("get", "environment", "dev", "-n", namespace).get("status")
    assert not status, f"reconciled against the previous CRDs: {status}"

    # The documented fix: this release's CRDs, then the operator starts by itself.
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS_DIR))
    wait_for(lambda: _metric(alone, env_crd) == 0.0, timeout=120, description="metric back to 0")
    wait_for(
        lambda: kubectl.json("get", "environment", "dev", "-n", namespace).get("status") or {},
        timeout=120,
        description="the Environment reconciled after the CRDs were applied",
    )
