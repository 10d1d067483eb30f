"""The real-node tier: the operator as a pod installed by its chart, on a node that runs pods.

One session starts the control plane *with* its node (``hack/cluster/up.sh --node``:
kubelet, containerd + runc, kube-scheduler, kube-proxy, CoreDNS), builds Ferry's image from
the repository's Dockerfile (``hack/image/build.sh``, buildah, no registry) and imports it
into the node, then ``helm install``s ``charts/ferry`` with that image. PostgreSQL runs on
the host behind a selector-less Service, so Environments name ``postgres.db.svc`` as pods
do in production; the backup store is a PersistentVolume on the node.

The e2e tier's fixtures (``kubectl``, ``ferry_crds``, ``namespace``) are reused as they are,
bound here to this session's cluster. One real node runs per machine: a second session (or
``make cluster`` left running) is refused with the command that stops it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.e2e import conftest as e2e
from tests.e2e import main_flows
from tests.e2e.conftest import Kubectl, guard_cluster
from tests.harness import dbservers
from tests.harness import nocobase as nb
from tests.harness.cluster import REPO_ROOT, ControlPlane, wait_for
from tests.harness.hoststate import host_state
from tests.unit.test_chart import helm_binary

# The e2e tier's fixtures, bound to this tier's cluster (their ``control_plane`` is ours).
kubectl = e2e.kubectl
ferry_crds = e2e.ferry_crds
namespace = e2e.namespace
pytest_runtest_makereport = e2e.pytest_runtest_makereport

CHART = REPO_ROOT / "charts" / "ferry"
RELEASE = "ferry"
SYSTEM_NS = "ferry-system"
STORE_MOUNT = "/var/lib/ferry/backups"
OPERATOR_UID = 10001


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """The control plane and its real node, for the whole session. At the end the host
    must be exactly as before, even after a second ``down.sh`` (both are checked)."""
    directory = tmp_path_factory.mktemp("k8s-node")
    before = host_state(directory)
    with ControlPlane(directory, node=True) as cp:
        guard_cluster(cp, directory, Kubectl(cp))
        yield cp
    cp.down_again()
    after = host_state(directory)
    changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
    assert not changed, f"cluster-down left the host changed: {changed}"


@dataclass(frozen=True)
class Image:
    """Ferry's image as built here: ``repository:tag`` and the OCI archive it came from."""

    repository: str
    tag: str
    archive: Path


def build_image(control_plane: ControlPlane, tag: str | None = None) -> Image:
    """``hack/image/build.sh`` (buildah, the repository's Dockerfile), imported into the node."""
    args = [str(REPO_ROOT / "hack" / "image" / "build.sh"), *(["--tag", tag] if tag else [])]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, f"image build failed:\n{proc.stderr[-4000:]}"
    ref, archive = proc.stdout.strip().splitlines()[-1].split()
    control_plane.import_image(Path(archive))
    repository, _, image_tag = ref.rpartition(":")
    return Image(repository, image_tag, Path(archive))


@pytest.fixture(scope="session")
def ferry_image(control_plane: ControlPlane) -> Image:
    return build_image(control_plane)


@dataclass(frozen=True)
class NodePostgres:
    """PostgreSQL on the host, listening on the node's bridge too, behind ``postgres.db.svc``."""

    server: dbservers.RunningServer
    service_host: str = "postgres.db.svc"
    service_port: int = 5432

    def for_pods(self, url: str) -> str:
        """The same database as a pod names it: through the Service, never an IP."""
        parsed = sa.make_url(url).set(host=self.service_host, port=self.service_port)
        return parsed.render_as_string(hide_password=False)


def _selectorless_service(kubectl: Kubectl, address: str, port: int) -> None:
    kubectl("create", "namespace", "db")
    docs = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "postgres", "namespace": "db"},
            "spec": {"ports": [{"name": "pg", "port": 5432, "targetPort": port}]},
        },
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": "postgres-host",
                "namespace": "db",
                "labels": {"kubernetes.io/service-name": "postgres"},
            },
            "addressType": "IPv4",
            "ports": [{"name": "pg", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [address]}],
        },
    ]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


