"""A rehearsed release on real NocoBase, booted against the copy before the target.

Pre-release's NocoBase 2.2.15 runs as a Deployment on the node; its Environment
declares it with ``bootCheck`` (``DB_DATABASE``/``DB_HOST``/``DB_PORT`` pointed at the
copy) and rehearses on ``node_postgres`` (``ferry_rehearsal_*`` databases). A release
with a field of a type pre-release's NocoBase does not know applies and verifies on the
copy, but NocoBase does not boot on it: the Migration ends ``Failed``
(``RehearsalBootFailed``), pre-release's database is exactly as it was and its NocoBase
served throughout, never quiesced. A good release boots on the copy, then applies. A
BackupSchedule's drill with ``bootCheck: true`` boots the same NocoBase against the
restored backup.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa

from tests.e2e.conftest import Kubectl
from tests.e2e.main_flows import DONE
from tests.e2e.test_drill_operator import _drill_now
from tests.e2e.test_operator import apply_ok, migration, status, wait_phase
from tests.harness import nocobase as nb
from tests.harness.cluster import wait_for
from tests.node.conftest import STORE_MOUNT, NocoBaseOnNode, OperatorPod
from tests.node.test_nocobase_deployment import (
    BOOT_TIMEOUT,
    P,
    _breaking_release,
    _builder_changes,
    _conditions,
    _config,
    _deploy,
    _ready_pods,
    _runs,
    _watch_health,
)

pytestmark = [pytest.mark.node, pytest.mark.nocobase]
REHEARSED = "  rehearsal: Required"


def _declare(
    kubectl: Kubectl, namespace: str, on_node: NocoBaseOnNode, dbs: dict[str, str],
    boot_timeout: int,
) -> None:  # fmt: skip
    """dev and pre as the operator's pod sees them; pre declares its NocoBase, how to
    boot it against another database, and where to rehearse."""
    server = on_node.postgres.server
    urls = {f"{n}-db": server.url(d) for n, d in dbs.items()} | {"scratch": server.url("postgres")}
    for secret, url in urls.items():
        kubectl("create", "secret", "generic", secret, "-n", namespace,
                f"--from-literal=url={on_node.postgres.for_pods(url)}")  # fmt: skip
    health = f"http://nocobase.{namespace}.svc:{nb.POD_PORT}{nb.HEALTH_PATH}"
    docs = f"""
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec:
  stage: development
  allowRunningApplication: true
  database: {{dialect: postgresql, urlFrom: {{secretKeyRef: {{name: dev-db, key: url}}}}}}
---
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: pre}}
spec:
  stage: pre-release
  database: {{dialect: postgresql, urlFrom: {{secretKeyRef: {{name: pre-db, key: url}}}}}}
  backups: {{store: {{path: "{STORE_MOUNT}/{namespace}"}}}}
  promotion: {{acceptsFrom: [dev]}}
  rehearsal: {{scratch: {{urlFrom: {{secretKeyRef: {{name: scratch, key: url}}}}}}}}
  application:
    workload: {{kind: Deployment, name: nocobase}}
    quiesce: {{timeoutSeconds: 120}}
    health: {{url: "{health}", timeoutSeconds: {BOOT_TIMEOUT}}}
    bootCheck:
      env: {{DB_DATABASE: "{{database}}", DB_HOST: "{{host}}", DB_PORT: "{{port}}"}}
      port: {nb.POD_PORT}
      path: {nb.HEALTH_PATH}
      timeoutSeconds: {boot_timeout}
