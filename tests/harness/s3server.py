"""A throwaway, real S3-compatible object server for Ferry's backup-store tests.

Why this exists: Ferry writes backups to S3-compatible object stores. Mock
libraries (moto, in-process fakes) reimplement S3 from the same mental model
as the code under test, so they tend to agree with its mistakes -- about
request signing, multipart uploads, listing, error codes, checksums. These
tests therefore talk over HTTP to a *real* server: SeaweedFS (Apache-2.0),
whose single Go binary ``weed`` runs master, volume server, filer and S3
gateway in one process. The binary is built once from the Go module proxy by
``hack/s3/build.sh`` (pinned in ``hack/s3/versions.env``) into
``${FERRY_CACHE:-~/.cache/ferry}/bin/`` -- never into the repository. See
``docs/s3-test-server.md``.

:func:`start_s3` starts a private server bound to ``127.0.0.1`` on free ports
with all data under a given directory, static credentials from an S3
identity file (``-s3.config``), and waits until it answers signed S3
requests and has a volume server to store data on. :class:`RunningS3` gives
the endpoint and credentials, including as the standard ``AWS_*``
environment variables (:meth:`RunningS3.env`).

Process lifetime is :mod:`tests.harness.process`'s, as for the database
servers: the server runs in its own session under ``setpriv --pdeathsig`` (so
the kernel kills it if the test process dies, even by ``kill -9``), an
:mod:`atexit` handler stops what is still running, and base
directories made by :func:`~tests.harness.dbservers.make_base_dir` are
removed by :func:`~tests.harness.dbservers.cleanup_stale_base_dirs` once their
owner is gone.

This module is also a pytest plugin (register ``tests.harness.s3server`` in
``pytest_plugins`` or pass ``-p tests.harness.s3server``):

``s3_server`` (session)
    A :class:`RunningS3`, started on first use (building the binary first if
    needed) and stopped at session end. If it cannot be provided (no binary
    and no Go toolchain, or ``FERRY_S3_AUTOBUILD=0``), requesting tests are
    skipped -- which the strict mode of :mod:`tests.harness.pytest_plugin`
    turns into failures in CI.
``s3_bucket`` (function)
    Name of a fresh, empty bucket on ``s3_server``.

Environment knobs: ``FERRY_TEST_S3_WEED`` (use this ``weed`` binary instead
of the cached build), ``FERRY_S3_AUTOBUILD=0`` (never run the build script;
fail with a hint instead), ``FERRY_CACHE`` (the build cache, read by the
build script).

Only the standard library, boto3/botocore and pytest are used.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from . import dbservers, process
from .dbservers import ServerUnavailableError
from .process import NotReady, ServerStartError

__all__ = [
    "AUTOBUILD_ENV",
    "BUILD_SCRIPT",
    "DEFAULT_REGION",
    "WEED_BINARY_ENV",
    "RunningS3",
    "ServerStartError",
    "ServerUnavailableError",
    "cleanup_stale_sockets",
    "ensure_weed_binary",
    "read_versions",
    "s3_bucket",
    "s3_server",
    "start_s3",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Builds (once) and prints the path of the pinned ``weed`` binary.
BUILD_SCRIPT = REPO_ROOT / "hack" / "s3" / "build.sh"
VERSIONS_FILE = REPO_ROOT / "hack" / "s3" / "versions.env"
BUILD_SCRIPT_REL = "hack/s3/build.sh"

#: Path of a ``weed`` binary to use instead of the cached build.
WEED_BINARY_ENV = "FERRY_TEST_S3_WEED"
#: Set to ``0`` to never run the build script from the tests.
AUTOBUILD_ENV = "FERRY_S3_AUTOBUILD"

DEFAULT_REGION = "us-east-1"
START_TIMEOUT_S = 90.0
#: Grace period for a clean shutdown before SIGKILL. weed's own shutdown can
#: take ~15 s (the filer retries flushing its metadata log after the volume
#: server has already stopped); the data is throwaway, so don't wait for it.
STOP_TIMEOUT_S = 3.0
BUILD_TIMEOUT_S = 3600.0
HOST = "127.0.0.1"
#: Unix socket paths are limited to 107 bytes on Linux.
_MAX_SOCKET_PATH = 100
_PORTS_FILE = "ports.json"

_PORT_NAMES = (
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
    "s3",
    "s3_grpc",
)

Progress = Callable[[str], None]


# --------------------------------------------------------------------------
# RunningS3
# --------------------------------------------------------------------------


@dataclass(eq=False)
class RunningS3:
    """A running S3 server and the credentials to use it.

    Buckets are addressed path-style (``http://127.0.0.1:PORT/bucket/key``),
    which boto3 picks by itself for an IP-address endpoint.
    """

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str
    #: ``weed version`` output, e.g. ``version 30GB 4.xx ... linux amd64``.
    version: str
    base_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None
    #: Every port the server listens on (see ``_PORT_NAMES``).
    ports: dict[str, int] = field(default_factory=dict)
    #: Seconds from spawning the process until it served S3 requests.
    startup_seconds: float = 0.0

    def env(self) -> dict[str, str]:
        """The standard AWS SDK/CLI environment variables for this server.

        boto3 (>= 1.28.57), the AWS CLI and other AWS SDKs honour
        ``AWS_ENDPOINT_URL``. Merge into ``os.environ`` (or a subprocess's
        ``env``); values already set in the environment for other ``AWS_*``
        settings (profiles, config files) still apply, so isolate those if a
        test must not see them.
        """
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self, **config: Any) -> Any:
        """A boto3 S3 client for this server (explicit arguments, not env).

        Keyword arguments go to :class:`botocore.config.Config`.
        """
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(**config),
        )

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` and return the name."""
        kwargs: dict[str, Any] = {"Bucket": name}
        if self.region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        self.client().create_bucket(**kwargs)
        return name

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Stop the server (idempotent). The data under ``base_dir`` is kept."""
        proc = self.process
        if proc is not None and proc.poll() is None:
            process.terminate(proc, signal.SIGTERM, timeout)
        _remove_grpc_sockets(self.ports)
        process.forget(self)


# --------------------------------------------------------------------------
# the binary
# --------------------------------------------------------------------------


def read_versions(path: Path = VERSIONS_FILE) -> dict[str, str]:
    """The ``KEY=value`` pins of ``hack/s3/versions.env``."""
    pins: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        pins[key.strip()] = value.strip()
    return pins


def _autobuild_enabled() -> bool:
    return os.environ.get(AUTOBUILD_ENV, "1").strip().lower() not in {"0", "false", "no"}


def _cached_binary_path() -> Path:
    try:
        result = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "--print-path"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        raise ServerUnavailableError(f"`{BUILD_SCRIPT_REL} --print-path` failed: {detail}") from exc
    return Path(result.stdout.strip().splitlines()[-1])


def ensure_weed_binary(*, progress: Progress | None = None, log_path: Path | None = None) -> Path:
    """Path of the pinned ``weed`` binary, building it if needed.

    ``$FERRY_TEST_S3_WEED`` takes precedence. Otherwise the cached build is
    used; if missing, ``hack/s3/build.sh`` runs (minutes on first use; its
    progress goes to ``log_path`` if given) unless ``FERRY_S3_AUTOBUILD=0``.
    Raises :class:`ServerUnavailableError` naming the script if no binary can
    be had.
    """
    override = os.environ.get(WEED_BINARY_ENV, "").strip()
    if override:
        path = Path(override)
        if not os.access(path, os.X_OK):
            raise ServerUnavailableError(f"${WEED_BINARY_ENV}={override} is not an executable")
        return path

    path = _cached_binary_path()
    if os.access(path, os.X_OK):
        return path
    if not _autobuild_enabled():
        raise ServerUnavailableError(
            f"SeaweedFS binary {path} not built and ${AUTOBUILD_ENV}=0; run `{BUILD_SCRIPT_REL}`"
        )
    if shutil.which("go") is None:
        raise ServerUnavailableError(
            f"SeaweedFS binary {path} not built and no `go` in PATH to build it; install Go "
            f"(see {VERSIONS_FILE.name}) and run `{BUILD_SCRIPT_REL}`"
        )
    if progress is not None:
        where = f"; log: {log_path}" if log_path is not None else ""
        progress(
            f"building the S3 test server with {BUILD_SCRIPT_REL} (first use only, "
            f"takes several minutes){where}"
        )
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        err: Any = (
            stack.enter_context(log_path.open("ab")) if log_path is not None else subprocess.PIPE
        )
        try:
            result = subprocess.run(
                ["bash", str(BUILD_SCRIPT)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=err,
                check=False,
                timeout=BUILD_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerUnavailableError(
                f"`{BUILD_SCRIPT_REL}` did not finish in {BUILD_TIMEOUT_S:.0f}s"
            ) from exc
    if result.returncode != 0:
        detail = (
            process.tail(log_path)
            if log_path is not None
            else (result.stderr or b"").decode(errors="replace")[-4000:]
        )
        raise ServerUnavailableError(
            f"`{BUILD_SCRIPT_REL}` failed with exit code {result.returncode}; run it by hand "
            f"to see why:\n{detail}"
        )
    if progress is not None:
        progress(f"built {path} in {time.monotonic() - started:.0f}s")
    if not os.access(path, os.X_OK):
        raise ServerUnavailableError(f"`{BUILD_SCRIPT_REL}` succeeded but {path} is missing")
    return path


def _weed_version(binary: Path) -> str:
    try:
        out = subprocess.run(
            [str(binary), "version"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise ServerUnavailableError(
            f"{binary} does not run ({exc}); rebuild with `{BUILD_SCRIPT_REL} --force`"
        ) from exc
    return out.strip().splitlines()[0] if out.strip() else "unknown"


# --------------------------------------------------------------------------
# starting
# --------------------------------------------------------------------------


def _free_ports(count: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < count:
        port = process.free_port()
        # gRPC ports default to port+10000 inside weed; we pass them all
        # explicitly, but keep them distinct.
        if port not in ports:
            ports.append(port)
    return ports


def _remove_grpc_sockets(ports: dict[str, int]) -> None:
    # weed hard-codes /tmp/seaweedfs-<service>-grpc-<port>.sock for in-process
    # gRPC; it removes them on a clean exit, we make sure after a kill.
    for service in ("master", "volume", "filer", "s3"):
        port = ports.get(f"{service}_grpc")
        if port is not None:
            with contextlib.suppress(OSError):
                Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock").unlink()


def cleanup_stale_sockets(parent: Path | None = None) -> None:
    """Remove the /tmp gRPC sockets of servers whose test session was killed.

    Call before :func:`~tests.harness.dbservers.cleanup_stale_base_dirs`,
    which deletes the ``ports.json`` this relies on.
    """
    root = parent if parent is not None else Path(tempfile.gettempdir())
    for ports_file in root.glob(f"{dbservers.BASE_DIR_PREFIX}s3-*/{_PORTS_FILE}"):
        try:
            pid = int((ports_file.parent / "owner.pid").read_text().strip())
            ports = json.loads(ports_file.read_text())
        except (OSError, ValueError):
            continue
        if pid != os.getpid() and not dbservers._pid_alive(pid):
            _remove_grpc_sockets({str(k): int(v) for k, v in ports.items()})


def _write_identities(path: Path, access_key: str, secret_key: str) -> None:
    """SeaweedFS S3 identity file (``-s3.config``): one admin identity.

    No ``anonymous`` identity is defined, so unsigned requests are denied.
    """
    config = {
        "identities": [
            {
                "name": "ferry-test",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)


_MASTER_TOML = """\
# Written by tests/harness/s3server.py. weed reads it via -config_dir.
[master.volume_growth]
# Grow one volume at a time (default 7 per new collection, i.e. per bucket),
# so that many test buckets fit into the volume slots.
copy_1 = 1
copy_2 = 2
copy_3 = 3
copy_other = 1
# A fresh single-node cluster has no veteran volume servers whose volume ids
# could collide, so skip the post-election hold on volume id allocation
# (~5 s before the first write could be stored).
allocation_deferral = "0s"
"""


def _command(binary: Path, base_dir: Path, ports: dict[str, int], s3_config: Path) -> list[str]:
    data = base_dir / "data"
    cmd = [
        str(binary),
        "-logtostderr",
        f"-config_dir={base_dir}",
        "server",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-dir={data}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=128",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        "-volume.max=0",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={s3_config}",
    ]
    # Keep the unix sockets weed opens next to its data when the path is short
    # enough; otherwise weed's default (/tmp/seaweedfs-<svc>-<port>.sock).
    for service in ("filer", "s3"):
        sock = base_dir / f"{service}.sock"
        if len(str(sock)) <= _MAX_SOCKET_PATH:
            cmd.append(f"-{service}.localSocket={sock}")
    return cmd


def _master_has_volume_slots(master_port: int) -> bool:
    url = f"http://{HOST}:{master_port}/dir/status"
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            status = json.load(resp)
    except (OSError, ValueError, urllib.error.URLError):
        return False
    topology = status.get("Topology") or {}
    return bool(topology.get("Max", 0)) and bool(topology.get("DataCenters"))


def _probe_write(client: Any) -> None:
    """Create a bucket, write, read and delete an object, drop the bucket.

    Right after start-up SeaweedFS answers reads but holds writes back until
    the filers' distributed lock ring is populated (a few seconds); the
    server only counts as ready once a write goes through.
    """
    bucket = f"ferry-harness-probe-{secrets.token_hex(4)}"
    client.create_bucket(Bucket=bucket)
    try:
        client.put_object(Bucket=bucket, Key="probe", Body=b"ferry")
        if client.get_object(Bucket=bucket, Key="probe")["Body"].read() != b"ferry":
            raise ServerStartError("S3 probe object read back wrong")
        client.delete_object(Bucket=bucket, Key="probe")
    finally:
        with contextlib.suppress(BotoCoreError, ClientError):
            client.delete_object(Bucket=bucket, Key="probe")
        client.delete_bucket(Bucket=bucket)


def _wait_ready(server: RunningS3, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Poll until signed S3 requests work, including a write (see _probe_write)."""
    client = server.client(
        connect_timeout=1, read_timeout=30, retries={"max_attempts": 1, "mode": "standard"}
    )

    def probe() -> bool:
        client.list_buckets()
        if not _master_has_volume_slots(server.ports["master"]):
            raise NotReady("master has no volume server with free slots yet")
        _probe_write(client)
        return True

    process.wait_until_ready(
        proc,
        probe,
        what="weed S3 gateway",
        log_path=server.log_path,
        timeout=timeout,
        interval=0.1,
        errors=(BotoCoreError, ClientError),
    )


def start_s3(
    base_dir: Path,
    *,
    region: str = DEFAULT_REGION,
    access_key: str | None = None,
    secret_key: str | None = None,
    timeout: float = START_TIMEOUT_S,
    progress: Progress | None = None,
) -> RunningS3:
    """Start a SeaweedFS S3 server with its data under ``base_dir``.

    Listens on ``127.0.0.1`` only, on free ports. Credentials are random
    unless given. Builds the binary first if needed (see
    :func:`ensure_weed_binary`). Raises :class:`ServerUnavailableError` if
    there is no binary, :class:`ServerStartError` if it does not come up.
    Stop it with :meth:`RunningS3.stop`; ``base_dir`` is left to the caller.
    """
    base_dir = base_dir.resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    binary = ensure_weed_binary(progress=progress, log_path=base_dir / "build.log")
    version = _weed_version(binary)

    access_key = access_key or "FERRY" + secrets.token_hex(8).upper()
    secret_key = secret_key or secrets.token_urlsafe(30)
    s3_config = base_dir / "s3-identities.json"
    _write_identities(s3_config, access_key, secret_key)
    (base_dir / "master.toml").write_text(_MASTER_TOML)
    (base_dir / "data").mkdir(exist_ok=True)
    log_path = base_dir / "weed.log"

    def attempt() -> RunningS3:
        ports = dict(zip(_PORT_NAMES, _free_ports(len(_PORT_NAMES)), strict=True))
        (base_dir / _PORTS_FILE).write_text(json.dumps(ports) + "\n")
        cmd = _command(binary, base_dir, ports, s3_config)
        with log_path.open("ab") as log:
            log.write(f"\n$ {' '.join(cmd)}\n".encode())
        started = time.monotonic()
        # Same spawning as the database servers: own session, setpriv
        # --pdeathsig=KILL so weed dies with the thread that started it.
        proc = process.spawn(cmd, log_path=log_path, cwd=base_dir, pdeathsig=signal.SIGKILL)
        server = RunningS3(
            endpoint_url=f"http://{HOST}:{ports['s3']}",
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            version=version,
            base_dir=base_dir,
            log_path=log_path,
            process=proc,
            ports=ports,
        )
        process.stop_at_exit(server, server.stop)
        try:
            _wait_ready(server, proc, timeout)
        except BaseException:
            server.stop()
            raise
        server.startup_seconds = time.monotonic() - started
        return server

    # Another process may take one of the free ports before weed binds it.
    return process.retry_on_port_clash(attempt, clashed=process.port_clash_in(log_path))


# --------------------------------------------------------------------------
# pytest fixtures
# --------------------------------------------------------------------------


def _progress_for(config: pytest.Config) -> Progress:
    reporter = config.pluginmanager.get_plugin("terminalreporter")

    def emit(message: str) -> None:
        line = f"[s3server] {message}"
        if reporter is not None:
            reporter.write_line(line)
        else:  # pragma: no cover - e.g. with -p no:terminal
            print(line)

    return emit


@pytest.fixture(scope="session")
def s3_server(request: pytest.FixtureRequest) -> Iterator[RunningS3]:
    """A real S3 server (SeaweedFS) for the whole session (see module doc)."""
    cleanup_stale_sockets()
    dbservers.cleanup_stale_base_dirs()
    base = dbservers.make_base_dir("s3")
    try:
        try:
            server = start_s3(base, progress=_progress_for(request.config))
        except ServerUnavailableError as exc:
            pytest.skip(f"S3 test server not available: {exc}")
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


_bucket_counter = itertools.count(1)


@pytest.fixture
def s3_bucket(s3_server: RunningS3) -> str:
    """Name of a fresh, empty bucket (left in place; the server is per session)."""
    name = f"ferry-test-{next(_bucket_counter)}-{secrets.token_hex(4)}"
    return s3_server.create_bucket(name)


@pytest.fixture
def aws_env(s3_server: RunningS3, monkeypatch: pytest.MonkeyPatch) -> None:
    """The AWS_* variables (what the ``ferry`` command reads) name this server, and
    nothing of the machine's: no profile, session token, config or credentials file."""
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