@pytest.fixture(scope="session")
def node_postgres(
    control_plane: ControlPlane, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodePostgres]:
    bridge = control_plane.value("BRIDGE_IP")
    base = dbservers.make_base_dir("pg-node")
    server = dbservers.start_postgres(
        base, also_listen=bridge, allow_network=control_plane.value("POD_CIDR")
    )
    try:
        _selectorless_service(kubectl, bridge, server.port)
        yield NodePostgres(server)
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def _backup_volume(kubectl: Kubectl, path: Path) -> str:
    """A hostPath PersistentVolume and its claim in the operator's namespace, owned by the
    operator's UID (hostPath ignores fsGroup). Returns the claim's name."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, OPERATOR_UID, OPERATOR_UID)
    claim = "ferry-backups"
    docs = [
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "ferry-backups"},
            "spec": {
                "capacity": {"storage": "5Gi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "hostPath": {"path": str(path), "type": "Directory"},
                "claimRef": {"namespace": SYSTEM_NS, "name": claim},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": claim, "namespace": SYSTEM_NS},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "volumeName": "ferry-backups",
                "resources": {"requests": {"storage": "5Gi"}},
            },
        },
    ]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    return claim


def chart_values(image: Image, claim: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """The chart's values for this tier: the image built here, the node's volume."""
    variables = {"FERRY_ENVIRONMENT_CHECK_SECONDS": "2", **(env or {})}
    return {
        "image": {"repository": image.repository, "tag": image.tag, "pullPolicy": "Never"},
        "operator": {"env": [{"name": k, "value": v} for k, v in variables.items()]},
        "backupStore": {"enabled": True, "existingClaim": claim, "mountPath": STORE_MOUNT},
        # Short enough for the tests' pod deletions; the chart's default is 60 s.
        "terminationGracePeriodSeconds": 10,
    }


@dataclass
class OperatorPod:
    """The operator installed by ``helm`` in ``ferry-system``."""

    control_plane: ControlPlane
    kubectl: Kubectl
    workdir: Path
    image: Image
    claim: str

    def helm(self, *args: str, values: dict[str, object] | None = None) -> str:
        cmd = [helm_binary(), *args, "--namespace", SYSTEM_NS]
        if values is not None:
            path = self.workdir / "values.yaml"
            path.write_text(yaml.safe_dump(values))
            cmd += ["--values", str(path)]
        proc = subprocess.run(
            cmd,
            env=self.control_plane.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stderr}"
        return proc.stdout

    def install(self, env: dict[str, str] | None = None, image: Image | None = None) -> None:
        """``helm upgrade --install`` (idempotent) and wait until the pod is Ready."""
        values = chart_values(image or self.image, self.claim, env)
        self.helm("upgrade", "--install", RELEASE, str(CHART), "--wait", "--timeout=180s",
                  values=values)  # fmt: skip

    def pods(self) -> list[dict[str, object]]:
        got = self.kubectl.json(
            "get", "pods", "-n", SYSTEM_NS, "-l", "app.kubernetes.io/name=ferry"
        )
        return list(got["items"])

    def log(self, lines: int = 400) -> str:
        got = self.kubectl(
            "logs", "-n", SYSTEM_NS, f"deployment/{RELEASE}", f"--tail={lines}", check=False
        )
        return got.stdout

    def grant_secrets(self, namespace: str) -> None:
        """What docs/install.md tells users: let the operator read Secrets where their
        Environments live."""
        self.kubectl(
            "create", "rolebinding", "ferry-secret-reader", "-n", namespace,
            f"--clusterrole={RELEASE}-secret-reader",
            f"--serviceaccount={SYSTEM_NS}:{RELEASE}",
        )  # fmt: skip


@pytest.fixture(scope="session")
def operator_pod(
    control_plane: ControlPlane,
    kubectl: Kubectl,
    ferry_crds: list[str],
    ferry_image: Image,
    tmp_path_factory: pytest.TempPathFactory,
) -> OperatorPod:
    kubectl("create", "namespace", SYSTEM_NS)
    workdir = tmp_path_factory.mktemp("operator-pod")
    claim = _backup_volume(kubectl, workdir / "backups")
    pod = OperatorPod(control_plane, kubectl, workdir, ferry_image, claim)
    pod.install()
    return pod


@pytest.fixture
def operator(
    operator_pod: OperatorPod, namespace: str, request: pytest.FixtureRequest
) -> Iterator[OperatorPod]:
    """The operator's pod, with Secret reads granted in this test's namespace; its log is
    shown when the test fails."""
    operator_pod.grant_secrets(namespace)
    yield operator_pod
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"\n--- operator pod log ---\n{operator_pod.log(300)}")
        print(json.dumps(operator_pod.pods(), indent=1)[-3000:])


@pytest.fixture
def site(
    kubectl: Kubectl, namespace: str, operator: OperatorPod, node_postgres: NodePostgres
) -> main_flows.Site:
    """Pods reach PostgreSQL as ``postgres.db.svc`` and the store on the node's volume."""
    operator_urls, host_urls = main_flows.build_databases(
        node_postgres.server, node_postgres.for_pods
    )
    return main_flows.Site(
        kubectl=kubectl,
        namespace=namespace,
        operator_urls=operator_urls,
        host_urls=host_urls,
        store=f"{STORE_MOUNT}/{namespace}",
        operator_log=operator.log,
    )


