"""The operator's main flows, shared by the two ways the tiers run the operator.

- ``tests/e2e/test_main_flows.py``: the operator as a local process (the fast mode).
- ``tests/node/test_main_flows.py``: the operator as a pod installed by its chart on the
  real node, the image built here, PostgreSQL reached through a Service name.

The tests are the same functions; each tier's ``site`` fixture gives them the addresses
its operator can reach (Service names from pods, host addresses from the local process),
the addresses the test itself reaches, and the operator's log.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tests.db.dbhelpers import execute
from tests.e2e.conftest import SHAPE_VARS, SQLITE_ENVS, Kubectl
from tests.e2e.test_operator import apply_ok, migration, status, wait_phase
from tests.fixtures import nocobase_shape as shape
from tests.harness.cluster import wait_for

DONE = {"Succeeded", "Failed", "RolledBack"}


@dataclass
class Site:
    """Where one test's environments live, as the operator and as the test see them."""

    kubectl: Kubectl
    namespace: str
    #: dev, pre, prod: the URLs the operator connects to (stored in Secrets).
    operator_urls: dict[str, str]
    #: The same databases, as this test process reaches them.
    host_urls: dict[str, str]
    #: The filesystem backup store, as the operator sees it.
    store: str
    #: The operator's recent log lines.
    operator_log: Callable[[int], str]

    def declare(self) -> None:
        """Secrets holding the URLs, and the dev → pre → prod chain (targets backed up)."""
        for name, url in self.operator_urls.items():
            self.kubectl(
                "create", "secret", "generic", f"{name}-db", "-n", self.namespace,
                f"--from-literal=url={url}",
            )  # fmt: skip
        docs = [
            _environment("dev", "development", ""),
            _environment("pre", "pre-release", "dev", self.store),
            _environment("prod", "production", "pre", self.store),
        ]
        apply_ok(self.kubectl, self.namespace, "---".join(docs))


def build_databases(
    server: Any, reach: Callable[[str], str]
) -> tuple[dict[str, str], dict[str, str]]:
    """NocoBase-shaped PostgreSQL databases dev, pre and prod on ``server`` (dev holds a
    builder's changes). Returns (URLs the operator uses, URLs this process uses);
    ``reach`` turns a host URL into the operator's."""
    host: dict[str, str] = {}
    for name in SQLITE_ENVS:
        url = server.create_database(f"ferry_{name}_{secrets.token_hex(4)}")
        shape.build(url, app=name, variables=SHAPE_VARS)
        host[name] = url
    shape.builder_changes(host["dev"])
    return {name: reach(url) for name, url in host.items()}, host


def _environment(name: str, stage: str, accepts: str, store: str = "") -> str:
    doc = f"""
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: {name}}}
spec:
  stage: {stage}
  database: {{dialect: postgresql, urlFrom: {{secretKeyRef: {{name: {name}-db, key: url}}}}}}
  allowRunningApplication: true  # no NocoBase runs beside these databases
"""
    if accepts:
        doc += f"  promotion: {{acceptsFrom: [{accepts}]}}\n"
    if store:
        doc += f"  backups: {{store: {{path: {store}}}}}\n"
    return doc


def _scalar(url: str, sql: str) -> Any:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar()
    finally:
        engine.dispose()


def _condition(site: Site, kind: str, name: str, kind_of: str) -> dict[str, Any]:
    conditions = status(site.kubectl, kind, site.namespace, name).get("conditions", [])
    return next((c for c in conditions if c.get("type") == kind_of), {})


def environments_on_postgres_become_ready(site: Site) -> None:
    site.declare()
    for name in ("dev", "pre", "prod"):
        site.kubectl(
            "wait", "--for=condition=Ready", f"environment/{name}", "-n", site.namespace,
            "--timeout=90s",
        )  # fmt: skip
        got = status(site.kubectl, "environment", site.namespace, name)
        assert got["dialect"] == "postgresql" and got["reachable"] is True
        assert got["tables"]["system"] > 5
    shown = json.dumps(status(site.kubectl, "environment", site.namespace, "pre"))
    shown += site.kubectl("get", "events", "-n", site.namespace, "-o", "yaml").stdout
    shown += site.operator_log(400)
    for url in site.operator_urls.values():
        password = sa.make_url(url).password
        assert password and password not in shown


