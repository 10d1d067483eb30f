"""Real NocoBase as a Deployment on the real node, promoted into while it serves.

Pre-release's NocoBase 2.2.15 runs as a Deployment (the base image, with the cached
install and Node.js as read-only hostPath volumes) on PostgreSQL through
``postgres.db.svc``; its Environment declares it (``spec.application``, health through
its Service). A builder changes development (a host NocoBase process, the tier's
builder requests); a Migration run by the operator's pod quiesces pre-release's
NocoBase, backs up, applies, resumes it and waits for ``/api/__health_check``.
NocoBase then serves the new configuration with no manual restart. A promotion that
keeps NocoBase from booting is rolled back, and NocoBase serves the old one again.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.e2e.conftest import Kubectl
from tests.e2e.main_flows import DONE
from tests.e2e.test_operator import apply_ok, migration, wait_phase
from tests.harness import nocobase as nb
from tests.harness.cluster import wait_for
from tests.nocobase import builder as b
from tests.node.conftest import STORE_MOUNT, NocoBaseOnNode, OperatorPod

pytestmark = [pytest.mark.node, pytest.mark.nocobase]
P = "shop_"  # every name the builder creates carries it
BOOT_TIMEOUT = 300  # a NocoBase pod's first boot on 2 loaded cores


def _ready_pods(kubectl: Kubectl, namespace: str) -> list[dict[str, Any]]:
    got = kubectl.json("get", "pods", "-n", namespace, "-l", "app=nocobase")
    return [
        p
        for p in got["items"]
        if not p["metadata"].get("deletionTimestamp")
        and any(c.get("ready") for c in p.get("status", {}).get("containerStatuses", []))
    ]


def _served(app: nb.ServedNocoBase) -> None:
    """Waits until NocoBase answers through its Service. A pod turns Ready before
    kube-proxy has programmed the Service's new endpoint, so the first request after
    readiness can find no route: a user sees the same few seconds."""
    wait_for(lambda: app.health(timeout=2) == 200, timeout=60,
             description="NocoBase answering through its Service")  # fmt: skip


def _deploy(
    kubectl: Kubectl, namespace: str, on_node: NocoBaseOnNode, database: str
) -> nb.ServedNocoBase:
    """Pre-release's NocoBase as a Deployment; returns a client through its Service."""
    docs = on_node.manifests("nocobase", database)
    apply_ok(kubectl, namespace, yaml.safe_dump_all(docs))
    wait_for(
        lambda: len(_ready_pods(kubectl, namespace)) == 1,
        timeout=BOOT_TIMEOUT,
        description="NocoBase's pod Ready",
    )
    ip = kubectl("get", "service", "nocobase", "-n", namespace,
                 "-o", "jsonpath={.spec.clusterIP}").stdout.strip()  # fmt: skip
    storage = Path(tempfile.mkdtemp(prefix="served-", dir=on_node.workdir))
    app = nb.ServedNocoBase("pre", on_node.postgres.server, database, storage,
                            address=f"http://{ip}:{nb.POD_PORT}")  # fmt: skip
    _served(app)
    return app


def _declare(
    kubectl: Kubectl, namespace: str, on_node: NocoBaseOnNode, dbs: dict[str, str],
    health_timeout: int,
) -> None:  # fmt: skip
    """dev and pre as the operator's pod sees them; pre declares its NocoBase."""
    for name, database in dbs.items():
        url = on_node.postgres.for_pods(on_node.postgres.server.url(database))
        kubectl("create", "secret", "generic", f"{name}-db", "-n", namespace,
                f"--from-literal=url={url}")  # fmt: skip
    health = f"http://nocobase.{namespace}.svc:{nb.POD_PORT}{nb.HEALTH_PATH}"
    docs = f"""
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec:
  stage: development
  allowRunningApplication: true  # the builder's own NocoBase, stopped before promoting
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
  application:
    workload: {{kind: Deployment, name: nocobase}}
    quiesce: {{timeoutSeconds: 120}}
    health: {{url: "{health}", timeoutSeconds: {health_timeout}}}
"""
    apply_ok(kubectl, namespace, docs)
    for env in ("dev", "pre"):
        kubectl("wait", "--for=condition=Ready", f"environment/{env}", "-n", namespace,
                "--timeout=120s")  # fmt: skip


@contextmanager
def _watch_health(app: nb.ServedNocoBase) -> Iterator[list[int]]:
    """Requests NocoBase's health endpoint through its Service every half second, as
    its users would, for as long as the block runs; yields the statuses (0: no answer)."""
    statuses: list[int] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            statuses.append(app.health(timeout=2))
            stop.wait(0.5)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield statuses
    finally:
        stop.set()
        thread.join(timeout=10)


def _runs(statuses: list[int]) -> list[bool]:
    """Served (200) or not, collapsing repeats: [True, False, True] = served, stopped,
    served again."""
    runs: list[bool] = []
    for served in (s == 200 for s in statuses):
        if not runs or runs[-1] != served:
            runs.append(served)
    return runs


def _conditions(got: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c.get("reason", "")) for c in got.get("conditions", [])}


def _config(app: nb.ServedNocoBase) -> tuple[set[str], set[str]]:
    """The collections and the page routes NocoBase serves (signed in as root)."""
    app.sign_in()
    collections = {c["name"] for c in app.list_all("collections")}
    routes = {str(r.get("schemaUid")) for r in app.list_all("desktopRoutes")}
    return collections, routes


