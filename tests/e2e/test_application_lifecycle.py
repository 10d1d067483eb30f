"""The target's application during a promotion: quiesce, apply, resume, health.

A real Deployment on the local control plane (its ReplicaSet creates Pods that stay
Pending without a kubelet, and scaling to zero deletes them), the operator as a local
process, and the health URL a local HTTP server the test switches between healthy and
unhealthy. While the server is asked it can also write into the target database, as
the application would while it serves.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.db.dbhelpers import rows
from tests.e2e.conftest import Kubectl
from tests.e2e.operator import Operator, handover
from tests.e2e.test_operator import apply_ok, environment, migration, status, wait_phase
from tests.e2e.test_status_fixtures import record
from tests.harness.cluster import ControlPlane, wait_for
from tests.unit.test_argocd_health import run_health

pytestmark = pytest.mark.e2e
DONE = {"Succeeded", "Failed", "RolledBack"}
REPLICAS = 3

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: %d
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.invalid/web:1"}]
"""


@dataclass
class HealthServer:
    """``GET /api/__health_check`` answers ``code``; ``on_hit`` runs on each request."""

    code: int = 200
    hits: int = 0
    on_hit: Callable[[], None] | None = None
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/__health_check"


@pytest.fixture
def health() -> Iterator[HealthServer]:
    yield from serve_health()


def serve_health() -> Iterator[HealthServer]:
    """A :class:`HealthServer` on 127.0.0.1 until the generator is closed."""
    state = HealthServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with state.lock:
                state.hits += 1
                if state.on_hit is not None:
                    state.on_hit()
                code = state.code
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def declare(
    kubectl: Kubectl,
    namespace: str,
    urls: dict[str, str],
    store: Path,
    health_url: str,
    health_timeout: int = 4,
) -> None:
    """dev, and pre with its application ``web`` (3 replicas, Pods created)."""
    app = (
        "  application:\n"
        "    workload: {kind: Deployment, name: web}\n"
        "    quiesce: {timeoutSeconds: 60}\n"
        f'    health: {{url: "{health_url}", timeoutSeconds: {health_timeout}}}\n'
    )
    apply_ok(kubectl, namespace, DEPLOYMENT % REPLICAS)
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", urls["dev"])
        + "---"
        + environment("pre", "pre-release", urls["pre"], store=str(store), extra=app),
    )
    wait_for(
        lambda: len(pods(kubectl, namespace)) == REPLICAS,
        timeout=60,
        description="the Deployment's ReplicaSet created its Pods",
    )


def replicas(kubectl: Kubectl, namespace: str) -> int:
    return int(kubectl.json("get", "deployment", "web", "-n", namespace)["spec"]["replicas"])


def pods(kubectl: Kubectl, namespace: str) -> list[str]:
    got = kubectl.json("get", "pods", "-n", namespace, "-l", "app=web")
    return [p["metadata"]["name"] for p in got["items"]]


def conditions(done: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in done.get("conditions", [])}


def quiesced_now(kubectl: Kubectl, namespace: str, name: str) -> bool:
    app = status(kubectl, "migration", namespace, name).get("application") or {}
    return bool(app.get("quiesced")) and replicas(kubectl, namespace) == 0