def wait_ready(operator: OperatorPod, timeout: float = 120) -> None:
    """Until exactly one operator pod runs and is Ready."""

    def ready() -> bool:
        pods = [p for p in operator.pods() if not p["metadata"].get("deletionTimestamp")]  # type: ignore[union-attr]
        statuses = [c for p in pods for c in p.get("status", {}).get("containerStatuses", [])]  # type: ignore[union-attr]
        return len(pods) == 1 and bool(statuses) and all(c.get("ready") for c in statuses)

    wait_for(ready, timeout=timeout, description="one Ready operator pod")


def import_base_image(control_plane: ControlPlane) -> str:
    """The Debian base image (hack/image/base.sh, cached), imported into the node."""
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


@pytest.fixture(scope="session")
def node_base_image(control_plane: ControlPlane) -> str:
    return import_base_image(control_plane)


@dataclass(frozen=True)
class NocoBaseOnNode:
    """What a NocoBase Deployment on the node is made of: the base image, the cached
    install and the host's Node.js binary (hostPath volumes, read-only), and a template
    database NocoBase installed (and started once) on ``node_postgres``."""

    image: str
    install: Path
    node: Path
    template: str
    postgres: NodePostgres
    workdir: Path

    def clone(self, label: str) -> str:
        """A ``CREATE DATABASE … TEMPLATE`` copy of the template; returns its name."""
        name = f"ferry_nb_{label}_{secrets.token_hex(3)}"
        nb.clone_database(self.postgres.server, self.template, name)
        return name

    def host_app(self, name: str, database: str) -> nb.NocoBaseApp:
        """A host process on ``database`` (the builder's development app)."""
        storage = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        return nb.NocoBaseApp(name, self.postgres.server, database, storage)

    def manifests(self, name: str, database: str, replicas: int = 1) -> list[dict[str, Any]]:
        server = self.postgres.server
        db = nb.PodDatabase(
            self.postgres.service_host, self.postgres.service_port, database,
            server.user, server.password,
        )  # fmt: skip
        return nb.kubernetes_manifests(
            name, image=self.image, install=self.install, node=self.node, db=db,
            app_key=f"{name}-app-key", aes_key=secrets.token_hex(32), replicas=replicas,
        )  # fmt: skip