def _builder_changes(on_node: NocoBaseOnNode, database: str) -> None:
    """A builder's release in development: two related collections and a page."""
    dev = on_node.host_app("dev", database)
    try:
        b.start_all(dev)
        b.create_parent_collection(dev, P)
        b.create_child_collection(dev, P)
        b.create_page(dev, P)
    finally:
        dev.stop()  # Ferry reads a stopped development app


def test_migration_into_a_serving_nocobase_deployment(
    kubectl: Kubectl, namespace: str, operator: OperatorPod, nocobase_on_node: NocoBaseOnNode
) -> None:
    dbs = {"dev": nocobase_on_node.clone("dev"), "pre": nocobase_on_node.clone("pre")}
    started = time.monotonic()
    pre = _deploy(kubectl, namespace, nocobase_on_node, dbs["pre"])
    print(f"\nNocoBase pod Ready in {time.monotonic() - started:.0f} s")
    collections, routes = _config(pre)
    assert f"{P}customers" not in collections and f"{P}page" not in routes
    before = {p["metadata"]["uid"] for p in _ready_pods(kubectl, namespace)}
    _builder_changes(nocobase_on_node, dbs["dev"])
    _declare(kubectl, namespace, nocobase_on_node, dbs, health_timeout=BOOT_TIMEOUT)

    started = time.monotonic()
    with _watch_health(pre) as statuses:
        apply_ok(kubectl, namespace, migration("release", "dev", "pre"))
        done = wait_phase(kubectl, namespace, "release", DONE, 2 * BOOT_TIMEOUT)
    print(f"Migration {done['phase']} in {time.monotonic() - started:.0f} s")
    assert done["phase"] == "Succeeded", done
    assert _conditions(done)["ApplicationQuiesced"] == ("False", "Resumed")
    assert _conditions(done)["ApplicationHealthy"][0] == "True"
    assert done["application"]["replicas"] == 1 and done["backup"]["id"]
    # It served until Ferry stopped it, nothing answered while Ferry wrote, and it
    # served again before the Migration ended: no manual restart.
    assert _runs(statuses) == [True, False, True], statuses
    after = {p["metadata"]["uid"] for p in _ready_pods(kubectl, namespace)}
    assert len(after) == 1 and not before & after

    collections, routes = _config(pre)
    assert {f"{P}customers", f"{P}orders"} <= collections
    assert f"{P}page" in routes
    page = pre.get(f"uiSchemas:getJsonSchema/{P}page")
    assert page["x-component"] == "Page"
    customer = pre.post(f"{P}customers:create", {"name": "ACME", "email": "ops@acme.test"})
    order = pre.post(f"{P}orders:create", {"title": "first", "customerId": customer["id"]})
    assert order["customerId"] == customer["id"]


def _break_boot(on_node: NocoBaseOnNode, database: str) -> None:
    """A field of a type pre-release's NocoBase does not know (as from a plugin
    development has and pre-release has not): NocoBase cannot load its collections and
    never becomes healthy."""
    url = on_node.postgres.server.url(database)
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    'INSERT INTO fields (key, name, type, interface, "collectionName", '
                    "options, sort) VALUES (:key, 'rating', 'ferryStarRating', "
                    "'input', :collection, '{}', 99)"
                ),
                {"key": f"{P}rating", "collection": f"{P}customers"},
            )
    finally:
        engine.dispose()


def _breaking_release(
    kubectl: Kubectl, namespace: str, on_node: NocoBaseOnNode
) -> tuple[dict[str, str], nb.ServedNocoBase, tuple[set[str], set[str]]]:
    """dev and pre cloned, pre served as a Deployment, and on dev a release NocoBase
    cannot boot with (a parent collection, then a field of a type it does not know):
    the databases, pre's app, and pre's configuration before the release."""
    dbs = {"dev": on_node.clone("dev"), "pre": on_node.clone("pre")}
    pre = _deploy(kubectl, namespace, on_node, dbs["pre"])
    old = _config(pre)
    dev = on_node.host_app("dev", dbs["dev"])
    try:
        b.start_all(dev)
        b.create_parent_collection(dev, P)
    finally:
        dev.stop()
    _break_boot(on_node, dbs["dev"])
    return dbs, pre, old


def test_promotion_that_breaks_nocobase_is_rolled_back(
    kubectl: Kubectl, namespace: str, operator: OperatorPod, nocobase_on_node: NocoBaseOnNode
) -> None:
    dbs, pre, old = _breaking_release(kubectl, namespace, nocobase_on_node)
    _declare(kubectl, namespace, nocobase_on_node, dbs, health_timeout=90)

    apply_ok(kubectl, namespace, migration("release", "dev", "pre"))
    done = wait_phase(kubectl, namespace, "release", DONE, 3 * BOOT_TIMEOUT)
    assert done["phase"] == "RolledBack", done
    assert _conditions(done)["ApplicationHealthy"] == ("False", "ApplicationUnhealthy")
    assert done["application"]["quiesced"] is False
    wait_for(
        lambda: len(_ready_pods(kubectl, namespace)) == 1,
        timeout=BOOT_TIMEOUT,
        description="NocoBase serving again after the rollback",
    )
    _served(pre)
    assert _config(pre) == old  # the old configuration, served again
    engine = sa.create_engine(nocobase_on_node.postgres.server.url(dbs["pre"]))
    try:
        with engine.connect() as conn:
            broken = conn.execute(
                sa.text("SELECT count(*) FROM fields WHERE type = 'ferryStarRating'")
            ).scalar()
    finally:
        engine.dispose()
    assert broken == 0