def test_promotion_quiesces_the_application_and_restores_its_replicas(
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    ferry_crds: list[str],
    sqlite_envs: dict[str, str],
    tmp_path: Path,
    health: HealthServer,
) -> None:
    seen: dict[str, Any] = {}
    op = Operator(
        control_plane, namespace, tmp_path / "op.log", env={"FERRY_FAILPOINTS": "ledger=sleep(4)"}
    ).start()
    try:
        declare(kubectl, namespace, sqlite_envs, tmp_path / "backups", health.url)
        apply_ok(kubectl, namespace, migration("release", "dev", "pre"))
        wait_for(
            lambda: "failpoint ledger" in op.tail(200),
            timeout=90,
            description="the migration is writing",
        )
        # While it writes: zero replicas, no pod left, the count recorded in status.
        seen["replicas"] = replicas(kubectl, namespace)
        seen["pods"] = pods(kubectl, namespace)
        seen["status"] = status(kubectl, "migration", namespace, "release")
        quiesced = record(
            kubectl, "migration", namespace, "release", "migration-applying-quiesced", tmp_path
        )
        seen["health"] = run_health(quiesced)
        done = wait_phase(kubectl, namespace, "release", DONE, timeout=90)
    finally:
        op.stop()
    assert seen["replicas"] == 0 and seen["pods"] == []
    assert seen["status"]["application"]["replicas"] == REPLICAS
    assert conditions(seen["status"])["ApplicationQuiesced"][0] == "True"
    assert done["phase"] == "Succeeded", done
    assert replicas(kubectl, namespace) == REPLICAS
    assert health.hits >= 1
    assert done["application"] == {
        "workload": "Deployment/web",
        "replicas": REPLICAS,
        "quiesced": False,
        "health": "HTTP 200",
        "result": done["application"]["result"],
    }
    assert conditions(done)["ApplicationQuiesced"] == ("False", "Resumed")
    assert conditions(done)["ApplicationHealthy"] == ("True", "Healthy")
    assert seen["status"]["phase"] == "Applying"
    assert conditions(seen["status"])["ApplicationQuiesced"] == ("True", "Quiesced")
    assert seen["health"]["status"] == "Progressing"
    assert "Deployment/web is held at zero replicas, 3 to restore" in seen["health"]["message"]
    # Held while quiesced (a deletion resumes the workload first), then let go.
    wait_for(
        lambda: not finalizers(kubectl, namespace, "release"),
        timeout=30,
        description="Kopf removed the finalizer once the application ran again",
    )


def finalizers(kubectl: Kubectl, namespace: str, name: str) -> list[str]:
    meta = kubectl.json("get", "migration", name, "-n", namespace)["metadata"]
    return list(meta.get("finalizers") or [])


def _serve_writes(url: str) -> Callable[[], None]:
    """What the application does while it serves: a user signs up, a page is added."""
    written = {"done": False}

    def write() -> None:
        if written["done"]:
            return
        written["done"] = True
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "INSERT INTO users (id, nickname, username, email) "
                        "VALUES (9001, 'served', 'served-u', 'served@pre.example')"
                    )
                )
                conn.execute(
                    sa.text(
                        'INSERT INTO "uiSchemas" ("x-uid", name, schema) '
                        "VALUES ('served-page', 'served', '{}')"
                    )
                )
        finally:
            engine.dispose()

    return write


def test_unhealthy_after_resume_rolls_back_and_keeps_rows_written_meanwhile(
    kubectl: Kubectl,
    namespace: str,
    operator: Operator,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
    health: HealthServer,
) -> None:
    pre = sqlite_envs["pre"]
    pages_before = rows(pre, "uiSchemas", "x-uid", order="x-uid")
    health.code = 503
    health.on_hit = _serve_writes(pre)
    declare(kubectl, namespace, sqlite_envs, tmp_path / "backups", health.url)
    apply_ok(kubectl, namespace, migration("bad", "dev", "pre"))
    done = wait_phase(kubectl, namespace, "bad", DONE, timeout=120)
    assert done["phase"] == "RolledBack", done
    recorded = record(
        kubectl, "migration", namespace, "bad", "migration-rolled-back-unhealthy", tmp_path
    )
    assert run_health(recorded)["status"] == "Degraded"
    assert "runs the old configuration again" in run_health(recorded)["message"]
    assert conditions(done)["Ready"] == ("False", "ApplicationUnhealthy")
    assert conditions(done)["ApplicationHealthy"] == ("False", "ApplicationUnhealthy")
    assert conditions(done)["ApplicationQuiesced"] == ("False", "Resumed")
    assert "HTTP 503" in done["message"]
    assert replicas(kubectl, namespace) == REPLICAS
    # The migration's pages are gone, the page and the user written meanwhile stay.
    assert rows(pre, "uiSchemas", "x-uid", order="x-uid") == sorted(
        [*pages_before, ("served-page",)]
    )
    assert ("served-u",) in rows(pre, "users", "username")
    ledger = rows(pre, "ferry_migrations", "result")
    assert ledger == [("rolled-back",)], ledger


