"""A real Argo CD (application controller, repo server, API server) as local processes.

Why this exists: Ferry's Argo CD integration (health checks and actions in ``argocd/``,
sync waves, approvals) is only worth what Argo CD itself makes of it. This module runs
the pinned Argo CD, built once from the Go module proxy by ``hack/argocd/build.sh``
into the binary cache (one ``argocd`` binary; the components are the names it is run
as), against the harness's control plane (:mod:`tests.harness.cluster`):

* Redis (Debian's ``redis-server``) on a free port of 127.0.0.1, no persistence, never
  the system service;
* Argo CD's CRDs (``Application``, ``AppProject``, from the same module version), the
  ``argocd`` namespace, ``argocd-cm`` holding Ferry's health checks and actions
  (``argocd/argocd-cm.yaml``), ``argocd-secret`` (a random admin password and server
  key), ``argocd-rbac-cm``, and the ``default`` AppProject (which Argo CD's API server
  would create);
* ``argocd-repo-server`` (gRPC on 127.0.0.1 with its own self-signed certificate),
  ``argocd-application-controller``, and ``argocd-server`` (``--insecure``: plain
  HTTP/gRPC on 127.0.0.1; the CLI logs in as admin and runs resource actions through
  it as a user does), all with ``ARGOCD_FAKE_IN_CLUSTER=true``: the in-cluster
  destination (``https://kubernetes.default.svc``) is the cluster of ``KUBECONFIG``.
  The controller and the API server authenticate as their own service accounts
  (``argocd-application-controller``, ``argocd-server``, bound to ``cluster-admin``
  as upstream's ClusterRoles allow everything), so the API server sees Argo CD's
  identity, as admission policies do in a real installation.

Applications read Git over ``file://`` (the repo server clones with ``git``), so a
test's repository is a local bare repository; a commit is seen on the next refresh
(:meth:`ArgoCD.refresh`, what a Git webhook triggers) or resync.

:class:`GitRepo` is such a repository; :meth:`ArgoCD.view` is an Application as Argo CD's
API shows it (with each resource's health), and :meth:`ArgoCD.commit_and_wait` the step
every GitOps test repeats: commit, refresh, wait for Argo CD to reach a state at that
commit.

Only the standard library, PyYAML and the processes' binaries are used.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import signal
import socket
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self

import yaml

from . import process
from .cluster import REPO_ROOT, ControlPlane, ControlPlaneError, default_cache_dir, wait_for
from .process import Managed, ServerStartError

__all__ = [
    "ARGOCD_NAMESPACE",
    "RELEASE_MANAGER",
    "ArgoCD",
    "GitRepo",
    "application",
    "build_argocd",
    "health",
    "operation",
    "operation_revision",
    "resource_health",
    "synced",
    "wave",
]

ARGOCD_NAMESPACE = "argocd"
BUILD_SCRIPT = REPO_ROOT / "hack" / "argocd" / "build.sh"
FERRY_CM = REPO_ROOT / "argocd" / "argocd-cm.yaml"
#: Argo CD's own CRDs the tier needs (ApplicationSets are not used).
CRDS = ("application-crd.yaml", "appproject-crd.yaml")
START_TIMEOUT = 120.0
#: The components that authenticate to Kubernetes as their own service account, as in
#: Argo CD's install manifests.
SERVICE_ACCOUNTS = ("argocd-application-controller", "argocd-server")
#: A local Argo CD account that may read Applications and approve Migrations, nothing else
#: (the RBAC docs/argocd.md gives for release managers).
RELEASE_MANAGER = "release-manager"
RBAC_POLICY = f"""\
p, role:release-managers, applications, get, */*, allow
p, role:release-managers, applications, action/ferry.dev/Migration/approve, */*, allow
g, {RELEASE_MANAGER}, role:release-managers
"""


GIT_ENV = {
    "GIT_AUTHOR_NAME": "Release Manager",
    "GIT_AUTHOR_EMAIL": "release@example.com",
    "GIT_COMMITTER_NAME": "Release Manager",
    "GIT_COMMITTER_EMAIL": "release@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
}


class GitRepo:
    """A bare repository Argo CD reads over ``file://``, and a work tree to commit from."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "config.git"
        self.work = root / "work"
        self.git("init", "--quiet", "--bare", "-b", "main", str(self.bare), cwd=root)
        self.git("init", "--quiet", "-b", "main", str(self.work), cwd=root)

    @property
    def url(self) -> str:
        return f"file://{self.bare}"

    def git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, **GIT_ENV, "HOME": str(self.bare.parent)}
        return subprocess.run(
            ["git", *args],
            cwd=cwd or self.work,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    def commit(self, message: str, files: Mapping[str, str | None]) -> str:
        """Write (or, for ``None``, remove) ``files`` (paths relative to the work tree),
        commit, push; return the commit."""
        for name, text in files.items():
            path = self.work / name
            if text is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
        self.git("add", "-A")
        self.git("commit", "--quiet", "-m", message)
        self.git("push", "--quiet", str(self.bare), "main")
        return self.git("rev-parse", "HEAD")


def wave(doc: str, number: int) -> str:
    """``doc`` with Argo CD's sync-wave annotation (what ``ferry promote --sync-wave`` writes)."""
    head, sep, rest = doc.partition("metadata: {name: ")
    assert sep, doc
    name, _, tail = rest.partition("}")
    annotation = f'annotations: {{argocd.argoproj.io/sync-wave: "{number}"}}'
    return f"{head}metadata: {{name: {name}, {annotation}}}{tail}"


def application(name: str, repo: GitRepo, namespace: str) -> str:
    """An automated (prune, self-heal) Application syncing ``repo``'s root into ``namespace``."""
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Application
metadata: {{name: {name}, namespace: {ARGOCD_NAMESPACE}}}
spec:
  project: default
  source: {{repoURL: "{repo.url}", targetRevision: main, path: .}}
  destination: {{server: https://kubernetes.default.svc, namespace: {namespace}}}
  syncPolicy:
    automated: {{prune: true, selfHeal: true}}
"""


def resource_health(app: dict[str, Any], kind: str, name: str) -> dict[str, str]:
    for res in app.get("status", {}).get("resources") or []:
        if res.get("kind") == kind and res.get("name") == name:
            return dict(res.get("health") or {})
    return {}


def health(app: dict[str, Any]) -> str:
    return str(app.get("status", {}).get("health", {}).get("status"))


def synced(app: dict[str, Any]) -> bool:
    return bool(app.get("status", {}).get("sync", {}).get("status") == "Synced")


def operation(app: dict[str, Any]) -> tuple[str, str]:
    """The phase and message of the Application's last (or current) sync operation."""
    state = app.get("status", {}).get("operationState") or {}
    return str(state.get("phase")), str(state.get("message"))


def operation_revision(app: dict[str, Any]) -> str:
    """The commit the last (or current) sync operation syncs."""
    state = app.get("status", {}).get("operationState") or {}
    return str((state.get("operation") or {}).get("sync", {}).get("revision", ""))


def build_argocd(timeout: float = 5400.0) -> Path:
    """Build (or reuse) the pinned Argo CD; return the directory holding ``argocd``."""
    env = {**os.environ, "FERRY_CACHE": str(default_cache_dir())}
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise ServerStartError(f"{BUILD_SCRIPT} failed ({proc.returncode}):\n{proc.stderr}")
    bin_dir = Path(proc.stdout.strip().splitlines()[-1])
    if not (bin_dir / "argocd").is_file():
        raise ServerStartError(f"{BUILD_SCRIPT} reported {bin_dir}, which holds no argocd")
    return bin_dir


def _redis_pong(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def _listening(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2):
        return True


class ArgoCD(Managed):
    """Argo CD's controller, repo server and API server, and their Redis, in ``directory``."""

    def __init__(self, control_plane: ControlPlane, directory: Path) -> None:
        self.control_plane = control_plane
        self.directory = directory.resolve()
        self.bin_dir: Path | None = None
        self.password = secrets.token_urlsafe(18)
        self.ports: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    # -- paths ---------------------------------------------------------------
    @property
    def argocd(self) -> Path:
        if self.bin_dir is None:
            raise ServerStartError("Argo CD is not built yet; call start() first")
        return self.bin_dir / "argocd"

    def log(self, component: str) -> Path:
        return self.directory / f"{component}.log"

    def kubeconfig(self, component: str) -> Path:
        """How ``component`` authenticates to Kubernetes: as its own service account in
        ``argocd`` (a token kubeconfig, so admission policies see Argo CD's identity),
        the repo server as the harness's admin (it talks to Git, not to Kubernetes)."""
        if component in SERVICE_ACCOUNTS:
            return self.directory / f"{component}.kubeconfig"
        return self.control_plane.kubeconfig

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> Self:
        self.bin_dir = build_argocd()
        self.directory.mkdir(parents=True, exist_ok=True)
        for sub in ("tmp", "home", "tls", "ssh", "gpg"):
            (self.directory / sub).mkdir(exist_ok=True)
        process.stop_at_exit(self, self.stop)
        try:
            self._start_redis()
            self._install()
            self._start_component("argocd-repo-server", self._repo_server_args(), "repo-server")
            self._start_component(
                "argocd-application-controller", self._controller_args(), "controller"
            )
            self._start_component("argocd-server", self._server_args(), "server")
            self._login()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for name in ("argocd-server", "argocd-application-controller", "argocd-repo-server"):
            proc = self.procs.pop(name, None)
            if proc is not None:
                process.terminate(proc, signal.SIGTERM, 20)
        redis = self.procs.pop("redis", None)
        if redis is not None:
            process.terminate(redis, signal.SIGTERM, 10)
        process.forget(self)

    def _spawn(
        self, name: str, cmd: list[str], probe: Callable[[], bool], env: dict[str, str]
    ) -> None:
        def attempt() -> None:
            log = self.log(name)
            proc = process.spawn(
                cmd, log_path=log, pdeathsig=signal.SIGTERM, cwd=self.directory, env=env
            )
            self.procs[name] = proc
            try:
                process.wait_until_ready(
                    proc, probe, what=name, log_path=log, timeout=START_TIMEOUT, interval=0.5
                )
            except ServerStartError:
                process.terminate(proc, signal.SIGTERM, 10)
                self.procs.pop(name, None)
                raise

        process.retry_on_port_clash(attempt, clashed=lambda e: "address already in use" in str(e))

    def _start_redis(self) -> None:
        port = self.ports["redis"] = process.free_port()
        cmd = [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
        ]
        self._spawn("redis", cmd, lambda: _redis_pong(port), self._env())

    def _env(self) -> dict[str, str]:
        d = self.directory
        return {
            # the repo server runs git-verify-wrapper.sh (beside the binary) on every revision
            "PATH": f"{self.argocd.parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(d / "home"),
            "TMPDIR": str(d / "tmp"),
            "KUBECONFIG": str(self.control_plane.kubeconfig),
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_TLS_DATA_PATH": str(d / "tls"),
            "ARGOCD_SSH_DATA_PATH": str(d / "ssh"),
            "ARGOCD_GNUPGHOME": str(d / "gpg"),
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_CONFIG_DIR": str(d / "home"),
        }

    def _start_component(self, name: str, args: list[str], port_key: str) -> None:
        env = {**self._env(), "ARGOCD_BINARY_NAME": name, "KUBECONFIG": str(self.kubeconfig(name))}
        port = self.ports[port_key]
        self._spawn(name, [str(self.argocd), *args], lambda: _listening(port), env)

    def _common_args(self) -> list[str]:
        return ["--loglevel", "info", "--redis", f"127.0.0.1:{self.ports['redis']}"]

    def _repo_server_args(self) -> list[str]:
        self.ports["repo-server"] = process.free_port()
        return [
            *self._common_args(),
            "--address",
            "127.0.0.1",
            "--port",
            str(self.ports["repo-server"]),
            "--metrics-address",
            "127.0.0.1",
            "--metrics-port",
            str(process.free_port()),
        ]

    def _controller_args(self) -> list[str]:
        return [
            *self._common_args(),
            "--kubeconfig",
            str(self.kubeconfig("argocd-application-controller")),
            "--namespace",
            ARGOCD_NAMESPACE,
            "--repo-server",
            f"127.0.0.1:{self.ports['repo-server']}",
            "--metrics-port",
            str(self.ports.setdefault("controller", process.free_port())),
            "--app-resync",
            "15",
            "--status-processors",
            "2",
            "--operation-processors",
            "2",
        ]

    def _server_args(self) -> list[str]:
        self.ports["server"] = process.free_port()
        return [
            *self._common_args(),
            "--kubeconfig",
            str(self.kubeconfig("argocd-server")),
            "--namespace",
            ARGOCD_NAMESPACE,
            "--repo-server",
            f"127.0.0.1:{self.ports['repo-server']}",
            "--insecure",
            "--address",
            "127.0.0.1",
            "--port",
            str(self.ports["server"]),
            "--metrics-address",
            "127.0.0.1",
            "--metrics-port",
            str(process.free_port()),
            "--dex-server",
            "",
            "--staticassets",
            str(self.directory / "tmp"),
        ]

    # -- installation --------------------------------------------------------
    def _install(self) -> None:
        kubectl = self.control_plane.kubectl
        assert self.bin_dir is not None
        for crd in CRDS:
            kubectl("apply", "--server-side", "-f", str(self.bin_dir / "crds" / crd))
        jsonpath = 'jsonpath={.status.conditions[?(@.type=="Established")].status}'

        def established(crd: str) -> bool:
            return kubectl("get", "crd", crd, "-o", jsonpath).stdout == "True"

        for crd in ("applications.argoproj.io", "appprojects.argoproj.io"):
            wait_for(
                functools.partial(established, crd),
                timeout=60,
                description=f"CRD {crd} Established",
            )
        kubectl("create", "namespace", ARGOCD_NAMESPACE, check=False)
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(self._settings()))
        for account in SERVICE_ACCOUNTS:
            # Upstream's ClusterRoles give both components every verb on every resource.
            kubectl("create", "serviceaccount", account, "-n", ARGOCD_NAMESPACE, check=False)
            kubectl(
                "create",
                "clusterrolebinding",
                f"ferry-test-{account}",
                "--clusterrole=cluster-admin",
                f"--serviceaccount={ARGOCD_NAMESPACE}:{account}",
                check=False,
            )
            self.control_plane.write_token_kubeconfig(
                self.kubeconfig(account), ARGOCD_NAMESPACE, account
            )

    def _settings(self) -> list[dict[str, Any]]:
        cm = yaml.safe_load(FERRY_CM.read_text())
        cm["data"]["admin.enabled"] = "true"
        cm["data"][f"accounts.{RELEASE_MANAGER}"] = "login"
        bcrypt = subprocess.run(
            [str(self.argocd), "account", "bcrypt", "--password", self.password],
            env={**self._env(), "ARGOCD_BINARY_NAME": "argocd"},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        labels = {"app.kubernetes.io/part-of": "argocd"}
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "argocd-secret",
                "namespace": ARGOCD_NAMESPACE,
                "labels": {**labels, "app.kubernetes.io/name": "argocd-secret"},
            },
            "stringData": {
                "admin.password": bcrypt,
                "admin.passwordMtime": "2026-01-01T00:00:00Z",
                "server.secretkey": secrets.token_urlsafe(32),
            },
        }
        rbac = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": "argocd-rbac-cm",
                "namespace": ARGOCD_NAMESPACE,
                "labels": {**labels, "app.kubernetes.io/name": "argocd-rbac-cm"},
            },
            "data": {"policy.default": "", "policy.csv": RBAC_POLICY},
        }
        project = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "AppProject",
            "metadata": {"name": "default", "namespace": ARGOCD_NAMESPACE},
            "spec": {
                "sourceRepos": ["*"],
                "destinations": [{"server": "*", "namespace": "*"}],
                "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
            },
        }
        return [cm, secret, rbac, project]

    # -- the CLI -------------------------------------------------------------
    def _login(self) -> None:
        def login(user: str, password: str) -> bool:
            got = self.cli(
                "login",
                f"127.0.0.1:{self.ports['server']}",
                "--plaintext",
                "--username",
                user,
                "--password",
                password,
                user=user,
                check=False,
            )
            return got.returncode == 0

        process.wait_until_ready(
            self.procs["argocd-server"],
            functools.partial(login, "admin", self.password),
            what="argocd login",
            log_path=self.log("argocd-server"),
            timeout=60,
            interval=1,
        )
        manager_password = secrets.token_urlsafe(18)
        self.cli(
            "account",
            "update-password",
            "--account",
            RELEASE_MANAGER,
            "--current-password",
            self.password,
            "--new-password",
            manager_password,
        )
        if not login(RELEASE_MANAGER, manager_password):
            raise ServerStartError(f"argocd login as {RELEASE_MANAGER} failed")

    def cli(
        self, *args: str, user: str = "admin", check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the ``argocd`` CLI, logged in to this API server as ``user`` (``admin`` or
        :data:`RELEASE_MANAGER`)."""
        env = {**self._env(), "ARGOCD_BINARY_NAME": "argocd"}
        config = self.directory / "home" / f"config-{user}"
        cmd = [str(self.argocd), "--config", str(config), *args]
        proc = subprocess.run(
            cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise ControlPlaneError(f"argocd {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    # -- Applications --------------------------------------------------------
    def application(self, name: str) -> dict[str, Any]:
        """The Application ``name`` as the API server holds it ({} when absent)."""
        got = self.control_plane.kubectl(
            "get", "application", name, "-n", ARGOCD_NAMESPACE, "-o", "json", check=False
        )
        return dict(json.loads(got.stdout)) if got.returncode == 0 else {}

    def refresh(self, name: str) -> None:
        """Ask the controller to look at Git again now (what a Git webhook does)."""
        self.control_plane.kubectl(
            "annotate",
            "application",
            name,
            "-n",
            ARGOCD_NAMESPACE,
            "argocd.argoproj.io/refresh=normal",
            "--overwrite",
        )

    def view(self, name: str) -> dict[str, Any]:
        """The Application as Argo CD's API shows it (``argocd app get``: resource health
        filled in); {} when absent."""
        got = self.cli("app", "get", name, "-o", "json", check=False)
        if got.returncode != 0:
            return {}
        data: dict[str, Any] = json.loads(got.stdout)
        return data

    def wait_view(
        self, name: str, check: Callable[[dict[str, Any]], bool], what: str, timeout: float = 180
    ) -> dict[str, Any]:
        """Poll :meth:`view` until ``check`` holds; on timeout fail saying what it was."""
        seen: dict[str, Any] = {}

        def probe() -> dict[str, Any] | None:
            nonlocal seen
            seen = self.view(name)
            return seen if seen and check(seen) else None

        try:
            return wait_for(probe, timeout=timeout, interval=1, description=what)
        except TimeoutError as exc:
            status = json.dumps(seen.get("status", {}), indent=1)[-5000:]
            raise AssertionError(f"{what}; the Application's status:\n{status}") from exc

    def commit_and_wait(
        self,
        name: str,
        repo: GitRepo,
        message: str,
        files: Mapping[str, str | None],
        check: Callable[[dict[str, Any]], bool],
        what: str,
        timeout: float = 180,
    ) -> dict[str, Any]:
        """Commit ``files`` to ``repo``, refresh the Application (what a Git webhook does)
        and wait until its sync operation is at that commit and ``check`` holds."""
        revision = repo.commit(message, files)
        self.refresh(name)
        return self.wait_view(
            name,
            lambda app: operation_revision(app) == revision and check(app),
            f"{what} at {revision[:12]}",
            timeout,
        )
