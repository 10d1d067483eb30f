"""CRDs that lag the operator, on a real API server: the operator waits, says so three
ways (log line, Event, metric), touches nothing, and starts once the CRDs are current.

The cluster's CRDs are the session's (``ferry_crds``); this module replaces two of them
with an older release's and puts the current ones back afterwards, whatever happens.
"""

from __future__ import annotations

import functools
import json
import socket
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api.crd_digest import ANNOTATION, schema_digest
from controller.api.crd_schema import EXPECTED
from tests.e2e.conftest import CRDS_DIR, Kubectl, crd_established
from tests.e2e.operator import Operator
from tests.e2e.test_operator import apply_ok, dev_and_pre, migration, status, wait_phase
from tests.harness.cluster import ControlPlane, wait_for

pytestmark = pytest.mark.e2e

ENV_CRD, MIG_CRD = "environments.ferry.dev", "migrations.ferry.dev"
CHECK_SECONDS = 1


def older_environment_crd() -> tuple[dict[str, Any], str]:
    """The Environment CRD of an older release: no ``status.fingerprint`` yet (so the
    API server would prune the fingerprint this operator writes), and that release's
    own, correct, digest."""
    crd = yaml.safe_load((CRDS_DIR / "ferry.dev_environments.yaml").read_text())
    status_schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
    del status_schema["status"]["properties"]["fingerprint"]
    digest = schema_digest(crd["spec"])
    crd["metadata"]["annotations"][ANNOTATION] = digest
    return crd, digest


def unannotated_migration_crd() -> dict[str, Any]:
    """The Migration CRD as releases before schema digests shipped it."""
    crd = yaml.safe_load((CRDS_DIR / "ferry.dev_migrations.yaml").read_text())
    del crd["metadata"]["annotations"]
    return dict(crd)


def installed_digest(kubectl: Kubectl, name: str) -> str | None:
    annotations = kubectl.json("get", "crd", name)["metadata"].get("annotations") or {}
    return annotations.get(ANNOTATION)


def restore_current_crds(kubectl: Kubectl) -> None:
    """``crds/`` as the session applied it, Established and carrying the expected digests."""
    kubectl("apply", "-f", str(CRDS_DIR))
    for name, digest in EXPECTED.items():
        wait_for(
            lambda n=name, d=digest: (
                installed_digest(kubectl, n) == d and crd_established(kubectl, n)
            ),
            timeout=30,
            description=f"CRD {name} current again",
        )


@pytest.fixture
def lagging_crds(kubectl: Kubectl, ferry_crds: list[str]) -> Iterator[str]:
    """An older Environment CRD and an unannotated Migration CRD; the current CRDs are
    restored at teardown so the rest of the session is unaffected. Yields the older
    Environment CRD's digest."""
    older, digest = older_environment_crd()
    try:
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all([older, unannotated_migration_crd()]))
        wait_for(
            lambda: (
                installed_digest(kubectl, ENV_CRD) == digest
                and installed_digest(kubectl, MIG_CRD) is None
            ),
            timeout=30,
            description="the lagging CRDs installed",
        )
        yield digest
    finally:
        restore_current_crds(kubectl)


def free_ports(count: int) -> list[int]:
    ports = []
    for _ in range(count):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(int(s.getsockname()[1]))
    return ports


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


def sample(metrics_url: str, crd: str) -> str | None:
    """The value of ``ferry_crd_schema_mismatch{crd=...}`` as served, or ``None``."""
    prefix = f'ferry_crd_schema_mismatch{{crd="{crd}"}} '
    for line in fetch(metrics_url).splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :]
    return None


def crd_events(kubectl: Kubectl, crd: str, reason: str) -> list[dict[str, Any]]:
    got = kubectl.json(
        "get", "events", "-n", "default",
        "--field-selector", f"involvedObject.name={crd},reason={reason}",
    )  # fmt: skip
    return list(got.get("items", []))


def holds_for(seconds: float, invariant: Callable[[], bool], description: str) -> None:
    """``invariant`` stays true, polled, for ``seconds`` (a negative check needs a window:
    here several of the operator's re-checks)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert invariant(), description
        time.sleep(0.5)


def untouched(kubectl: Kubectl, namespace: str) -> bool:
    """No Ferry object in ``namespace`` has a status, a finalizer or Kopf's annotations."""
    items = kubectl.json("get", "environments,migrations", "-n", namespace)["items"]
    assert len(items) == 3
    return not any(
        item.get("status")
        or item["metadata"].get("finalizers")
        or any(k.startswith("ferry.dev/") for k in item["metadata"].get("annotations") or {})
        for item in items
    )


