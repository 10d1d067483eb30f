"""Throwaway PostgreSQL and MariaDB servers for Ferry's test suite.

Why this exists: Ferry's database code must be tested against *real* servers
(PostgreSQL and MariaDB behave differently from SQLite in types, DDL,
transactions and character sets), but the tests must not depend on, or
modify, a database server that happens to run on the developer's machine or
CI runner. This module starts private servers from the distro's binaries
(installed by ``hack/ensure-system-packages.sh``) in a temporary directory,
on ``127.0.0.1`` and a free TCP port, tuned for speed rather than durability
(``fsync=off`` and friends), and hands out SQLAlchemy URLs for fresh
databases on them.

Alternatively, an existing server can be used by setting
``FERRY_TEST_POSTGRES_URL`` / ``FERRY_TEST_MARIADB_URL`` to a URL with a
superuser (e.g. ``postgresql://postgres:pw@db:5432/postgres`` or
``mysql://root:pw@db:3306/``); see :func:`get_postgres` / :func:`get_mariadb`.

Lifetime: :meth:`RunningServer.stop` shuts a server down (the pytest plugin
calls it at session end). Servers are started, awaited and stopped through
:mod:`tests.harness.process` (own session, ``setpriv --pdeathsig``, an
:mod:`atexit` stop); in addition:

* base directories are created by :func:`make_base_dir` with the owner's PID
  recorded, and :func:`cleanup_stale_base_dirs` removes those whose owner is
  gone.

Only the standard library and SQLAlchemy (plus the project's DB drivers
psycopg and PyMySQL, through SQLAlchemy) are used.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

from . import process
from .process import ServerStartError

__all__ = [
    "MARIADB_URL_ENV",
    "POSTGRES_URL_ENV",
    "Dialect",
    "RunningServer",
    "ServerStartError",
    "ServerUnavailableError",
    "cleanup_stale_base_dirs",
    "find_mariadb_bin_dir",
    "find_postgres_bin_dir",
    "get_mariadb",
    "get_postgres",
    "make_base_dir",
    "mariadb_from_url",
    "postgres_from_url",
    "start_mariadb",
    "start_postgres",
]

Dialect = Literal["postgresql", "mysql"]

POSTGRES_URL_ENV = "FERRY_TEST_POSTGRES_URL"
MARIADB_URL_ENV = "FERRY_TEST_MARIADB_URL"
#: OS user that runs initdb/postgres when the tests run as root.
POSTGRES_OS_USER_ENV = "FERRY_TEST_POSTGRES_OS_USER"

SUPERUSER = "ferry"
START_TIMEOUT_S = 60.0
MARIADB_COLLATION = "utf8mb4_unicode_ci"
BASE_DIR_PREFIX = "ferry-testdb-"
_OWNER_FILE = "owner.pid"

_DB_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class ServerUnavailableError(RuntimeError):
    """The server binaries (or the OS user to run them) are not installed.

    Tests should be *skipped* (not failed) for this; run
    ``hack/ensure-system-packages.sh`` to fix it.
    """


# --------------------------------------------------------------------------
# RunningServer
# --------------------------------------------------------------------------


@dataclass(eq=False)
class RunningServer:
    """A database server the tests may create/drop databases on.

    ``process`` is ``None`` for an external server (given by environment
    URL); :meth:`stop` then only drops the databases created through this
    object.
    """

    dialect: Dialect
    host: str
    port: int
    user: str
    password: str
    #: Directory holding the server's command-line tools of the matching
    #: version (PostgreSQL: pg_dump, pg_restore, psql, ...; MariaDB:
    #: mariadb, mariadb-dump, ...). ``None`` if not found locally.
    bin_dir: Path | None
    #: Server version string as reported by the server (``SELECT version()``).
    version: str = ""
    #: Database the admin connection uses (PostgreSQL only).
    admin_database: str | None = None
    base_dir: Path | None = None
    socket_path: Path | None = None
    log_path: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    #: Databases created (and not yet dropped) through this object.
    created_databases: set[str] = field(default_factory=set, init=False)
    _admin_engine: Engine | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # -- URLs --------------------------------------------------------------

    @property
    def external(self) -> bool:
        """True if this server was not started by this module."""
        return self.process is None

    def sa_url(self, database: str | None) -> URL:
        """SQLAlchemy :class:`URL` object for ``database`` on this server."""
        if self.dialect == "postgresql":
            return URL.create(
                "postgresql+psycopg",
                username=self.user,
                password=self.password,
                host=self.host,
                port=self.port,
                database=database,
            )
        return URL.create(
            "mysql+pymysql",
            username=self.user,
            password=self.password,
            host=self.host,
            port=self.port,
            database=database,
            query={"charset": "utf8mb4"},
        )

    def url(self, database: str) -> str:
        """SQLAlchemy URL string (password included) for ``database``."""
        return self.sa_url(database).render_as_string(hide_password=False)

    def admin_url(self) -> str:
        """URL of the superuser's maintenance connection."""
        return self.sa_url(self.admin_database).render_as_string(hide_password=False)

    def tool(self, name: str) -> Path:
        """Path of a client tool (e.g. ``pg_dump``) of the server's version."""
        if self.bin_dir is None:
            raise FileNotFoundError(f"no local tool directory known for {self.dialect} server")
        path = self.bin_dir / name
        if not os.access(path, os.X_OK):
            raise FileNotFoundError(f"{path} not found or not executable")
        return path

    # -- admin operations ---------------------------------------------------

    def admin_engine(self) -> Engine:
        """Autocommit engine connected as the superuser (no pooling)."""
        with self._lock:
            if self._admin_engine is None:
                self._admin_engine = sa.create_engine(
                    self.sa_url(self.admin_database),
                    poolclass=NullPool,
                    isolation_level="AUTOCOMMIT",
                )
            return self._admin_engine

    def server_version(self) -> str:
        """Query and return ``SELECT version()``."""
        with self.admin_engine().connect() as conn:
            return str(conn.execute(sa.text("SELECT version()")).scalar_one())

    def create_database(self, name: str) -> str:
        """Create a fresh, empty UTF-8 (PostgreSQL) / utf8mb4 (MariaDB)
        database and return its SQLAlchemy URL. Fails if it already exists."""
        _check_db_name(name)
        with self.admin_engine().connect() as conn:
            if self.dialect == "postgresql":
                conn.execute(
                    sa.text(f"CREATE DATABASE \"{name}\" ENCODING 'UTF8' TEMPLATE template0")
                )
            else:
                conn.execute(
                    sa.text(
                        f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 "
                        f"COLLATE {MARIADB_COLLATION}"
                    )
                )
        self.created_databases.add(name)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` (if it exists), disconnecting its sessions first."""
        _check_db_name(name)
        with self.admin_engine().connect() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            else:
                # An idle-in-transaction session would make DROP wait on
                # metadata locks; kill other sessions using the database.
                ids = conn.execute(
                    sa.text(
                        "SELECT id FROM information_schema.processlist "
                        "WHERE db = :db AND id <> CONNECTION_ID()"
                    ),
                    {"db": name},
                ).scalars()
                for session_id in list(ids):
                    with contextlib.suppress(sa.exc.DBAPIError):
                        conn.execute(sa.text(f"KILL {int(session_id)}"))
                conn.execute(sa.text("SET SESSION lock_wait_timeout = 30"))
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        self.created_databases.discard(name)

    # -- lifecycle ------------------------------------------------------------

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (idempotent).

        Started servers are shut down (fast shutdown, then kill); their data
        directory is left for the caller to delete. For external servers the
        databases created through this object are dropped instead.
        """
        if self.external and self.created_databases:
            for name in sorted(self.created_databases):
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    self.drop_database(name)
        with self._lock:
            if self._admin_engine is not None:
                self._admin_engine.dispose()
                self._admin_engine = None
        proc = self.process
        if proc is not None and proc.poll() is None:
            # PostgreSQL: SIGINT = fast shutdown. MariaDB: SIGTERM = shutdown.
            sig = signal.SIGINT if self.dialect == "postgresql" else signal.SIGTERM
            process.terminate(proc, sig, timeout)
        process.forget(self)


def _check_db_name(name: str) -> None:
    if not _DB_NAME_RE.match(name):
        raise ValueError(
            f"invalid test database name {name!r}: use letters, digits and _, "
            "starting with a letter or _, at most 63 characters"
        )


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _spawn_server(
    cmd: list[str], *, log_path: Path, cwd: Path, user: str | None, pdeathsig: signal.Signals
) -> subprocess.Popen[bytes]:
    """Start a server process that dies with us, as ``user`` with its primary group."""
    return process.spawn(
        cmd, log_path=log_path, cwd=cwd, user=user, group=_primary_group(user), pdeathsig=pdeathsig
    )


def _chown_to(user: str | None, *paths: Path) -> None:
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for path in paths:
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _run(cmd: list[str], *, log_path: Path, user: str | None, cwd: Path) -> None:
    with log_path.open("ab") as log:
        log.write(f"\n$ {' '.join(cmd)}\n".encode())
        log.flush()
        result = subprocess.run(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            user=user,
            group=_primary_group(user),
            extra_groups=[] if user is not None else None,
            check=False,
        )
    if result.returncode != 0:
        raise ServerStartError(
            f"{cmd[0]} failed with exit code {result.returncode}; log {log_path}:\n"
            + process.tail(log_path)
        )


def _primary_group(user: str | None) -> int | None:
    return None if user is None else pwd.getpwnam(user).pw_gid


def _wait_ready(server: RunningServer, proc: subprocess.Popen[bytes], timeout: float) -> str:
    """Poll until the server accepts a superuser connection over TCP.

    Returns the server version.
    """
    engine = sa.create_engine(server.sa_url(server.admin_database), poolclass=NullPool)

    def version() -> str:
        with engine.connect() as conn:
            return str(conn.execute(sa.text("SELECT version()")).scalar_one())

    assert server.log_path is not None
    try:
        return process.wait_until_ready(
            proc,
            version,
            what=f"{server.dialect} server",
            log_path=server.log_path,
            timeout=timeout,
            interval=0.05,
            errors=(OSError, sa.exc.DBAPIError),
        )
    finally:
        engine.dispose()


def _start_and_wait(
    server: RunningServer,
    cmd: list[str],
    *,
    timeout: float,
    user: str | None,
    pdeathsig: signal.Signals,
) -> RunningServer:
    """One start attempt: spawn ``cmd``, wait for a connection, stop it if none comes."""
    assert server.base_dir is not None and server.log_path is not None
    proc = _spawn_server(
        cmd, log_path=server.log_path, cwd=server.base_dir, user=user, pdeathsig=pdeathsig
    )
    server.process = proc
    process.stop_at_exit(server, lambda: server.stop(timeout=10.0))
    try:
        server.version = _wait_ready(server, proc, timeout)
    except BaseException:
        server.stop(timeout=10)
        raise
    return server


# --------------------------------------------------------------------------
# base directories
# --------------------------------------------------------------------------


def make_base_dir(kind: str, parent: Path | None = None) -> Path:
    """Create a fresh, short-pathed base directory for a server.

    Lives in the system temp dir (not pytest's ``tmp_path``, which is private
    to root and so not reachable by the ``postgres`` OS user, and whose long
    paths may exceed the unix-socket path limit). Records our PID so that
    :func:`cleanup_stale_base_dirs` can remove it if we get killed.
    """
    base = Path(tempfile.mkdtemp(prefix=f"{BASE_DIR_PREFIX}{kind}-", dir=parent))
    (base / _OWNER_FILE).write_text(f"{os.getpid()}\n")
    return base


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cleanup_stale_base_dirs(parent: Path | None = None) -> list[Path]:
    """Delete base directories left behind by killed test sessions.

    A directory is stale if the PID in its owner file is no longer alive
    (its servers died with it through PR_SET_PDEATHSIG). Returns the removed
    directories.
    """
    root = parent if parent is not None else Path(tempfile.gettempdir())
    removed: list[Path] = []
    for candidate in root.glob(f"{BASE_DIR_PREFIX}*"):
        owner = candidate / _OWNER_FILE
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            continue
        if pid == os.getpid() or _pid_alive(pid):
            continue
        shutil.rmtree(candidate, ignore_errors=True)
        removed.append(candidate)
    return removed


# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------


def _version_key(path: Path) -> tuple[int, ...]:
    parts = path.parent.name.split(".")
    try:
        return tuple(int(p) for p in parts)
    except ValueError:
        return (-1,)


def find_postgres_bin_dir(major: int | None = None) -> Path | None:
    """Directory with initdb/pg_ctl/postgres and pg_dump/pg_restore.

    The newest ``/usr/lib/postgresql/<ver>/bin`` (Debian layout), or the
    given ``major`` version; falls back to the directory of ``initdb`` on
    PATH (then ``major`` is not checked).
    """
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for cand in candidates:
        if major is not None and _version_key(cand)[0] != major:
            continue
        if all(os.access(cand / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return cand
    if major is None:
        initdb = shutil.which("initdb")
        if initdb is not None:
            return Path(initdb).resolve().parent
    return None


def _postgres_os_user() -> str | None:
    """The OS user to run PostgreSQL as (None = ourselves, when not root)."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get(POSTGRES_OS_USER_ENV, "postgres")
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise ServerUnavailableError(
            f"running as root but OS user {name!r} (to run PostgreSQL) does not exist; "
            f"install the postgresql package or set {POSTGRES_OS_USER_ENV}"
        ) from None
    return name


def start_postgres(
    base_dir: Path,
    *,
    timeout: float = START_TIMEOUT_S,
    also_listen: str = "",
    allow_network: str = "",
) -> RunningServer:
    """initdb into ``base_dir/data`` and start PostgreSQL on 127.0.0.1.

    The server listens on a free TCP port and on a unix socket in
    ``base_dir``; the superuser ``ferry`` gets a random password (TCP auth is
    scram-sha-256, local socket auth is trust). Settings trade durability for
    speed (fsync off etc.). When running as root, initdb and postgres run as
    the ``postgres`` OS user and ``base_dir`` is chowned to it, so
    ``base_dir`` must be reachable by that user (use :func:`make_base_dir`).

    ``also_listen`` adds an address to listen on (the real node's bridge, so that pods reach
    the server through a selector-less Service) and ``allow_network`` a CIDR allowed to log
    in with the password (the pod subnet).

    Raises :class:`ServerUnavailableError` if the binaries are missing,
    :class:`ServerStartError` if initialisation or startup fails.
    """
    bin_dir = find_postgres_bin_dir()
    if bin_dir is None:
        raise ServerUnavailableError(
            "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found "
            "under /usr/lib/postgresql/*/bin or on PATH"
        )
    os_user = _postgres_os_user()
    base_dir = base_dir.resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    if os_user is not None:
        _chown_to(os_user, base_dir, *base_dir.rglob("*"))
        probe = subprocess.run(
            ["test", "-w", str(base_dir), "-a", "-x", str(base_dir)],
            user=os_user,
            group=_primary_group(os_user),
            extra_groups=[],
            check=False,
        )
        if probe.returncode != 0:
            raise ServerStartError(
                f"{base_dir} is not accessible by OS user {os_user!r} (a parent directory "
                "is probably private); create it with make_base_dir()"
            )

    data_dir = base_dir / "data"
    log_path = base_dir / "postgres.log"
    pwfile = base_dir / "pwfile"
    password = secrets.token_hex(16)
    pwfile.write_text(password + "\n")
    pwfile.chmod(0o600)
    log_path.touch()
    _chown_to(os_user, pwfile, log_path)

    _run(
        [
            str(bin_dir / "initdb"),
            "--pgdata",
            str(data_dir),
            "--username",
            SUPERUSER,
            "--pwfile",
            str(pwfile),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ],
        log_path=log_path,
        user=os_user,
        cwd=base_dir,
    )
    pwfile.unlink()
    if allow_network:
        with (data_dir / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {allow_network} scram-sha-256\n")

    def attempt() -> RunningServer:
        port = process.free_port()
        server = RunningServer(
            dialect="postgresql",
            host="127.0.0.1",
            port=port,
            user=SUPERUSER,
            password=password,
            bin_dir=bin_dir,
            admin_database="postgres",
            base_dir=base_dir,
            socket_path=base_dir / f".s.PGSQL.{port}",
            log_path=log_path,
        )
        settings = {
            "listen_addresses": ",".join(filter(None, ["127.0.0.1", also_listen])),
            "port": str(port),
            "unix_socket_directories": str(base_dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "128MB",
            "max_wal_size": "1GB",
            "checkpoint_timeout": "30min",
            "jit": "off",
            "timezone": "UTC",
            "log_timezone": "UTC",
            "logging_collector": "off",
            "log_min_messages": "warning",
        }
        cmd = [str(bin_dir / "postgres"), "-D", str(data_dir)]
        for key, value in settings.items():
            cmd += ["-c", f"{key}={value}"]
        # SIGQUIT = immediate shutdown, taking the backends with it.
        return _start_and_wait(server, cmd, timeout=timeout, user=os_user, pdeathsig=signal.SIGQUIT)

    return process.retry_on_port_clash(attempt, clashed=process.port_clash_in(log_path))


def postgres_from_url(url: str) -> RunningServer:
    """Wrap an existing PostgreSQL server given by a superuser URL."""
    parsed = make_url(url)
    server = RunningServer(
        dialect="postgresql",
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username or "postgres",
        password=parsed.password if isinstance(parsed.password, str) else "",
        bin_dir=None,
        admin_database=parsed.database or "postgres",
    )
    try:
        server.version = server.server_version()
        with server.admin_engine().connect() as conn:
            num = int(conn.execute(sa.text("SHOW server_version_num")).scalar_one())
    except sa.exc.SQLAlchemyError as exc:
        raise ServerStartError(f"cannot connect to {POSTGRES_URL_ENV} server: {exc}") from exc
    server.bin_dir = find_postgres_bin_dir(num // 10000)
    return server


def get_postgres(base_dir: Path) -> RunningServer:
    """The server from ``$FERRY_TEST_POSTGRES_URL`` if set, else a new one."""
    url = os.environ.get(POSTGRES_URL_ENV)
    if url:
        return postgres_from_url(url)
    return start_postgres(base_dir)


# --------------------------------------------------------------------------
# MariaDB
# --------------------------------------------------------------------------

_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/libexec")


def _which(name: str) -> Path | None:
    path = os.environ.get("PATH", os.defpath) + os.pathsep + os.pathsep.join(_SBIN_DIRS)
    found = shutil.which(name, path=path)
    return Path(found) if found else None


def _find_mariadbd() -> Path | None:
    return _which("mariadbd") or _which("mysqld")


def find_mariadb_bin_dir() -> Path | None:
    """Directory with the MariaDB client tools (mariadb, mariadb-dump)."""
    client = _which("mariadb-dump") or _which("mariadb") or _which("mysqldump")
    return client.parent if client is not None else None


def start_mariadb(base_dir: Path, *, timeout: float = START_TIMEOUT_S) -> RunningServer:
    """mariadb-install-db into ``base_dir/data`` and start mariadbd.

    Listens on 127.0.0.1 at a free port and on ``base_dir/mysqld.sock``;
    utf8mb4 (``utf8mb4_unicode_ci``) is the server default; user ``ferry``
    (``'ferry'@'%'``, all privileges with grant option) gets a random
    password. No option files are read (``--no-defaults``), so the distro's
    /etc/mysql configuration does not interfere. As root the server runs with
    ``--user=root``.

    Raises :class:`ServerUnavailableError` if the binaries are missing,
    :class:`ServerStartError` if initialisation or startup fails.
    """
    mariadbd = _find_mariadbd()
    install_db = _which("mariadb-install-db") or _which("mysql_install_db")
    if mariadbd is None or install_db is None:
        raise ServerUnavailableError(
            "MariaDB server binaries (mariadbd/mysqld and mariadb-install-db) not found"
        )
    base_dir = base_dir.resolve()
    base_dir.mkdir(parents=True, exist_ok=True)
    data_dir = base_dir / "data"
    log_path = base_dir / "mariadb.log"
    socket_path = base_dir / "mysqld.sock"
    password = secrets.token_hex(16)
    user_args = ["--user=root"] if os.geteuid() == 0 else []

    _run(
        [
            str(install_db),
            "--no-defaults",
            f"--datadir={data_dir}",
            *user_args,
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
            "--skip-name-resolve",
            # passed through to mariadbd --bootstrap:
            "--character-set-server=utf8mb4",
            f"--collation-server={MARIADB_COLLATION}",
        ],
        log_path=log_path,
        user=None,
        cwd=base_dir,
    )
    # Runs at every server start, with the grant tables loaded (unlike
    # mariadb-install-db --extra-file, which runs with --skip-grant-tables),
    # before connections are accepted. Deleted once the server is up.
    init_sql = base_dir / "init.sql"
    init_sql.write_text(
        "DELETE FROM mysql.global_priv WHERE User = '';\n"
        "FLUSH PRIVILEGES;\n"
        f"CREATE USER IF NOT EXISTS '{SUPERUSER}'@'%' IDENTIFIED BY '{password}';\n"
        f"GRANT ALL PRIVILEGES ON *.* TO '{SUPERUSER}'@'%' WITH GRANT OPTION;\n"
    )
    init_sql.chmod(0o600)

    def attempt() -> RunningServer:
        port = process.free_port()
        server = RunningServer(
            dialect="mysql",
            host="127.0.0.1",
            port=port,
            user=SUPERUSER,
            password=password,
            bin_dir=find_mariadb_bin_dir(),
            base_dir=base_dir,
            socket_path=socket_path,
            log_path=log_path,
        )
        cmd = [
            str(mariadbd),
            "--no-defaults",
            f"--datadir={data_dir}",
            *user_args,
            "--bind-address=127.0.0.1",
            f"--port={port}",
            f"--socket={socket_path}",
            f"--pid-file={base_dir / 'mariadbd.pid'}",
            f"--log-error={log_path}",
            "--skip-name-resolve",
            f"--init-file={init_sql}",
            "--skip-log-bin",
            "--character-set-server=utf8mb4",
            f"--collation-server={MARIADB_COLLATION}",
            "--default-time-zone=+00:00",
            "--max-connections=300",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--innodb-buffer-pool-size=128M",
            "--innodb-log-file-size=64M",
        ]
        return _start_and_wait(server, cmd, timeout=timeout, user=None, pdeathsig=signal.SIGKILL)

    server = process.retry_on_port_clash(attempt, clashed=process.port_clash_in(log_path))
    init_sql.unlink(missing_ok=True)
    return server


def mariadb_from_url(url: str) -> RunningServer:
    """Wrap an existing MariaDB/MySQL server given by a superuser URL."""
    parsed = make_url(url)
    server = RunningServer(
        dialect="mysql",
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 3306,
        user=parsed.username or "root",
        password=parsed.password if isinstance(parsed.password, str) else "",
        bin_dir=find_mariadb_bin_dir(),
    )
    try:
        server.version = server.server_version()
    except sa.exc.SQLAlchemyError as exc:
        raise ServerStartError(f"cannot connect to {MARIADB_URL_ENV} server: {exc}") from exc
    return server


def get_mariadb(base_dir: Path) -> RunningServer:
    """The server from ``$FERRY_TEST_MARIADB_URL`` if set, else a new one."""
    url = os.environ.get(MARIADB_URL_ENV)
    if url:
        return mariadb_from_url(url)
    return start_mariadb(base_dir)
