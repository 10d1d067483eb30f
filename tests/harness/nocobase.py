"""Real NocoBase applications for the ``tests/nocobase`` tier.

Why this exists: Ferry's promotion engine is built around what NocoBase keeps in its
database; fixtures shaped like NocoBase prove the engine, only NocoBase itself proves
the shape. This module installs the pinned release (``hack/nocobase/install.sh``,
cached in ``~/.cache/ferry``), lets NocoBase install application databases on the
session's PostgreSQL server (``hack/nocobase/run.sh --install-only``), copies them
with ``CREATE DATABASE … TEMPLATE …`` (seconds instead of a ``nocobase install``),
starts and stops NocoBase on a free ``127.0.0.1`` port against any database, signs
in and talks to the HTTP API with the standard library only.

Lifetime: every NocoBase process runs in its own session under a small bash guard
started through ``setpriv --pdeathsig=TERM`` (:func:`tests.harness.process.spawn`);
when the test process dies (even by ``kill -9``) the kernel signals the guard, which
kills the whole process group. :meth:`NocoBaseApp.stop` (fixture teardown) and the
harness's :mod:`atexit` handler cover the normal paths.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from . import process
from .dbservers import RunningServer

__all__ = [
    "INSTALL_SCRIPT",
    "ApiError",
    "NocoBaseApp",
    "NocoBaseUnavailable",
    "PodDatabase",
    "ServedNocoBase",
    "clone_database",
    "ensure_installed",
    "install_database",
    "kubernetes_manifests",
    "log_problems",
]

REPO = Path(__file__).resolve().parents[2]
HACK = REPO / "hack" / "nocobase"
INSTALL_SCRIPT = "hack/nocobase/install.sh"
VERSION = (HACK / "VERSION").read_text().strip()
ROOT_ACCOUNT = "admin@nocobase.com"
ROOT_PASSWORD = "admin123"  # run.sh's INIT_ROOT_PASSWORD default
READY_TIMEOUT_S = 240.0
INSTALL_TIMEOUT_S = 600.0

# Kills the guard's whole process group when the guard is told to stop (SIGTERM from
# us, or from the kernel through PR_SET_PDEATHSIG when the test process dies).
_GUARD = r"""
stop() { trap '' TERM INT; kill -TERM 0 2>/dev/null
  for _ in $(seq 1 100); do kill -0 "$child" 2>/dev/null || break; sleep 0.1; done
  sleep 0.3; kill -KILL 0; }
