"""The operator, driven the way users drive it: kubectl apply, then watch status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl
from tests.harness.cluster import wait_for

pytestmark = pytest.mark.e2e


def environment(
    name: str, stage: str, url: str, *, accepts: str = "", store: str = "", extra: str = ""
) -> str:
    doc = f"""
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: {name}}}
spec:
  stage: {stage}
  database: {{dialect: {url.split(":", 1)[0].split("+", 1)[0]}, url: "{url}"}}
"""
    if accepts:
        doc += f"  promotion: {{acceptsFrom: [{accepts}]}}\n"
    if store:
        doc += f"  backups: {{store: {{path: {store}}}}}\n"
    if "application:" not in extra:  # no workload here: promotions run beside the app
        doc += "  allowRunningApplication: true\n"
    return doc + extra


def dev_and_pre(urls: dict[str, str]) -> str:
    """A development and a pre-release Environment, with no promotion policy."""
    return (
        environment("dev", "development", urls["dev"])
        + "---"
        + environment("pre", "pre-release", urls["pre"])
    )


def release_chain(urls: dict[str, str], store: Path) -> str:
    """dev → pre → prod Environments, each accepting only the stage before it, the two
    targets backed up into ``store``."""
    return (
        environment("dev", "development", urls["dev"])
        + "---"
        + environment("pre", "pre-release", urls["pre"], accepts="dev", store=str(store))
        + "---"
        + environment("prod", "production", urls["prod"], accepts="pre", store=str(store))
    )


def migration(name: str, source: str, target: str, extra: str = "") -> str:
    return f"""