@pytest.mark.parametrize("kill_at", ["rows:uiSchemas", "committed", "health"])
def test_operator_killed_while_quiesced_resumes_the_application(
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    ferry_crds: list[str],
    sqlite_envs: dict[str, str],
    tmp_path: Path,
    health: HealthServer,
    kill_at: str,
) -> None:
    if kill_at == "health":
        health.code = 503  # answers only after the restart; the health wait is long
    failpoint = "" if kill_at == "health" else kill_at
    with handover(control_plane, namespace, tmp_path, failpoint) as ops:
        first = ops.first
        if kill_at == "health":
            # Applied before its Environments: the first attempt waits and is retried
            # after a delay, so Kopf's touch-dummy annotation is on the object when the
            # operator dies. A restarted Kopf that changed the finalizer of such an
            # object then never processed it again (the defect this case found).
            apply_ok(kubectl, namespace, migration("release", "dev", "pre"))
            wait_for(
                lambda: "failed temporarily" in first.tail(200),
                timeout=60,
                description="the Migration waits for its Environments",
            )
        # Killed while the health wait is long; the other cases keep the short one.
        wait = 600 if kill_at == "health" else 4
        declare(kubectl, namespace, sqlite_envs, tmp_path / "backups", health.url, wait)
        apply_ok(kubectl, namespace, migration("release", "dev", "pre"))
        if kill_at == "health":
            # This operator's health check, not any other request to the port: the
            # Migration must be in CheckingHealth (a CI run once saw a stray hit first).
            wait_for(
                lambda: (
                    status(kubectl, "migration", namespace, "release").get("phase")
                    == "CheckingHealth"
                    and health.hits > 0
                ),
                timeout=180,
                description="the health check runs",
            )
            assert replicas(kubectl, namespace) == REPLICAS  # resumed, waiting for health
        else:
            ops.wait_paused(kill_at)
            assert quiesced_now(kubectl, namespace, "release")
        ops.crash()
        health.code = 200
        ops.second.start()
        done = wait_phase(kubectl, namespace, "release", DONE, timeout=120)
    assert done["phase"] == "Succeeded", done
    assert replicas(kubectl, namespace) == REPLICAS
    assert done["application"]["quiesced"] is False
    ledger = rows(sqlite_envs["pre"], "ferry_migrations", "result")
    assert ledger == [("succeeded",)], ledger  # applied exactly once


def test_migration_deleted_while_quiesced_resumes_the_application(
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    ferry_crds: list[str],
    sqlite_envs: dict[str, str],
    tmp_path: Path,
    health: HealthServer,
) -> None:
    with handover(control_plane, namespace, tmp_path, "rows:uiSchemas") as ops:
        declare(kubectl, namespace, sqlite_envs, tmp_path / "backups", health.url)
        apply_ok(kubectl, namespace, migration("release", "dev", "pre"))
        ops.wait_paused("rows:uiSchemas")  # while the application is quiesced
        assert quiesced_now(kubectl, namespace, "release")
        assert finalizers(kubectl, namespace, "release") == ["ferry.dev/finalizer"]
        ops.crash()
        kubectl("delete", "migration", "release", "-n", namespace, "--wait=false")
        held = kubectl.json("get", "migration", "release", "-n", namespace)["metadata"]
        assert "ferry.dev/finalizer" in held["finalizers"] and held["deletionTimestamp"]
        ops.second.start()
        wait_for(
            lambda: (
                kubectl("get", "migration", "release", "-n", namespace, check=False).returncode != 0
            ),
            timeout=60,
            description="the Migration is gone",
        )
    assert replicas(kubectl, namespace) == REPLICAS
    assert "resumed Deployment/web back at 3 replicas" in ops.second.tail(400)
    wait_for(
        lambda: len(pods(kubectl, namespace)) == REPLICAS,
        timeout=60,
        description="the ReplicaSet made its Pods again",
    )