trap stop TERM INT
"$@" &
child=$!
wait "$child"
code=$?
trap '' TERM; kill -TERM 0 2>/dev/null
exit $code
"""


class NocoBaseUnavailable(RuntimeError):
    """NocoBase is not installed and installing it failed."""


class ApiError(AssertionError):
    """A NocoBase API call answered with an unexpected status."""

    def __init__(self, method: str, path: str, status: int, body: str) -> None:
        super().__init__(f"{method} /api/{path} -> {status}: {body[:2000]}")
        self.status = status
        self.body = body


# --------------------------------------------------------------------------
# install
# --------------------------------------------------------------------------


def ensure_installed(*, auto_install: bool = True) -> Path:
    """The app directory of the pinned NocoBase; install it (cached) if needed."""
    check = subprocess.run(
        ["bash", str(HACK / "install.sh"), "--check"], capture_output=True, text=True, check=False
    )
    if check.returncode == 0:
        return Path(check.stdout.strip().splitlines()[-1])
    if not auto_install:
        raise NocoBaseUnavailable(
            f"NocoBase {VERSION} is not installed: run `bash {INSTALL_SCRIPT}`"
        )
    done = subprocess.run(
        ["bash", str(HACK / "install.sh")],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-20:])
        raise NocoBaseUnavailable(
            f"NocoBase {VERSION} is not installed and `bash {INSTALL_SCRIPT}` failed "
            f"(exit {done.returncode}); run it by hand to see why:\n{tail}"
        )
    return Path(done.stdout.strip().splitlines()[-1])


#: NocoBase's dialect (``DB_DIALECT``) for each of the harness's servers.
NODE_DIALECT = {"postgresql": "postgres", "mysql": "mariadb", "sqlite": "sqlite"}
#: NocoBase's ``sqlite`` dialect needs the ``sqlite3`` driver, which the release does not
#: ship; its prebuilt binary comes from GitHub (unreachable here), so it is built from
#: the npm registry's sources once (python3, make, g++; minutes) and put on NODE_PATH.
SQLITE3_VERSION = "6.0.1"
SQLITE3_DIR = Path.home() / ".cache" / "ferry" / "nocobase-sqlite3" / SQLITE3_VERSION


@dataclass
class SqliteFiles:
    """SQLite databases as files of one directory: what the tier uses of
    :class:`RunningServer` (a dialect, URLs, creating and dropping databases)."""

    directory: Path
    dialect: str = "sqlite"
    created_databases: set[str] = field(default_factory=set)

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.sqlite"

    def url(self, name: str) -> str:
        return f"sqlite:///{self.path(name)}"

    def create_database(self, name: str) -> str:
        """An empty database (an empty file is one) and its URL: Ferry never creates
        a SQLite file, as a server's ``CREATE DATABASE`` is never Ferry's either."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path(name).touch(exist_ok=True)
        self.created_databases.add(name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{self.path(name)}{suffix}").unlink(missing_ok=True)
        self.created_databases.discard(name)


def ensure_sqlite3() -> Path:
    """The ``node_modules`` holding a built ``sqlite3`` driver (built once, cached)."""
    modules = SQLITE3_DIR / "node_modules"
    if (modules / "sqlite3" / "build" / "Release" / "node_sqlite3.node").is_file():
        return modules
    SQLITE3_DIR.mkdir(parents=True, exist_ok=True)
    (SQLITE3_DIR / "package.json").write_text('{"name": "ferry-sqlite3", "private": true}\n')
    done = subprocess.run(
        ["npm", "install", f"sqlite3@{SQLITE3_VERSION}", "--build-from-source",
         "--nodedir=/usr", "--no-audit", "--no-fund"],
        cwd=SQLITE3_DIR, capture_output=True, text=True, check=False, timeout=1800,
    )  # fmt: skip
    if done.returncode != 0:
        raise NocoBaseUnavailable(
            f"building sqlite3@{SQLITE3_VERSION} from source failed (exit "
            f"{done.returncode}):\n{done.stderr[-2000:]}"
        )
    return modules


def node_url(server: RunningServer | SqliteFiles, database: str) -> str:
    """``postgres://`` or ``mariadb://`` URL in the form run.sh accepts (NocoBase's
    ``pg`` and ``mariadb`` drivers, both in the installed release)."""
    if isinstance(server, SqliteFiles):
        return f"sqlite://{server.path(database)}"
    user = urllib.parse.quote(server.user, safe="")
    password = urllib.parse.quote(server.password, safe="")
    scheme = NODE_DIALECT[server.dialect]
    return f"{scheme}://{user}:{password}@{server.host}:{server.port}/{database}"


def install_database(
    server: RunningServer | SqliteFiles,
    database: str,
    storage: Path,
    *,
    app_key: str,
    log: Path,
    env: dict[str, str] | None = None,
) -> str:
    """Create ``database`` and let NocoBase install itself into it (no start).
    ``env``: NocoBase settings for this install only (``DB_UNDERSCORED`` …).

    Returns the SQLAlchemy URL.
    """
    url = server.create_database(database)
    storage.mkdir(parents=True, exist_ok=True)
    cmd = [
        "bash",
        str(HACK / "run.sh"),
        "--db-url",
        node_url(server, database),
        "--storage",
        str(storage),
        "--app-key",
        app_key,
        "--install-only",
        "--log",
        str(log),
    ]
    done = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        check=False,
        timeout=INSTALL_TIMEOUT_S,
        env={**_env(), **(env or {})},
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"nocobase install into {database} failed (exit {done.returncode}):\n"
            f"{done.stderr[-3000:]}"
        )
    return url