@pytest.fixture
def waiting_operator(
    control_plane: ControlPlane, namespace: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Operator]:
    """The operator for this namespace, re-checking CRDs every second; started by the
    test (after its objects exist), stopped and its log shown on failure here."""
    metrics_port, liveness_port = free_ports(2)
    op = Operator(
        control_plane,
        namespace,
        tmp_path / "operator.log",
        env={"FERRY_CRD_CHECK_SECONDS": str(CHECK_SECONDS)},
        metrics_port=metrics_port,
        liveness=f"http://127.0.0.1:{liveness_port}/healthz",
    )
    yield op
    op.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"\n--- operator log ({op.log}) ---\n{op.tail(200)}")


def test_lagging_crds_hold_the_operator_until_the_current_ones_are_applied(
    kubectl: Kubectl,
    namespace: str,
    lagging_crds: str,
    sqlite_envs: dict[str, str],
    waiting_operator: Operator,
) -> None:
    apply_ok(kubectl, namespace, dev_and_pre(sqlite_envs) + "---" + migration("m", "dev", "pre"))
    op = waiting_operator.start()
    metrics_url = f"http://127.0.0.1:{op.metrics_port}/metrics"
    _the_operator_waits_and_says_why(kubectl, namespace, op, metrics_url, lagging_crds)
    assert fetch(op.liveness) == '{"waiting": "CRDs"}'
    holds_for(5 * CHECK_SECONDS, functools.partial(untouched, kubectl, namespace), "touched")
    assert sample(metrics_url, ENV_CRD) == "1.0"

    restore_current_crds(kubectl)
    _the_operator_starts(kubectl, namespace, op, metrics_url, op.liveness)


def _the_operator_waits_and_says_why(
    kubectl: Kubectl, namespace: str, op: Operator, metrics_url: str, older: str
) -> None:
    env_line = f"CRD {ENV_CRD} has schema {older}; this operator expects schema {EXPECTED[ENV_CRD]}"
    mig_line = f"CRD {MIG_CRD} has no {ANNOTATION} annotation"
    wait_for(
        lambda: env_line in op.tail(400) and mig_line in op.tail(400),
        timeout=60,
        description="the log lines naming both CRDs",
    )
    lines = [line for line in op.tail(400).splitlines() if f"CRD {ENV_CRD}" in line]
    assert len(lines) == 1, lines  # reported once, not at every re-check
    assert "kubectl apply --server-side --force-conflicts -f crds/" in lines[0]
    wait_for(
        lambda: sample(metrics_url, ENV_CRD) == "1.0" and sample(metrics_url, MIG_CRD) == "1.0",
        timeout=30,
        description="ferry_crd_schema_mismatch 1 for both",
    )
    assert sample(metrics_url, "backups.ferry.dev") == "0.0"
    for crd in (ENV_CRD, MIG_CRD):
        (event,) = wait_for(
            lambda c=crd: crd_events(kubectl, c, "CRDSchemaMismatch"),
            timeout=30,
            description=f"the CRDSchemaMismatch event on {crd}",
        )
        assert event["type"] == "Warning"
        assert event["involvedObject"]["kind"] == "CustomResourceDefinition"
        assert event["involvedObject"]["uid"] == kubectl.json("get", "crd", crd)["metadata"]["uid"]
        assert EXPECTED[crd] in event["message"]
    described = kubectl("describe", "crd", ENV_CRD).stdout
    assert "CRDSchemaMismatch" in described


def _the_operator_starts(
    kubectl: Kubectl, namespace: str, op: Operator, metrics_url: str, liveness_url: str
) -> None:
    kubectl("wait", "--for=condition=Ready", "environment/dev", "environment/pre",
            "-n", namespace, "--timeout=90s")  # fmt: skip
    # Written under the current CRD, the field the older one lacked is kept.
    assert status(kubectl, "environment", namespace, "pre")["fingerprint"].startswith("sha256:")
    assert wait_phase(kubectl, namespace, "m", {"Succeeded", "Failed"}, 90)["phase"] == (
        "Succeeded"
    )
    assert "every CRD is current: starting to reconcile" in op.tail(2000)
    assert sample(metrics_url, ENV_CRD) == "0.0" and sample(metrics_url, MIG_CRD) == "0.0"
    for crd in (ENV_CRD, MIG_CRD):
        (event,) = wait_for(
            lambda c=crd: crd_events(kubectl, c, "CRDSchemaCurrent"),
            timeout=30,
            description=f"the CRDSchemaCurrent event on {crd}",
        )
        assert event["type"] == "Normal"
    assert "orbidden" not in op.tail(100_000)
    # Kopf's own liveness endpoint took over the port the waiting operator answered on.
    wait_for(lambda: json.loads(fetch(liveness_url)) == {}, timeout=30, description="Kopf's probe")
