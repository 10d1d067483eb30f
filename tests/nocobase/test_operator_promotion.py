"""The same promotion on real NocoBase, declared as a Migration resource for the operator.

Development and pre-release are NocoBase-installed PostgreSQL databases; the Environments
read their URLs from Secrets; the operator (a real process against the harness's
kube-apiserver) plans, backs up and applies; NocoBase then serves the promoted collection
from pre-release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl
from tests.e2e.test_operator import apply_ok, wait_phase
from tests.nocobase import builder as b
from tests.nocobase.conftest import AppFactory

pytestmark = [pytest.mark.nocobase, pytest.mark.e2e]


def _environment(name: str, stage: str, secret: str, store: Path, accepts: str = "") -> str:
    promotion = f"  promotion: {{acceptsFrom: [{accepts}]}}\n" if accepts else ""
    return f"""
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: {name}}}
spec:
  stage: {stage}
  allowRunningApplication: true  # the test stops NocoBase itself around the promotion
  database: {{dialect: postgresql, urlFrom: {{secretKeyRef: {{name: {secret}, key: url}}}}}}
  backups: {{store: {{path: "{store}"}}}}
{promotion}"""


def test_migration_resource_promotes_real_nocobase(
    make_app: AppFactory, kubectl: Kubectl, namespace: str, operator: Any, tmp_path: Path
) -> None:
    dev, pre = make_app("opdev"), make_app("oppre")
    b.start_all(dev, pre)
    b.create_parent_collection(dev, "")
    dev.stop()
    pre.stop()  # NocoBase caches collections in memory: promote while it is down
    for name, app in (("dev-db", dev), ("pre-db", pre)):
        kubectl(
            "create", "secret", "generic", name, "-n", namespace, f"--from-literal=url={app.url}"
        )
    store = tmp_path / "backups"
    apply_ok(
        kubectl,
        namespace,
        _environment("dev", "development", "dev-db", store)
        + "---"
        + _environment("pre", "pre-release", "pre-db", store, accepts="dev"),
    )
    for env in ("dev", "pre"):
        kubectl(
            "wait", "--for=condition=Ready", f"environment/{env}", "-n", namespace, "--timeout=120s"
        )
    apply_ok(
        kubectl,
        namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: Migration
metadata: {name: customers}
spec:
  source: {environment: dev}
  target: pre
""",
    )
    done = wait_phase(
        kubectl, namespace, "customers", {"Succeeded", "Failed", "RolledBack"}, timeout=180
    )
    assert done["phase"] == "Succeeded", done
    assert done["backup"]["id"]
    assert (store / "pre" / done["backup"]["id"] / "manifest.json").exists()
    pre.start()
    pre.sign_in()
    b.assert_boots_cleanly(pre)
    assert "customers" in {c["name"] for c in pre.list_all("collections")}
    assert pre.post("customers:create", {"name": "ACME", "email": "ops@acme.test"})