def clone_database(server: RunningServer | SqliteFiles, template: str, name: str) -> str:
    """A copy of ``template`` (nothing may be connected to it, nor write to it).

    PostgreSQL: ``CREATE DATABASE name TEMPLATE template``. MariaDB has no templates:
    each base table is copied with ``CREATE TABLE … LIKE`` (columns, keys, indexes)
    and ``INSERT … SELECT`` (rows; ``AUTO_INCREMENT`` moves past them).
    """
    if isinstance(server, SqliteFiles):
        shutil.copyfile(server.path(template), server.path(name))
        return server.create_database(name)
    if server.dialect == "postgresql":
        with server.admin_engine().connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
        server.created_databases.add(name)
        return server.url(name)
    url = server.create_database(name)
    with server.admin_engine().begin() as conn:
        tables = conn.execute(
            sa.text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = :db AND table_type = 'BASE TABLE'"
            ),
            {"db": template},
        ).scalars()
        conn.execute(sa.text("SET SESSION foreign_key_checks = 0"))
        for table in list(tables):
            src, dst = f"`{template}`.`{table}`", f"`{name}`.`{table}`"
            conn.execute(sa.text(f"CREATE TABLE {dst} LIKE {src}"))
            conn.execute(sa.text(f"INSERT INTO {dst} SELECT * FROM {src}"))
    return url


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # the DB_* of the caller's environment must not leak into run.sh's --db-url parsing
    for key in list(env):
        if key.startswith(("DB_", "APP_", "INIT_ROOT_")) or key in ("STORAGE_PATH",):
            del env[key]
    env["FERRY_NO_AUTO_INSTALL"] = "1"
    if (SQLITE3_DIR / "node_modules" / "sqlite3").is_dir():
        env["NODE_PATH"] = str(SQLITE3_DIR / "node_modules")
    return env


# --------------------------------------------------------------------------
# running applications
# --------------------------------------------------------------------------


