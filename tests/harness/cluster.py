"""Local Kubernetes control plane for Ferry's end-to-end tests.

Why this exists: the operator must be tested against a *real* API server (RBAC,
CRD structural schemas, CEL validation rules, status subresources, namespace
deletion and ownerReference garbage collection by the controller manager), not
a mock. This module is a thin Python front-end to the shell scripts in
``hack/cluster/``, which own all the logic (building the binaries once into a
cache outside git, generating certificates, starting and stopping etcd,
kube-apiserver and kube-controller-manager on 127.0.0.1). Keeping the logic in
one place means ``hack/cluster/up.sh`` used by hand and the pytest fixture
behave identically.

Typical use from a session-scoped pytest fixture::

    @pytest.fixture(scope="session")
    def control_plane(tmp_path_factory):
        with ControlPlane(tmp_path_factory.mktemp("k8s")) as cp:
            yield cp

Only the standard library (and :mod:`tests.harness.process`, which uses only the
standard library) is used so the harness works before the project's dependencies are
installed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Self, TypeVar

from .process import Managed, retry_on_port_clash

__all__ = [
    "REPO_ROOT",
    "ControlPlane",
    "ControlPlaneError",
    "build_binaries",
    "default_cache_dir",
    "wait_for",
]

T = TypeVar("T")

REPO_ROOT: Path = Path(__file__).resolve().parents[2]
"""Root of the Ferry git checkout."""

_SCRIPTS: Path = REPO_ROOT / "hack" / "cluster"


class ControlPlaneError(RuntimeError):
    """Raised when building, starting or talking to the control plane fails."""


def default_cache_dir() -> Path:
    """Return ``$FERRY_CACHE`` or ``~/.cache/ferry`` (where binaries are cached)."""
    env = os.environ.get("FERRY_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ferry"


def _run_script(
    script: str,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> str:
    """Run ``hack/cluster/<script>``; return stdout, raise with stderr on failure."""
    cmd = [str(_SCRIPTS / script), *args]
    try:
        proc = subprocess.run(
            cmd,
            env=dict(env) if env is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ControlPlaneError(f"{script} timed out after {timeout}s") from exc
    if proc.returncode != 0:
        raise ControlPlaneError(
            f"{' '.join(cmd)} failed with exit code {proc.returncode}:\n{proc.stderr}"
        )
    return proc.stdout


# Run by a detached interpreter: poll the test process, and once it is gone without
# having stopped the cluster (``kill -9``, an OOM kill), run down.sh for it. up.sh
# daemonizes etcd, the API server and the node, so the kernel's parent-death signal
# (see tests/harness/process.py) cannot reach them.
_REAPER = """
import os, subprocess, sys, time
pid, script, directory = int(sys.argv[1]), sys.argv[2], sys.argv[3]
while True:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        break
    time.sleep(2)
