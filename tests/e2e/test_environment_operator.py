"""Environments under the operator: variables with encrypted secrets, drift detection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.engine import nocobase_secrets
from tests.db.dbhelpers import execute, rows
from tests.e2e.conftest import Kubectl
from tests.e2e.test_operator import apply_ok, environment, migration, status, wait_phase
from tests.fixtures import nocobase_shape as shape
from tests.harness.cluster import wait_for

pytestmark = pytest.mark.e2e
KEY = bytes(range(32)).hex()


def _condition(kubectl: Kubectl, namespace: str, name: str, type_: str) -> dict[str, Any]:
    for cond in status(kubectl, "environment", namespace, name).get("conditions", []):
        if cond.get("type") == type_:
            return dict(cond)
    return {}


def test_variables_and_secrets_written_for_nocobase(
    kubectl: Kubectl, namespace: str, operator: Any, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/app.db"
    shape.build(url, variables={})
    kubectl(
        "create",
        "secret",
        "generic",
        "app",
        "-n",
        namespace,
        f"--from-literal=aes-key={KEY}",
        "--from-literal=smtp=SMTP-pass-123",
    )
    extra = """  variables:
    - {name: SUPPORT_EMAIL, value: help@example.com}
    - name: SMTP_PASSWORD
      type: secret
      valueFrom: {secretKeyRef: {name: app, key: smtp}}
  encryptionKeyFrom: {secretKeyRef: {name: app, key: aes-key}}
"""
    apply_ok(kubectl, namespace, environment("app", "production", url, extra=extra))
    kubectl("wait", "--for=condition=Ready", "environment/app", "-n", namespace, "--timeout=60s")
    stored = {
        n: (t, v)
        for n, t, v in rows(url, "environmentVariables", "name", "type", "value", order="name")
    }
    assert stored["SUPPORT_EMAIL"] == ("default", "help@example.com")
    kind, value = stored["SMTP_PASSWORD"]
    assert kind == "secret" and "SMTP-pass-123" not in value
    assert nocobase_secrets.decrypt(bytes.fromhex(KEY), value) == "SMTP-pass-123"
    shown = json.dumps(status(kubectl, "environment", namespace, "app"))
    shown += kubectl("get", "events", "-n", namespace, "-o", "yaml").stdout
    assert "SMTP-pass-123" not in shown + operator.tail(400)
    assert KEY not in shown + operator.tail(400)


def test_drift_in_a_locked_environment(
    kubectl: Kubectl, namespace: str, operator: Any, tmp_path: Path
) -> None:
    dev, prod = f"sqlite:///{tmp_path}/dev.db", f"sqlite:///{tmp_path}/prod.db"
    shape.build(dev, app="dev")
    shape.build(prod, app="prod")
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", dev) + "---" + environment("prod", "production", prod),
    )
    kubectl("wait", "--for=condition=Ready", "environment/prod", "-n", namespace, "--timeout=60s")
    assert _condition(kubectl, namespace, "prod", "Drifted").get("status") == "False"
    execute(prod, "update roles set title = 'edited by hand' where name = 'member'")
    execute(prod, "insert into orders (id, title) values (999, 'business data is not drift')")
    wait_for(
        lambda: _condition(kubectl, namespace, "prod", "Drifted").get("status") == "True",
        timeout=60,
        description="drift detected",
    )
    assert status(kubectl, "environment", namespace, "prod")["drift"]["detected"] is True
    events = kubectl("get", "events", "-n", namespace, "-o", "jsonpath={.items[*].reason}").stdout
    assert "DriftDetected" in events
    # A promotion Ferry makes sets the new baseline: no drift afterwards.
    apply_ok(kubectl, namespace, migration("fix", "dev", "prod"))
    assert wait_phase(kubectl, namespace, "fix", {"Succeeded", "Failed"})["phase"] == "Succeeded"
    wait_for(
        lambda: _condition(kubectl, namespace, "prod", "Drifted").get("status") == "False",
        timeout=60,
        description="baseline reset after the migration",
    )


def test_cli_plans_between_environments_by_name(
    kubectl: Kubectl, namespace: str, operator: Any, tmp_path: Path, control_plane: Any
) -> None:
    import os
    import subprocess
    import sys

    dev, pre = f"sqlite:///{tmp_path}/dev.db", f"sqlite:///{tmp_path}/pre.db"
    shape.build(dev, app="dev")
    shape.builder_changes(dev)
    shape.build(
        pre, app="pre", variables={"HOOK_TOKEN": ("secret", "x"), "TICKET_WEBHOOK": ("plain", "y")}
    )
    kubectl("create", "secret", "generic", "pre-db", "-n", namespace, f"--from-literal=url={pre}")
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", dev)
        + """---
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {name: pre}
spec:
  stage: pre-release
  database: {dialect: sqlite, urlFrom: {secretKeyRef: {name: pre-db, key: url}}}
""",
    )
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller",
            "plan",
            "--source",
            f"env:{namespace}/dev",
            "--target",
            f"env:{namespace}/pre",
            "--format",
            "markdown",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "| `roles` | overwrite | 1 | 0 | 0 | 3 |" in out.stdout