"""
    apply_ok(kubectl, namespace, docs)
    for env in ("dev", "pre"):
        kubectl("wait", "--for=condition=Ready", f"environment/{env}", "-n", namespace,
                "--timeout=120s")  # fmt: skip


def _boot_pods(kubectl: Kubectl, namespace: str) -> list[str]:
    got = kubectl.json("get", "pods", "-n", namespace, "-l", "ferry.dev/boot-check")
    return [p["metadata"]["name"] for p in got["items"]]


def _rehearsal_databases(on_node: NocoBaseOnNode) -> list[str]:
    engine = sa.create_engine(on_node.postgres.server.url("postgres"))
    try:
        with engine.connect() as conn:
            names = conn.execute(
                sa.text("SELECT datname FROM pg_database WHERE datname LIKE 'ferry_rehearsal_%'")
            ).scalars()
            return list(names)
    finally:
        engine.dispose()


def _dump(on_node: NocoBaseOnNode, database: str) -> dict[str, Any]:
    """Every table's row count and the configuration tables' rows (pre's database)."""
    engine = sa.create_engine(on_node.postgres.server.url(database))
    try:
        with engine.connect() as conn:
            tables = sa.inspect(conn).get_table_names()
            out: dict[str, Any] = {
                t: conn.execute(sa.text(f'SELECT count(*) FROM "{t}"')).scalar() for t in tables
            }
            for t in ("collections", "fields", "uiSchemas", "desktopRoutes"):
                rows = conn.execute(sa.text(f'SELECT * FROM "{t}"')).mappings()
                out[f"{t}:rows"] = sorted(repr(sorted(dict(r).items())) for r in rows)
            return out
    finally:
        engine.dispose()


def test_a_release_that_breaks_nocobase_boot_is_caught_in_rehearsal(
    kubectl: Kubectl, namespace: str, operator: OperatorPod, nocobase_on_node: NocoBaseOnNode
) -> None:
    dbs, pre, old = _breaking_release(kubectl, namespace, nocobase_on_node)
    _declare(kubectl, namespace, nocobase_on_node, dbs, boot_timeout=60)
    before = _dump(nocobase_on_node, dbs["pre"])
    serving = {p["metadata"]["uid"] for p in _ready_pods(kubectl, namespace)}

    started = time.monotonic()
    with _watch_health(pre) as statuses:
        apply_ok(kubectl, namespace, migration("release", "dev", "pre", REHEARSED))
        done = wait_phase(kubectl, namespace, "release", DONE, 3 * BOOT_TIMEOUT)
    print(f"\nMigration {done['phase']} in {time.monotonic() - started:.0f} s")
    assert done["phase"] == "Failed", done
    assert _conditions(done)["Stalled"] == ("True", "RehearsalBootFailed"), done
    boot = done["rehearsal"]["boot"]
    assert boot["outcome"] == "Failed" and boot["pod"].startswith("nocobase-boot-"), boot
    assert done["message"].startswith("the application did not boot against the copy")
    print(f"boot check: {boot['message']} ({boot['durationSeconds']:.0f} s)")
    # the target: its rows as they were, its NocoBase served throughout, never stopped
    assert _dump(nocobase_on_node, dbs["pre"]) == before
    assert "application" not in done or not done["application"].get("quiesced")
    assert _runs(statuses) == [True], statuses
    assert {p["metadata"]["uid"] for p in _ready_pods(kubectl, namespace)} == serving
    assert _config(pre) == old
    wait_for_gone = time.monotonic() + 60
    while _boot_pods(kubectl, namespace) and time.monotonic() < wait_for_gone:
        time.sleep(1)
    assert _boot_pods(kubectl, namespace) == []
    assert _rehearsal_databases(nocobase_on_node) == []


def test_a_good_release_boots_on_the_copy_then_applies(
    kubectl: Kubectl, namespace: str, operator: OperatorPod, nocobase_on_node: NocoBaseOnNode
) -> None:
    dbs = {"dev": nocobase_on_node.clone("dev"), "pre": nocobase_on_node.clone("pre")}
    pre = _deploy(kubectl, namespace, nocobase_on_node, dbs["pre"])
    _builder_changes(nocobase_on_node, dbs["dev"])
    _declare(kubectl, namespace, nocobase_on_node, dbs, boot_timeout=BOOT_TIMEOUT)

    started = time.monotonic()
    apply_ok(kubectl, namespace, migration("release", "dev", "pre", REHEARSED))
    done = wait_phase(kubectl, namespace, "release", DONE, 4 * BOOT_TIMEOUT)
    print(f"\nMigration {done['phase']} in {time.monotonic() - started:.0f} s")
    assert done["phase"] == "Succeeded", done
    rehearsal = done["rehearsal"]
    assert rehearsal["outcome"] == "Passed" and rehearsal["boot"]["outcome"] == "Passed"
    print(f"boot check: {rehearsal['boot']['message']} of {rehearsal['durationSeconds']:.0f} s")
    assert rehearsal["planDigest"] == done["planDigest"]
    assert _boot_pods(kubectl, namespace) == []
    collections, routes = _config(pre)
    assert {f"{P}customers", f"{P}orders"} <= collections and f"{P}page" in routes


def test_a_drill_boots_nocobase_on_the_restored_backup(
    kubectl: Kubectl, namespace: str, operator: OperatorPod, nocobase_on_node: NocoBaseOnNode
) -> None:
    dbs = {"dev": nocobase_on_node.clone("dev"), "pre": nocobase_on_node.clone("pre")}
    _deploy(kubectl, namespace, nocobase_on_node, dbs["pre"])
    _declare(kubectl, namespace, nocobase_on_node, dbs, boot_timeout=BOOT_TIMEOUT)
    scratch = f"ferry_drill_{dbs['pre'][-6:]}"
    _admin(on_node=nocobase_on_node, sql=f'CREATE DATABASE "{scratch}"')
    try:
        _drill_boots(kubectl, namespace, nocobase_on_node, scratch)
    finally:
        _admin(on_node=nocobase_on_node, sql=f'DROP DATABASE IF EXISTS "{scratch}"')


def _admin(*, on_node: NocoBaseOnNode, sql: str) -> None:
    engine = sa.create_engine(on_node.postgres.server.url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(sql))
    finally:
        engine.dispose()


def _drill_boots(
    kubectl: Kubectl, namespace: str, nocobase_on_node: NocoBaseOnNode, scratch: str
) -> None:
    server = nocobase_on_node.postgres.server
    url = nocobase_on_node.postgres.for_pods(server.url(scratch))
    kubectl("create", "secret", "generic", "drill-scratch", "-n", namespace,
            f"--from-literal=url={url}")  # fmt: skip
    apply_ok(kubectl, namespace, """
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata: {name: nightly-a, labels: {ferry.dev/schedule: nightly}}
spec: {environment: pre, deletionPolicy: Delete, reason: scheduled}
---
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {name: nightly}
spec:
  environment: pre
  schedule: "0 0 1 1 *"
  drill:
    schedule: "* * * * *"
    bootCheck: true
    scratch: {urlFrom: {secretKeyRef: {name: drill-scratch, key: url}}}
""")  # fmt: skip
    wait_for(
        lambda: status(kubectl, "backup", namespace, "nightly-a").get("phase") == "Completed",
        timeout=300,
        description="Backup nightly-a Completed",
    )
    _drill_now(kubectl, namespace)
    wait_for(
        lambda: bool((status(kubectl, "backupschedule", namespace, "nightly").get("lastDrill")
                      or {}).get("boot")),
        timeout=2 * BOOT_TIMEOUT,
        description="a drill with its boot check recorded",
    )  # fmt: skip
    drill = status(kubectl, "backupschedule", namespace, "nightly")["lastDrill"]
    print(f"\ndrill: {drill['durationSeconds']:.0f} s, boot: {drill['boot']['message']}")
    assert drill["outcome"] == "Passed" and drill["boot"]["outcome"] == "Passed", drill
    assert status(kubectl, "backup", namespace, "nightly-a")["lastDrill"]["boot"] == drill["boot"]
    assert _boot_pods(kubectl, namespace) == []
    engine = sa.create_engine(server.url(scratch))
    try:
        with engine.connect() as conn:
            assert sa.inspect(conn).get_table_names() == []  # cleared after the boot
    finally:
        engine.dispose()