subprocess.run([script, directory], check=False, timeout=120)
"""


def _start_reaper(directory: Path, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """A detached process that tears this cluster down if the test process dies."""
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            _REAPER,
            str(os.getpid()),
            str(_SCRIPTS / "down.sh"),
            str(directory),
        ],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _port_taken(err: Exception) -> bool:
    return isinstance(err, ControlPlaneError) and "address already in use" in str(err)


def build_binaries(env: Mapping[str, str] | None = None, timeout: float | None = None) -> Path:
    """Build (or reuse from cache) the control-plane binaries; return their directory.

    The first build compiles Kubernetes from the Go module proxy and can take
    15-30 minutes; later calls return immediately.
    """
    out = _run_script("build.sh", env=env, timeout=timeout).strip().splitlines()
    if not out:
        raise ControlPlaneError("build.sh printed no binary directory")
    bin_dir = Path(out[-1])
    if not (bin_dir / "kubectl").is_file():
        raise ControlPlaneError(f"build.sh reported {bin_dir}, but it holds no kubectl")
    return bin_dir


def wait_for(
    predicate: Callable[[], T | None],
    timeout: float = 30.0,
    interval: float = 0.5,
    description: str = "condition",
) -> T:
    """Poll ``predicate`` until it returns a truthy value, and return that value.

    Exceptions raised by ``predicate`` count as "not yet" (the last one is chained
    to the ``TimeoutError``), so a predicate may simply call the API and let a 404
    propagate until the object appears.
    """
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            result = predicate()
        except Exception as exc:  # the predicate decides what "not ready" means
            last_exc = exc
        else:
            if result:
                return result
        if time.monotonic() >= deadline:
            message = f"timed out after {timeout}s waiting for {description}"
            raise TimeoutError(message) from last_exc
        time.sleep(interval)


class ControlPlane(Managed):
    """etcd + kube-apiserver + kube-controller-manager running in ``directory``.

    Use as a context manager (or call :meth:`start` / :meth:`stop`). State,
    certificates, logs and the admin kubeconfig live in ``directory``; each start
    is a fresh, empty cluster. The admin user is in ``system:masters``; RBAC is
    enforced for every other identity (``--authorization-mode=Node,RBAC``).
    """

    def __init__(
        self,
        directory: Path | str | None = None,
        *,
        cache_dir: Path | str | None = None,
        build_timeout: float | None = 3600.0,
        start_timeout: float = 300.0,
        purge_on_stop: bool = False,
        node: bool = False,
    ) -> None:
        self.cache_dir: Path = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.directory: Path = (
            Path(directory) if directory is not None else self.cache_dir / "cluster"
        ).resolve()
        self.build_timeout = build_timeout
        self.start_timeout = start_timeout
        self.purge_on_stop = purge_on_stop
        #: Also run a real node (kubelet, containerd, kube-proxy, CoreDNS: hack/node/up.sh).
        self.node = node
        self._bin_dir: Path | None = None
        self._running = False
        self._reaper: subprocess.Popen[bytes] | None = None

    # -- paths -------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        """Admin kubeconfig (client certificate in group ``system:masters``)."""
        return self.directory / "kubeconfig"

    @property
    def bin_dir(self) -> Path:
        """Directory holding the cached ``kubectl``, ``kube-apiserver``, ... binaries."""
        if self._bin_dir is None:
            raise ControlPlaneError("binaries not built yet; call start() first")
        return self._bin_dir

    @property
    def kubectl_path(self) -> Path:
        """The ``kubectl`` binary matching the API server version."""
        return self.bin_dir / "kubectl"

    @property
    def logs_dir(self) -> Path:
        """Component logs (``etcd.log``, ``kube-apiserver.log``, ...)."""
        return self.directory / "logs"

    @property
    def env(self) -> dict[str, str]:
        """``os.environ`` plus ``KUBECONFIG`` and ``PATH`` pointing at this cluster."""
        env = self._script_env()
        env["KUBECONFIG"] = str(self.kubeconfig)
        env["PATH"] = f"{self.bin_dir}{os.pathsep}{env.get('PATH', '')}"
        return env

    @property
    def server(self) -> str:
        """The API server URL, e.g. ``https://127.0.0.1:34567``."""
        values = self._cluster_env()
        return f"https://127.0.0.1:{values['API_PORT']}"

    def _cluster_env(self) -> dict[str, str]:
        path = self.directory / "cluster.env"
        values: dict[str, str] = {}
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip()
        return values

    def _script_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["FERRY_CACHE"] = str(self.cache_dir)
        return env

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> Self:
        """Build the binaries if needed, then start the control plane and wait for it."""
        env = self._script_env()
        self._bin_dir = build_binaries(env=env, timeout=self.build_timeout)
        env["FERRY_K8S_BIN"] = str(self._bin_dir)
        self.directory.mkdir(parents=True, exist_ok=True)

        def attempt() -> None:
            self._running = True  # up.sh may have started some processes even if it fails
            try:
                args = [str(self.directory), *(["--node"] if self.node else [])]
                _run_script("up.sh", args, env=env, timeout=self.start_timeout)
            except BaseException:
                self.stop()
                raise

        # up.sh picks free ports (and waits for the servers itself), and another process
        # may take one before the server binds it: start again on fresh ports when that
        # is why it failed.
        retry_on_port_clash(attempt, clashed=_port_taken)
        self._reaper = _start_reaper(self.directory, env)
        return self

    def stop(self) -> None:
        """Stop all processes started for this directory (idempotent)."""
        if not self._running:
            return
        if self._reaper is not None:  # the test process stops the cluster itself
            self._reaper.send_signal(signal.SIGKILL)
            self._reaper.wait()
            self._reaper = None
        args = [str(self.directory)]
        if self.purge_on_stop:
            args.append("--purge")
        _run_script("down.sh", args, env=self._script_env(), timeout=60)
        self._running = False

    def down_again(self) -> None:
        """``down.sh`` once more after :meth:`stop`: it must be a no-op (the node tier checks
        that the host is unchanged afterwards)."""
        _run_script("down.sh", [str(self.directory)], env=self._script_env(), timeout=60)

    # -- helpers -----------------------------------------------------------
    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``kubectl --kubeconfig <admin> ARGS`` and return the completed process.

        With ``check=True`` a non-zero exit raises :class:`ControlPlaneError`
        carrying kubectl's stderr.
        """
        cmd = [str(self.kubectl_path), "--kubeconfig", str(self.kubeconfig), *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and proc.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
            )
        return proc

    def write_token_kubeconfig(
        self,
        path: Path | str,
        namespace: str,
        service_account: str,
        duration: str = "2h",
    ) -> Path:
        """Write a kubeconfig authenticating as ``namespace/service_account``.

        The token comes from the TokenRequest API (``kubectl create token``), so
        the identity is subject to RBAC like an in-cluster operator would be.
        """
        token = self.kubectl(
            "-n", namespace, "create", "token", service_account, f"--duration={duration}"
        ).stdout.strip()
        ca = self.directory / "pki" / "ca.crt"
        user = f"system:serviceaccount:{namespace}:{service_account}"
        target = Path(path)
        target.write_text(
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            "- name: ferry-local\n"
            "  cluster:\n"
            f"    server: {self.server}\n"
            f"    certificate-authority: {ca}\n"
            "users:\n"
            f"- name: {user}\n"
            "  user:\n"
            f"    token: {token}\n"
            "contexts:\n"
            "- name: ferry-local\n"
            "  context:\n"
            "    cluster: ferry-local\n"
            f"    user: {user}\n"
            f"    namespace: {namespace}\n"
            "current-context: ferry-local\n"
        )
        target.chmod(0o600)
        return target

    def value(self, key: str) -> str:
        """One value of the cluster's ``cluster.env`` (ports, node addresses)."""
        return self._cluster_env()[key]

    def import_image(self, archive: Path) -> None:
        """Import an OCI archive into the node's containerd (for ``imagePullPolicy: Never``)."""
        if not self.node:
            raise ControlPlaneError("import_image needs a control plane started with node=True")
        node_up = REPO_ROOT / "hack" / "node" / "up.sh"
        proc = subprocess.run(
            [str(node_up), "import", str(self.directory), str(archive)],
            env=self._script_env(),
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if proc.returncode != 0:
            raise ControlPlaneError(f"importing {archive} failed:\n{proc.stderr}")

    def is_ready(self) -> bool:
        """True when the API server answers ``/readyz`` with ``ok``."""
        proc = self.kubectl("get", "--raw", "/readyz", check=False, timeout=10)
        return proc.returncode == 0 and proc.stdout.strip() == "ok"