@pytest.fixture(scope="session")
def nocobase_on_node(
    control_plane: ControlPlane, node_postgres: NodePostgres, node_base_image: str
) -> Iterator[NocoBaseOnNode]:
    from tests.nocobase.conftest import _template  # the tier's own template builder

    install = nb.ensure_installed().parent
    node = Path(shutil.which("node") or "node").resolve()
    assert node.is_file(), "Node.js is needed (hack/ensure-system-packages.sh installs it)"
    workdir = Path(tempfile.mkdtemp(prefix="ferry-nbn-"))  # short: gateway.sock
    try:
        template = _template(node_postgres.server, workdir, "node")
        yield NocoBaseOnNode(node_base_image, install, node, template, node_postgres, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# A stand-in application: Python's http.server from the base image, as PID 1 (so it
# ignores SIGTERM and a pod stays Terminating for its whole grace period). It serves
# /tmp/www: 200 on /, 404 on any missing path, and /healthy from HEALTHY_AFTER seconds
# after the pod started (never if negative), as NocoBase's health endpoint answers only
# once it has loaded.
STAND_IN_SERVER = """
import functools, http.server, os, pathlib, threading
www = pathlib.Path("/tmp/www")
www.mkdir(exist_ok=True)
(www / "index.html").write_text("ok")
delay = float(os.environ["HEALTHY_AFTER"])
if delay >= 0:
    threading.Timer(delay, (www / "healthy").touch).start()
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
http.server.ThreadingHTTPServer(("", 8000), handler).serve_forever()
"""
STAND_IN_REPLICAS = 2


@dataclass(frozen=True)
class StandIn:
    """How the stand-in ``web`` (a Deployment and its Service) behaves."""

    grace: int = 1  # its pods' terminationGracePeriodSeconds
    healthy_after: float = 0
    health_path: str = "/"
    health_wait: int = 15  # the Environment's health timeoutSeconds

    def manifests(self, image: str) -> str:
        labels = {"app": "web"}
        container = {
            "name": "web",
            "image": image,
            "imagePullPolicy": "Never",
            "command": ["python3", "-c", STAND_IN_SERVER],
            "env": [{"name": "HEALTHY_AFTER", "value": str(self.healthy_after)}],
            "ports": [{"containerPort": 8000}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8000}, "periodSeconds": 1},
        }
        pod = {
            "terminationGracePeriodSeconds": self.grace,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65534},
            "containers": [container],
        }
        template = {"metadata": {"labels": dict(labels)}, "spec": pod}
        spec = {"replicas": STAND_IN_REPLICAS, "selector": {"matchLabels": dict(labels)}}
        service = {"selector": dict(labels), "ports": [{"port": 8000, "targetPort": 8000}]}
        return yaml.safe_dump_all([
            {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
             "spec": {**spec, "template": template}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": service},
        ])  # fmt: skip

    def declare(self, site: main_flows.Site, image: str) -> set[str]:
        """The stand-in running and Ready; dev, and pre declaring it as its application.
        Returns the UIDs of the pods that serve before the promotion."""
        site.kubectl("apply", "-n", site.namespace, "-f", "-", input=self.manifests(image))
        wait_for(lambda: stand_in_ready(site), timeout=120, description="the stand-in Ready")
        site.declare()
        application = {
            "workload": {"kind": "Deployment", "name": "web"},
            "quiesce": {"timeoutSeconds": 120},
            "health": {
                "url": f"http://web.{site.namespace}.svc:8000{self.health_path}",
                "timeoutSeconds": self.health_wait,
            },
        }
        site.kubectl.merge_patch(
            "environment/pre",
            site.namespace,
            {"spec": {"allowRunningApplication": None, "application": application}},
            check=True,
        )
        return {p["metadata"]["uid"] for p in stand_in_pods(site)}


def stand_in_pods(site: main_flows.Site, terminating: bool = False) -> list[dict[str, Any]]:
    got = site.kubectl.json("get", "pods", "-n", site.namespace, "-l", "app=web")["items"]
    return [p for p in got if bool(p["metadata"].get("deletionTimestamp")) == terminating]


def stand_in_ready(site: main_flows.Site) -> bool:
    pods = stand_in_pods(site)
    return len(pods) == STAND_IN_REPLICAS and all(
        c.get("ready") for p in pods for c in p.get("status", {}).get("containerStatuses", [])
    )


def stand_in_replicas(site: main_flows.Site) -> int:
    got = site.kubectl.json("get", "deployment", "web", "-n", site.namespace)
    return int(got["spec"]["replicas"])
