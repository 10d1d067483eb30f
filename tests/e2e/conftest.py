"""End-to-end fixtures: a real control plane, Ferry's CRDs, a namespace per test.

The control plane is started once per session in a temporary directory by the
harness (``tests/harness/cluster.py``). Every ``kubectl`` call goes through
:class:`Kubectl`, which only ever uses that control plane's admin kubeconfig, and
the session refuses to start unless that kubeconfig points at the API server the
harness just started on 127.0.0.1 as the harness's own admin: these tests create
and delete namespaces and CRDs, and must never reach a real cluster through a
stray ``$KUBECONFIG`` or a changed context.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures import nocobase_shape as shape
from tests.harness.cluster import REPO_ROOT, ControlPlane, wait_for

CRDS_DIR = REPO_ROOT / "crds"
EXAMPLES_DIR = REPO_ROOT / "manifests" / "examples"
HARNESS_USER = "ferry-admin"  # CN of the admin certificate hack/cluster/up.sh creates

Apply = Callable[[str, str], "subprocess.CompletedProcess[str]"]


class WrongClusterError(RuntimeError):
    """The kubeconfig in use is not the one of the control plane the tests started."""


class Kubectl:
    """``kubectl`` bound to the harness's admin kubeconfig, and nothing else."""

    def __init__(self, control_plane: ControlPlane) -> None:
        self.control_plane = control_plane

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return self.control_plane.kubectl(*args, input=input, check=check, timeout=timeout)

    def merge_patch(
        self,
        resource: str,
        namespace: str,
        body: Mapping[str, Any],
        *,
        subresource: str | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """``kubectl patch RESOURCE --type=merge`` (what Kopf sends), unchecked by default."""
        args = ["patch", resource, "-n", namespace, "--type=merge", "-p", json.dumps(body)]
        if subresource is not None:
            args.append(f"--subresource={subresource}")
        return self(*args, check=check)

    def json(self, *args: str) -> dict[str, Any]:
        """``kubectl ARGS -o json``, parsed."""
        out = self(*args, "-o", "json").stdout
        data = json.loads(out)
        assert isinstance(data, dict)
        return data


def guard_cluster(control_plane: ControlPlane, directory: Path, kubectl: Kubectl) -> None:
    """Refuse anything but the harness's own control plane (as crate-operator does).

    Checks that the kubeconfig lives in the directory this session created, that
    its current context points at the loopback API server recorded in that
    directory's ``cluster.env``, and that it authenticates as the harness's admin.
    """
    kubeconfig = control_plane.kubeconfig.resolve()
    if directory.resolve() not in kubeconfig.parents:
        raise WrongClusterError(f"kubeconfig {kubeconfig} is not inside {directory}")
    server = kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
    expected = control_plane.server
    if server.stdout.strip() != expected or not re.match(r"^https://127\.0\.0\.1:\d+$", expected):
        raise WrongClusterError(
            f"refusing to run: kubeconfig points at {server.stdout.strip()!r}, "
            f"the harness started {expected!r}"
        )
    who = kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    if who.stdout.strip() != HARNESS_USER:
        raise WrongClusterError(
            f"refusing to run: authenticated as {who.stdout.strip()!r}, expected {HARNESS_USER!r}"
        )


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager for the whole session."""
    directory = tmp_path_factory.mktemp("k8s")
    with ControlPlane(directory) as cp:
        guard_cluster(cp, directory, Kubectl(cp))
        yield cp


@pytest.fixture(scope="session")
def kubectl(control_plane: ControlPlane) -> Kubectl:
    return Kubectl(control_plane)


def crd_established(kubectl: Kubectl, name: str) -> bool:
    crd = kubectl.json("get", "crd", name)
    status = crd.get("status")
    conditions = status.get("conditions", []) if isinstance(status, dict) else []
    return any(c.get("type") == "Established" and c.get("status") == "True" for c in conditions)


def crd_names() -> list[str]:
    """``metadata.name`` of every CRD in ``crds/``."""
    return sorted(
        yaml.safe_load(p.read_text())["metadata"]["name"] for p in CRDS_DIR.glob("*.yaml")
    )


@pytest.fixture(scope="session")
def ferry_crds(kubectl: Kubectl) -> list[str]:
    """Apply ``crds/`` and wait until every CRD is Established; return their names."""
    kubectl("apply", "-f", str(CRDS_DIR))
    names = crd_names()
    for name in names:
        wait_for(
            functools.partial(crd_established, kubectl, name),
            timeout=30,
            description=f"CRD {name} Established",
        )
    # Discovery must know the kinds before kubectl can resolve their short names.
    wait_for(
        lambda: kubectl("get", "ferry", "-A", check=False).returncode == 0,
        timeout=30,
        description="the ferry category in discovery",
    )
    return names


@pytest.fixture
def namespace(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, deleted at teardown."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"e2e-{slug}-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false", check=False)


#: The Variables the fixture databases declare: one secret, one plain.
SHAPE_VARS = {"HOOK_TOKEN": ("secret", "t"), "TICKET_WEBHOOK": ("plain", "u")}
SQLITE_ENVS = ("dev", "pre", "prod")


def build_sqlite_envs(directory: Path) -> dict[str, str]:
    """NocoBase-shaped SQLite databases ``dev``, ``pre`` and ``prod`` in ``directory``:
    ``dev`` holds a builder's changes not yet promoted, the others are as installed.
    Returns each one's URL by name."""
    urls = {name: f"sqlite:///{directory}/{name}.db" for name in SQLITE_ENVS}
    for name, url in urls.items():
        shape.build(url, app=name, variables=SHAPE_VARS)
    shape.builder_changes(urls["dev"])
    return urls


@pytest.fixture
def sqlite_envs(tmp_path: Path) -> dict[str, str]:
    """The dev/pre/prod databases of :func:`build_sqlite_envs`, in this test's tmp_path.

    One fixture for every e2e module, so the environments a test promotes between are
    built one way; tests that need only dev and pre leave prod alone."""
    return build_sqlite_envs(tmp_path)


@pytest.fixture
def apply(kubectl: Kubectl) -> Apply:
    """``apply(yaml_text, namespace)``: ``kubectl apply -f -``; the process is returned
    unchecked so a test can assert on the API server's rejection."""

    def _apply(yaml_text: str, namespace: str) -> subprocess.CompletedProcess[str]:
        return kubectl("apply", "-n", namespace, "-f", "-", input=yaml_text, check=False)

    return _apply


@pytest.fixture
def operator(
    control_plane: ControlPlane,
    ferry_crds: list[str],
    namespace: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Any]:
    """Ferry's operator watching this test's namespace; its log is shown on failure."""
    from tests.e2e.operator import Operator

    op = Operator(control_plane, namespace, tmp_path / "operator.log").start()
    yield op
    op.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"\n--- operator log ({op.log}) ---\n{op.tail()}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)