@dataclass(eq=False)
class NocoBaseApp:
    """One NocoBase application: a database, a storage directory, keys and a port."""

    name: str
    server: RunningServer | SqliteFiles
    database: str
    storage: Path
    app_key: str = "ferry-nocobase-test-key"
    aes_key: str | None = None  # hex; None: NocoBase's own STORAGE/apps/main/aes_key.dat
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    token: str = field(default="", init=False)
    starts: int = field(default=0, init=False)

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the application's database."""
        return self.server.url(self.database)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.storage / f"nocobase-{self.starts}.log"

    def storage_aes_key(self) -> str:
        """The key NocoBase generated in the storage directory, as hex."""
        path = self.storage / "apps" / "main" / "aes_key.dat"
        raw = path.read_bytes()
        text = raw.decode("ascii", errors="ignore").strip()
        if re.fullmatch(r"[0-9a-fA-F]{64}", text):
            return text.lower()
        return raw.hex()

    # -- lifecycle ---------------------------------------------------------

    def start(self, *, wait: bool = True) -> NocoBaseApp:
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError(f"{self.name} is already running")
        self.storage.mkdir(parents=True, exist_ok=True)
        self.port = process.free_port()
        self.starts += 1
        self.token = ""
        cmd = [
            "bash",
            str(HACK / "run.sh"),
            "--db-url",
            node_url(self.server, self.database),
            "--port",
            str(self.port),
            "--storage",
            str(self.storage),
            "--app-key",
            self.app_key,
            "--no-install",
            "--foreground",
        ]
        if self.aes_key:
            cmd += ["--aes-key", self.aes_key]
        self.process = process.spawn(
            ["bash", "-c", _GUARD, "nocobase-guard", *cmd],
            log_path=self.log_path,
            pdeathsig=signal.SIGTERM,
            env=_env(),
        )
        process.stop_at_exit(self, self.stop)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        def answers() -> bool:
            status, _ = self.request("GET", "app:getInfo", auth=False, timeout=5)
            return status == 200

        try:
            process.wait_until_ready(
                self.process,
                answers,
                what=f"NocoBase {self.name}",
                log_path=self.log_path,
                timeout=timeout,
                interval=0.5,
                errors=(OSError, ApiError),
                log_lines=60,
            )
        except process.ServerStartError:
            self.stop()
            raise

    def stop(self) -> None:
        proc = self.process
        if proc is None:
            return
        process.terminate(proc, signal.SIGTERM, 20, group=True)
        self.process = None
        process.forget(self)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    # -- HTTP ----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        timeout: float = 60,
    ) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json", "X-Authenticator": "basic"}
        if auth and self.token:
            headers["Authorization"] = f"Bearer {self.token}"
            headers["X-Role"] = "root"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.base}/api/{path}", data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as err:
            status, raw = err.code, err.read()
        text = raw.decode("utf-8", errors="replace")
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        return status, parsed

    def api(self, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
        """Call the API as root; return ``data`` of the response."""
        status, parsed = self.request(method, path, body)
        if status != expect:
            raise ApiError(method, path, status, json.dumps(parsed)[:3000])
        if isinstance(parsed, dict) and "data" in parsed:
            return parsed["data"]
        return parsed

    def post(self, path: str, body: Any = None) -> Any:
        return self.api("POST", path, body if body is not None else {})

    def get(self, path: str) -> Any:
        return self.api("GET", path)

    def sign_in(self, account: str = ROOT_ACCOUNT, password: str = ROOT_PASSWORD) -> str:
        self.token = ""
        data = self.post("auth:signIn", {"account": account, "password": password})
        self.token = str(data["token"])
        return self.token

    def list_all(self, resource: str, **params: str) -> list[dict[str, Any]]:
        query = urllib.parse.urlencode({"paginate": "false", **params})
        data = self.get(f"{resource}:list?{query}")
        assert isinstance(data, list), data
        return data


# Lines NocoBase writes at level error (JSON or console format), and Node's own
# unhandled errors. "level":"warn" lines are not counted.
_ERROR_LINE = re.compile(
    r'"level":\s*"(error|fatal)"|^\s*\[?error\]?[: ]|Unhandled|uncaught|'
    r"bad decrypt|TypeError|ReferenceError|Sequelize\w*Error",
    re.IGNORECASE,
)


# Until the app is up, every request is answered with a "maintaining" error
# (APP_NOT_FOUND, then 503 APP_COMMANDING while plugins load) that NocoBase logs at
# level error: those are the harness's own readiness probes, not application problems.
# A probe that lands while "main" is still being registered makes the app supervisor
# look "main" up as a sub-application (AppSupervisor.initApp) and log "App model main
# not found" (seen once in ~10 full runs, on a start right after a promotion). An app
# that really lacked "main" would never answer the probe with 200, so start() fails
# first.
PROBE_NOISE = (r'"maintaining":\s*true', r'"message":"App model main not found"')


def log_problems(text: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """Error lines of a NocoBase log, minus readiness-probe noise and ``allowed`` patterns."""
    out = []
    ignored = PROBE_NOISE + allowed
    for line in text.splitlines():
        if _ERROR_LINE.search(line) and not any(re.search(p, line) for p in ignored):
            out.append(line[:400])
    return out


# --------------------------------------------------------------------------
# NocoBase as a Kubernetes Deployment (the real-node tier, ``make demo``)
# --------------------------------------------------------------------------

POD_PORT = 13000
POD_INSTALL = "/opt/nocobase"  # the cached install (``install.sh``), mounted read-only
POD_NODE = "/usr/local/bin/node"  # the host's Node.js binary, mounted read-only
HEALTH_PATH = "/api/__health_check"

# The install stays read-only and shared: NocoBase's CLI writes ``tsconfig.paths.json``
# into its working directory at every start, so the working directory is an emptyDir of
# symlinks to the install's entries (Node resolves modules through the symlinks to the
# install). ``NOCOBASE_EXTRACT_CLIENT_ASSETS`` stops the CLI rewriting the client's
# ``index.html`` inside the install (the tier uses the HTTP API only).
POD_ENTRYPOINT = f"""set -eu
mkdir -p /work/app && cd /work/app
for entry in {POD_INSTALL}/app/* {POD_INSTALL}/app/.[!.]*; do ln -sfn "$entry" .; done
rm -f tsconfig.paths.json
exec node node_modules/.bin/nocobase-v1 start --launch-mode node
"""


@dataclass(frozen=True)
class PodDatabase:
    """NocoBase's database as its pods reach it (a Service name, never an IP)."""

    host: str
    port: int
    database: str
    user: str
    password: str


def _pod_env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def _secret_env(name: str, secret: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": name}}}


def _container(image: str, db: PodDatabase, secret: str) -> dict[str, Any]:
    plain = {
        "DB_DIALECT": "postgres", "DB_HOST": db.host, "DB_PORT": str(db.port),
        "DB_DATABASE": db.database, "DB_USER": db.user, "DB_LOGGING": "off",
        "APP_ENV": "production", "APP_PORT": str(POD_PORT), "STORAGE_PATH": "/storage",
        "APP_LAUNCH_MODE": "node", "NOCOBASE_EXTRACT_CLIENT_ASSETS": "true",
        "DISABLE_PKG_DOWNLOAD": "true", "TELEMETRY_ENABLED": "off", "HOME": "/work",
        "LOGGER_LEVEL": "info", "INIT_LANG": "en-US",
    }  # fmt: skip
    return {
        "name": "nocobase",
        "image": image,
        "imagePullPolicy": "Never",
        "command": ["bash", "-c", POD_ENTRYPOINT],
        "env": [
            *(_pod_env(k, v) for k, v in plain.items()),
            *(_secret_env(k, secret) for k in ("DB_PASSWORD", "APP_KEY", "APP_AES_SECRET_KEY")),
        ],
        "ports": [{"name": "http", "containerPort": POD_PORT}],
        "readinessProbe": {
            "httpGet": {"path": HEALTH_PATH, "port": POD_PORT},
            "periodSeconds": 2,
            "timeoutSeconds": 5,
        },
        "volumeMounts": [
            {"name": "install", "mountPath": POD_INSTALL, "readOnly": True},
            {"name": "node", "mountPath": POD_NODE, "readOnly": True},
            {"name": "work", "mountPath": "/work"},
            {"name": "storage", "mountPath": "/storage"},
        ],
    }


def kubernetes_manifests(
    name: str,
    *,
    image: str,
    install: Path,
    node: Path,
    db: PodDatabase,
    app_key: str,
    aes_key: str,
    replicas: int = 1,
) -> list[dict[str, Any]]:
    """A Secret, a Deployment and a Service that run the cached NocoBase install in the
    base image: ``install`` (the version directory holding ``app/``) and ``node`` (the
    Node.js binary) are hostPath volumes, read-only. The AES key is fixed (a Secret), so
    every pod decrypts what the previous one encrypted. ``Recreate``: two NocoBase
    versions never serve one database at once."""
    secret = f"{name}-secrets"
    labels = {"app": name}
    pod_spec = {
        "terminationGracePeriodSeconds": 5,
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65534, "runAsGroup": 65534},
        "containers": [_container(image, db, secret)],
        "volumes": [
            {"name": "install", "hostPath": {"path": str(install), "type": "Directory"}},
            {"name": "node", "hostPath": {"path": str(node), "type": "File"}},
            {"name": "work", "emptyDir": {}},
            {"name": "storage", "emptyDir": {}},
        ],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret},
            "stringData": {
                "DB_PASSWORD": db.password,
                "APP_KEY": app_key,
                "APP_AES_SECRET_KEY": aes_key,
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "replicas": replicas,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": pod_spec},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name},
            "spec": {"selector": labels, "ports": [{"name": "http", "port": POD_PORT}]},
        },
    ]


@dataclass(eq=False)
class ServedNocoBase(NocoBaseApp):
    """A NocoBase that runs elsewhere (a Deployment), reached at ``address``: the same
    HTTP helpers as :class:`NocoBaseApp`, no process of its own."""

    address: str = ""

    @property
    def base(self) -> str:
        return self.address

    def start(self, *, wait: bool = True) -> NocoBaseApp:
        raise RuntimeError(f"{self.name} runs as a Deployment: scale it instead")

    def health(self, timeout: float = 5) -> int:
        """HTTP status of NocoBase's health endpoint; 0 when nothing answers."""
        try:
            status, _ = self.request("GET", HEALTH_PATH.removeprefix("/api/"), auth=False,
                                     timeout=timeout)  # fmt: skip
        except OSError:
            return 0
        return status