def test_nocobase_target_without_application_is_refused_with_the_plans_reason(
    kubectl: Kubectl,
    namespace: str,
    operator: Operator,
    sqlite_envs: dict[str, str],
) -> None:
    pre = sqlite_envs["pre"]
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", sqlite_envs["dev"])
        + f"""---
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: pre}}
spec:
  stage: pre-release
  profile: nocobase
  database: {{dialect: sqlite, url: "{pre}"}}
""",
    )
    apply_ok(kubectl, namespace, migration("live", "dev", "pre"))
    done = wait_phase(kubectl, namespace, "live", DONE, timeout=90)
    assert done["phase"] == "Failed", done
    assert conditions(done)["Ready"] == ("False", "RunningApplication")
    reason = [n for n in done["plan"]["notes"] if n.startswith("refused:")]
    assert reason and "allowRunningApplication: true" in reason[0], done["plan"]
    assert "NocoBase caches its configuration" in done["message"]
    assert not [
        r for r in rows(pre, "uiSchemas", "x-uid", order="x-uid") if r[0].startswith("page-new")
    ]


def test_restore_quiesces_and_resumes_the_application(
    kubectl: Kubectl,
    namespace: str,
    operator: Operator,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
    health: HealthServer,
) -> None:
    pre = sqlite_envs["pre"]
    pages_before = rows(pre, "uiSchemas", "x-uid", order="x-uid")
    declare(kubectl, namespace, sqlite_envs, tmp_path / "backups", health.url)
    apply_ok(kubectl, namespace, migration("release", "dev", "pre"))
    assert wait_phase(kubectl, namespace, "release", DONE, timeout=90)["phase"] == "Succeeded"
    hits = health.hits
    apply_ok(
        kubectl,
        namespace,
        "apiVersion: ferry.dev/v1alpha1\nkind: Restore\nmetadata: {name: undo}\n"
        "spec: {migration: release}\n",
    )
    wait_for(
        lambda: (
            status(kubectl, "restore", namespace, "undo").get("phase")
            in {"Completed", "Failed", "Reverted"}
        ),
        timeout=90,
        description="Restore undo finished",
    )
    done = status(kubectl, "restore", namespace, "undo")
    assert done["phase"] == "Completed", done
    assert done["application"]["replicas"] == REPLICAS and not done["application"]["quiesced"]
    assert conditions(done)["ApplicationQuiesced"] == ("False", "Resumed")
    assert conditions(done)["ApplicationHealthy"] == ("True", "Healthy")
    assert replicas(kubectl, namespace) == REPLICAS and health.hits > hits
    assert rows(pre, "uiSchemas", "x-uid", order="x-uid") == pages_before
    kubectl("delete", "restore", "undo", "-n", namespace, "--timeout=60s")  # its finalizer


STATEFUL_SET = """
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  replicas: 2
  serviceName: db
  podManagementPolicy: Parallel
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "registry.invalid/db:1"}]
"""


def test_a_stateful_set_is_quiesced_through_its_scale_too(
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    ferry_crds: list[str],
    sqlite_envs: dict[str, str],
    tmp_path: Path,
    health: HealthServer,
) -> None:
    def scale() -> int:
        got = kubectl.json("get", "statefulset", "db", "-n", namespace)
        return int(got["spec"]["replicas"])

    def db_pods() -> list[str]:
        got = kubectl.json("get", "pods", "-n", namespace, "-l", "app=db")
        return [p["metadata"]["name"] for p in got["items"]]

    op = Operator(
        control_plane, namespace, tmp_path / "op.log", env={"FERRY_FAILPOINTS": "ledger=sleep(4)"}
    ).start()
    try:
        apply_ok(kubectl, namespace, STATEFUL_SET)
        app = (
            "  application:\n"
            "    workload: {kind: StatefulSet, name: db}\n"
            f'    health: {{url: "{health.url}", timeoutSeconds: 4}}\n'
        )
        apply_ok(
            kubectl,
            namespace,
            environment("dev", "development", sqlite_envs["dev"])
            + "---"
            + environment("pre", "pre-release", sqlite_envs["pre"], extra=app),
        )
        wait_for(lambda: len(db_pods()) == 2, timeout=60, description="the StatefulSet's Pods")
        apply_ok(kubectl, namespace, migration("release", "dev", "pre"))
        wait_for(lambda: "failpoint ledger" in op.tail(200), timeout=90, description="it writes")
        during = (scale(), db_pods())
        done = wait_phase(kubectl, namespace, "release", DONE, timeout=90)
    finally:
        op.stop()
    assert during == (0, [])
    assert done["phase"] == "Succeeded", done
    assert done["application"]["workload"] == "StatefulSet/db"
    assert done["application"]["replicas"] == 2 and scale() == 2