apiVersion: ferry.dev/v1alpha1
kind: Migration
metadata: {{name: {name}}}
spec:
  source: {{environment: {source}}}
  target: {target}
{extra}"""


def status(kubectl: Kubectl, kind: str, namespace: str, name: str) -> dict[str, Any]:
    got = kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    if got.returncode != 0:
        return {}
    return dict(json.loads(got.stdout).get("status") or {})


def wait_phase(
    kubectl: Kubectl, namespace: str, name: str, phases: set[str], timeout: float = 60
) -> dict[str, Any]:
    wait_for(
        lambda: status(kubectl, "migration", namespace, name).get("phase") in phases,
        timeout=timeout,
        description=f"Migration {name} in {sorted(phases)}",
    )
    return status(kubectl, "migration", namespace, name)


def apply_ok(kubectl: Kubectl, namespace: str, text: str) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=text)


def test_environment_becomes_ready(
    kubectl: Kubectl, namespace: str, operator: Any, sqlite_envs: dict[str, str]
) -> None:
    apply_ok(kubectl, namespace, environment("dev", "development", sqlite_envs["dev"]))
    kubectl("wait", "--for=condition=Ready", "environment/dev", "-n", namespace, "--timeout=60s")
    got = status(kubectl, "environment", namespace, "dev")
    assert got["dialect"] == "sqlite" and got["reachable"] is True
    assert got["fingerprint"].startswith("sha256:") and got["tables"]["system"] > 5
    assert got["applicationVersion"] == "2.0.0"
    assert got["observedGeneration"] == 1


def test_unreachable_database_is_not_ready(kubectl: Kubectl, namespace: str, operator: Any) -> None:
    url = "postgresql+psycopg://ferry:pw-never-shown@127.0.0.1:1/nowhere"
    apply_ok(kubectl, namespace, environment("down", "production", url))
    wait_for(
        lambda: any(
            c.get("type") == "Ready"
            and c.get("status") == "False"
            and c.get("reason") == "Unreachable"
            for c in status(kubectl, "environment", namespace, "down").get("conditions", [])
        ),
        timeout=60,
        description="Ready=False",
    )
    # The spec holds the literal URL (the user's choice); status, events and logs never do.
    shown = json.dumps(status(kubectl, "environment", namespace, "down"))
    shown += kubectl("get", "events", "-n", namespace, "-o", "yaml").stdout
    assert "Unreachable" in shown
    assert "pw-never-shown" not in shown + operator.tail(400)


def test_promotion_dev_pre_prod(
    kubectl: Kubectl, namespace: str, operator: Any, sqlite_envs: dict[str, str], tmp_path: Path
) -> None:
    apply_ok(kubectl, namespace, release_chain(sqlite_envs, tmp_path / "backups"))
    apply_ok(kubectl, namespace, migration("to-pre", "dev", "pre"))
    done = wait_phase(kubectl, namespace, "to-pre", {"Succeeded", "Failed", "RolledBack"})
    assert done["phase"] == "Succeeded", done
    assert done["backup"]["id"] and done["plan"]["totals"]["insert"] == 10
    apply_ok(kubectl, namespace, migration("to-prod", "pre", "prod"))
    done = wait_phase(kubectl, namespace, "to-prod", {"Succeeded", "Failed", "RolledBack"})
    assert done["phase"] == "Succeeded", done
    kubectl("wait", "--for=condition=Ready", "migration/to-prod", "-n", namespace, "--timeout=30s")
    shown = kubectl("get", "migrations", "-n", namespace).stdout
    assert "to-prod" in shown and "Succeeded" in shown and done["backup"]["id"] in shown
    events = kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert '"reason": "Applied"' in events


def test_promotion_policy_refuses_other_sources(
    kubectl: Kubectl, namespace: str, operator: Any, sqlite_envs: dict[str, str]
) -> None:
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", sqlite_envs["dev"])
        + "---"
        + environment("prod", "production", sqlite_envs["prod"], accepts="pre"),
    )
    apply_ok(kubectl, namespace, migration("skip-pre", "dev", "prod"))
    done = wait_phase(kubectl, namespace, "skip-pre", {"Succeeded", "Failed"})
    assert done["phase"] == "Failed" and "accepts promotions only from pre" in done["message"]


def test_approval_gate_and_digest(
    kubectl: Kubectl, namespace: str, operator: Any, sqlite_envs: dict[str, str]
) -> None:
    apply_ok(
        kubectl,
        namespace,
        dev_and_pre(sqlite_envs),
    )
    apply_ok(kubectl, namespace, migration("gated", "dev", "pre", "  approval: {required: true}\n"))
    waiting = wait_phase(kubectl, namespace, "gated", {"AwaitingApproval", "Failed"})
    assert waiting["phase"] == "AwaitingApproval"
    digest = waiting["planDigest"]
    wrong = "sha256:" + "0" * 64
    kubectl.merge_patch(
        "migration/gated",
        namespace,
        {"spec": {"approval": {"required": True, "planDigest": wrong}}},
        check=True,
    )
    wait_for(
        lambda: wrong in str(status(kubectl, "migration", namespace, "gated").get("message")),
        timeout=30,
        description="mismatch reported",
    )
    assert status(kubectl, "migration", namespace, "gated")["phase"] == "AwaitingApproval"
    kubectl.merge_patch(
        "migration/gated",
        namespace,
        {"spec": {"approval": {"required": True, "planDigest": digest}}},
        check=True,
    )
    done = wait_phase(kubectl, namespace, "gated", {"Succeeded", "Failed", "RolledBack"})
    assert done["phase"] == "Succeeded", done


def test_two_migrations_queue_on_one_target(
    kubectl: Kubectl, namespace: str, operator: Any, sqlite_envs: dict[str, str]
) -> None:
    apply_ok(
        kubectl,
        namespace,
        dev_and_pre(sqlite_envs),
    )
    apply_ok(
        kubectl,
        namespace,
        migration("first", "dev", "pre", "  approval: {required: true}\n")
        + "---"
        + migration("second", "dev", "pre"),
    )
    wait_phase(kubectl, namespace, "first", {"AwaitingApproval"})
    queued = wait_phase(kubectl, namespace, "second", {"Queued"})
    assert "Migration first" in queued["message"]
    kubectl("delete", "migration", "first", "-n", namespace)
    done = wait_phase(kubectl, namespace, "second", {"Succeeded", "Failed"})
    assert done["phase"] == "Succeeded"


def test_liveness_and_metrics(
    kubectl: Kubectl,
    namespace: str,
    control_plane: Any,
    ferry_crds: list[str],
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    import socket
    import urllib.request

    from tests.e2e.operator import Operator

    ports = []
    for _ in range(2):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    op = Operator(
        control_plane,
        namespace,
        tmp_path / "op.log",
        metrics_port=ports[0],
        liveness=f"http://127.0.0.1:{ports[1]}/healthz",
    ).start()
    try:
        apply_ok(
            kubectl,
            namespace,
            dev_and_pre(sqlite_envs),
        )
        apply_ok(kubectl, namespace, migration("m", "dev", "pre"))
        assert wait_phase(kubectl, namespace, "m", {"Succeeded", "Failed"})["phase"] == "Succeeded"

        def fetch(port: int, path: str) -> str:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return str(r.read().decode())

        wait_for(
            lambda: 'ferry_migrations_total{result="Succeeded"} 1.0' in fetch(ports[0], "/metrics"),
            timeout=30,
            description="migration metric",
        )
        metrics_text = fetch(ports[0], "/metrics")
        assert "ferry_migration_duration_seconds_count 1.0" in metrics_text
        assert 'ferry_environment_drift{environment="pre"' in metrics_text

        def health() -> tuple[int, str, object]:
            url = f"http://127.0.0.1:{ports[1]}/healthz"
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.headers.get_content_type(), json.loads(r.read())

        # Kopf answers with the results of the operator's probe handlers; Ferry has none.
        got = wait_for(health, timeout=30, description="liveness endpoint")
        assert got == (200, "application/json", {})
    finally:
        op.stop()