def migration_with_approval(site: Site) -> None:
    site.declare()
    gated = migration("release", "dev", "pre", "  approval: {required: true}\n")
    apply_ok(site.kubectl, site.namespace, gated)
    waiting = wait_phase(site.kubectl, site.namespace, "release", {"AwaitingApproval"} | DONE, 120)
    assert waiting["phase"] == "AwaitingApproval", waiting
    before = _scalar(site.host_urls["pre"], "select count(*) from roles")
    site.kubectl.merge_patch(
        "migration/release",
        site.namespace,
        {"spec": {"approval": {"required": True, "planDigest": waiting["planDigest"]}}},
        check=True,
    )
    done = wait_phase(site.kubectl, site.namespace, "release", DONE, 120)
    assert done["phase"] == "Succeeded", done
    assert done["backup"]["id"] and done["plan"]["totals"]["insert"] == 10
    assert _scalar(site.host_urls["pre"], "select count(*) from roles") == before + 1
    ledger = "select count(*) from ferry_migrations where result = 'succeeded'"
    assert _scalar(site.host_urls["pre"], ledger) == 1


def backup_schedule_then_restore(site: Site) -> None:
    site.declare()
    apply_ok(
        site.kubectl,
        site.namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {name: nightly}
spec: {environment: prod, schedule: "0 0 1 1 *", immediate: true, retention: {keepLast: 3}}
""",
    )

    def completed() -> list[dict[str, Any]]:
        items = site.kubectl.json(
            "get", "backups", "-n", site.namespace, "-l", "ferry.dev/schedule=nightly"
        )["items"]
        return [b for b in items if (b.get("status") or {}).get("phase") == "Completed"]

    backup = wait_for(completed, timeout=120, description="the immediate backup")[0]
    execute(
        site.host_urls["prod"], "update roles set title = 'edited by hand' where name = 'member'"
    )
    apply_ok(
        site.kubectl,
        site.namespace,
        f"""
apiVersion: ferry.dev/v1alpha1
kind: Restore
metadata: {{name: undo}}
spec: {{backup: {backup["metadata"]["name"]}, tables: [roles]}}
""",
    )
    wait_for(
        lambda: (
            status(site.kubectl, "restore", site.namespace, "undo").get("phase")
            in {"Completed", "Failed", "Reverted"}
        ),
        timeout=120,
        description="the restore",
    )
    done = status(site.kubectl, "restore", site.namespace, "undo")
    assert done["phase"] == "Completed", done
    title = _scalar(site.host_urls["prod"], "select title from roles where name = 'member'")
    assert title != "edited by hand"


def drift_is_detected(site: Site) -> None:
    site.declare()
    site.kubectl(
        "wait", "--for=condition=Ready", "environment/prod", "-n", site.namespace, "--timeout=90s"
    )
    assert _condition(site, "environment", "prod", "Drifted").get("status") == "False"
    execute(
        site.host_urls["prod"], "update roles set title = 'edited by hand' where name = 'member'"
    )
    wait_for(
        lambda: _condition(site, "environment", "prod", "Drifted").get("status") == "True",
        timeout=90,
        description="drift detected",
    )
    events = site.kubectl(
        "get", "events", "-n", site.namespace, "-o", "jsonpath={.items[*].reason}"
    ).stdout
    assert "DriftDetected" in events


#: Every shared flow; each tier's test module runs them all against its own ``site``.
FLOWS = {
    "environments-on-postgres": environments_on_postgres_become_ready,
    "migration-with-approval": migration_with_approval,
    "backup-schedule-and-restore": backup_schedule_then_restore,
    "drift-detection": drift_is_detected,
}
