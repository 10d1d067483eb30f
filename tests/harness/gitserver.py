"""A real Git server over HTTPS that demands credentials, for the Git source tests.

Why this exists: Ferry's Migrations read reviewed snapshots from private Git
repositories with a token from a Secret. That path (the header git sends, what a
refused token looks like, that the token never lands in a URL, a log or an error)
must be tested against the real protocol, not a ``file://`` clone. This module
serves bare repositories with Git's own ``git http-backend`` (the smart HTTP
protocol, v0 and v2) behind a small stdlib HTTPS server on 127.0.0.1 that accepts a
request only with ``Authorization: Bearer <token>`` or Basic auth whose password is
the token (what GitHub, GitLab, Gitea and Bitbucket accept), and answers 401 with
``WWW-Authenticate: Basic`` otherwise, as those hosts do.

HTTPS, because Ferry refuses plain ``http://`` remotes. :class:`TestCA` creates a
certificate authority at start (``cryptography``; nothing is committed, nothing is
added to the machine's trust store) and a server certificate for ``127.0.0.1``. The
tests trust it the way a user trusts a private CA: ``GIT_SSL_CAINFO`` pointing at
:attr:`GitServer.ca_file` in the environment git runs in (:meth:`GitServer.trust_env`).

Typical use::

    with GitServer(tmp_path / "repos", token="s3cret") as server:
        url = server.create_repository("config", source_tree)  # https://127.0.0.1:port/…
        monkeypatch.setenv(*server.trust_env())  # GIT_SSL_CAINFO=<the test CA>
        ...  # clone url with the token
        server.requests  # what git asked for: path, auth scheme, accepted

Over SSH, :class:`SSHGitServer` starts a real OpenSSH ``sshd`` (``/usr/sbin/sshd -D``)
on 127.0.0.1 on a free port, with its own host key and an ``authorized_keys`` file
holding one generated client key, password login off. It logs in as the user the
tests run as (root in CI, so ``PermitRootLogin prohibit-password``): a dedicated
system user would mean ``useradd`` on the machine, which a test harness should not
do, and the key is confined anyway -- ``restrict`` and a forced command that runs
only ``git-shell`` (``git-upload-pack`` / ``git-receive-pack``), logging each
command to :attr:`SSHGitServer.commands`. Typical use::

    with SSHGitServer(base_dir) as server:
        url = server.create_repository("config", source_tree)  # ssh://user@127.0.0.1:port/...
        server.client_key, server.known_hosts  # what a Secret would hold
        server.accepted_keys()  # fingerprints sshd accepted

:func:`ssh_git_server_or_fail` is what a session fixture calls: when ``sshd``,
``ssh`` or ``ssh-keygen`` is missing it skips locally and FAILS in CI (``CI=true`` /
``FERRY_STRICT=1``), naming ``hack/ensure-system-packages.sh``.

Only the standard library, ``cryptography``, pytest and the ``git``/OpenSSH commands
are used.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import ipaddress
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import dbservers, process
from .process import Managed
from .pytest_plugin import ENSURE_SCRIPT, strict_mode

__all__ = [
    "GitServer",
    "SSHGitServer",
    "SSHUnavailableError",
    "SeenRequest",
    "TestCA",
    "fingerprint",
    "http_backend",
    "ssh_git_server_or_fail",
    "ssh_programs",
]


def http_backend() -> Path:
    """The ``git-http-backend`` program of the installed git."""
    exec_path = subprocess.run(
        ["git", "--exec-path"], check=True, capture_output=True, text=True
    ).stdout.strip()
    backend = Path(exec_path) / "git-http-backend"
    if not backend.exists():
        raise FileNotFoundError(f"{backend} not found (install git)")
    return backend


def _serve_bare_copy(work_tree: Path, bare: Path) -> None:
    """Replace ``bare`` with a bare clone of ``work_tree`` (what a server serves)."""
    if bare.exists():
        shutil.rmtree(bare)
    subprocess.run(
        ["git", "clone", "--quiet", "--bare", str(work_tree), str(bare)],
        check=True,
        capture_output=True,
    )


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class TestCA:
    """A certificate authority made for one test run, and a 127.0.0.1 certificate it signed.

    Files (PEM) under ``directory``: ``ca.pem`` (what a client trusts), ``server.pem``
    and ``server-key.pem`` (the server's chain and key, 0600).
    """

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name("Ferry test CA")
        ca = (
            x509.CertificateBuilder()
            .subject_name(ca_name)
            .issuer_name(ca_name)
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(ca_key, hashes.SHA256())
        )
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name("127.0.0.1"))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(ca.public_bytes(pem))
        self.cert_file = directory / "server.pem"
        self.cert_file.write_bytes(cert.public_bytes(pem))
        self.key_file = directory / "server-key.pem"
        self.key_file.touch(mode=0o600)
        self.key_file.write_bytes(
            key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str  # path and query as requested: credentials must never appear here
    scheme: str  # "Bearer", "Basic" or "" (no Authorization header)
    username: str  # the Basic username, "" otherwise
    accepted: bool


class GitServer(Managed):
    """Smart-HTTP Git server over HTTPS on 127.0.0.1 requiring ``token`` (Bearer or Basic)."""

    def __init__(self, root: Path, token: str, username: str | None = None) -> None:
        """``username``: when given, Basic auth must use exactly this user name."""
        self.root = root
        self.token = token
        self.username = username
        self.requests: list[SeenRequest] = []
        self.connections = 0  # TCP connections accepted (with or without a request)
        self.ca = TestCA(root.parent / f"{root.name}-tls")
        self._backend = http_backend()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        server.daemon_threads = True
        # The handshake happens in the request's thread (on first read), so a client
        # that refuses the certificate cannot stall the accept loop.
        server.socket = self.ca.server_context().wrap_socket(
            server.socket, server_side=True, do_handshake_on_connect=False
        )
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    def url(self, name: str) -> str:
        return f"https://127.0.0.1:{self.port}/{name}.git"

    @property
    def ca_file(self) -> Path:
        """The test CA's certificate (PEM): what a client must trust."""
        return self.ca.ca_file

    def trust_env(self) -> tuple[str, str]:
        """The environment variable that makes git trust this server's CA."""
        return "GIT_SSL_CAINFO", str(self.ca_file)

    # --- repositories --------------------------------------------------------------

    def create_repository(self, name: str, work_tree: Path) -> str:
        """Serve the Git repository at ``work_tree`` (all branches and tags) as
        ``name``; return its URL."""
        _serve_bare_copy(work_tree, self.root / f"{name}.git")
        return self.url(name)

    # --- HTTP ----------------------------------------------------------------------

    def _authorize(self, header: str | None) -> tuple[str, str, bool]:
        if not header:
            return "", "", False
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return "Bearer", "", value.strip() == self.token
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return "Basic", "", False
            ok = password == self.token and (self.username is None or user == self.username)
            return "Basic", user, ok
        return scheme, "", False

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: tests read ``requests`` instead

            def handle(self) -> None:
                with outer._lock:
                    outer.connections += 1
                # A client that refuses the certificate ends the connection during
                # or right after the handshake, before sending any request.
                with contextlib.suppress(ssl.SSLError, ConnectionError):
                    self.connection.do_handshake()
                    super().handle()

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            def _serve(self) -> None:
                body = self._body()
                scheme, user, ok = outer._authorize(self.headers.get("Authorization"))
                with outer._lock:
                    outer.requests.append(SeenRequest(self.command, self.path, scheme, user, ok))
                if not ok:
                    self._reply(
                        401,
                        {"WWW-Authenticate": 'Basic realm="ferry-test"'},
                        b"authentication required\n",
                    )
                    return
                self._cgi(body, user or "token")

            def _cgi(self, body: bytes, user: str) -> None:
                parts = urlsplit(self.path)
                env = {
                    "PATH": "/usr/bin:/bin:/usr/local/bin",
                    "GIT_PROJECT_ROOT": str(outer.root),
                    "GIT_HTTP_EXPORT_ALL": "1",
                    "GATEWAY_INTERFACE": "CGI/1.1",
                    "SERVER_PROTOCOL": "HTTP/1.1",
                    "REQUEST_METHOD": self.command,
                    "PATH_INFO": parts.path,
                    "QUERY_STRING": parts.query,
                    "REMOTE_USER": user,
                    "REMOTE_ADDR": "127.0.0.1",
                    "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                    "CONTENT_LENGTH": str(len(body)),
                }
                for header, var in (
                    ("Git-Protocol", "HTTP_GIT_PROTOCOL"),
                    ("Content-Encoding", "HTTP_CONTENT_ENCODING"),
                ):
                    if self.headers.get(header):
                        env[var] = str(self.headers.get(header))
                done = subprocess.run(
                    [str(outer._backend)], input=body, env=env, capture_output=True, check=False
                )
                head, sep, payload = done.stdout.partition(b"\r\n\r\n")
                if not sep:
                    head, sep, payload = done.stdout.partition(b"\n\n")
                status, headers = 200, {}
                for line in head.decode("latin-1").splitlines():
                    name, _, value = line.partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif name:
                        headers[name.strip()] = value.strip()
                if done.returncode != 0 and not sep:
                    status, payload = 500, done.stderr
                self._reply(status, headers, payload)

            def _reply(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() != "content-length":
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


# ----------------------------------------------------------------------------------
# Git over SSH: a real sshd
# ----------------------------------------------------------------------------------

_SBIN_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
SSH_START_TIMEOUT_S = 15.0


class SSHUnavailableError(RuntimeError):
    """``sshd``, ``ssh`` or ``ssh-keygen`` is not installed."""


def ssh_programs() -> dict[str, Path]:
    """Absolute paths of ``sshd``, ``ssh``, ``ssh-keygen`` and ``git-shell``."""
    found: dict[str, Path] = {}
    missing = []
    for name, package in (
        ("sshd", "openssh-server"),
        ("ssh", "openssh-client"),
        ("ssh-keygen", "openssh-client"),
    ):
        where = shutil.which(name, path=_SBIN_PATH)
        if where is None:
            missing.append(f"{name} (package {package})")
        else:
            found[name] = Path(where).resolve()
    git_shell = shutil.which("git-shell") or str(http_backend().parent / "git-shell")
    if not Path(git_shell).exists():
        missing.append("git-shell (package git)")
    found["git-shell"] = Path(git_shell)
    if missing:
        raise SSHUnavailableError(f"not installed: {', '.join(missing)}")
    return found


def _keygen(keygen: Path, path: Path, comment: str) -> None:
    subprocess.run(
        [str(keygen), "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )


def fingerprint(public_key: str) -> str:
    """The ``SHA256:...`` fingerprint of an OpenSSH public key line (as sshd logs it)."""
    blob = base64.b64decode(public_key.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


class SSHGitServer(Managed):
    """A real ``sshd`` on 127.0.0.1 serving bare repositories under ``base/repos``.

    Only :attr:`client_key` logs in, as :attr:`user` (the user running the tests),
    and can only run ``git-shell`` commands. :attr:`other_key` is a valid key the
    server does not know.
    """

    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "repos"
        self.programs = ssh_programs()
        self.user = pwd.getpwuid(os.getuid()).pw_name
        self.port = 0
        self.log_path = base / "sshd.log"
        self._commands_log = base / "commands.log"
        self._process: subprocess.Popen[bytes] | None = None
        self.host_public_key = ""
        self.client_key = ""
        self.client_public_key = ""
        self.other_key = ""
        self.other_public_key = ""

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        if '"' in str(self.base) or any(c.isspace() for c in str(self.base)):
            raise ValueError(f"unusable directory for sshd files: {self.base!r}")
        self.base.mkdir(parents=True, exist_ok=True)
        self.root.mkdir(exist_ok=True)
        keygen = self.programs["ssh-keygen"]
        host_key = self.base / "host_ed25519"
        client = self.base / "client_ed25519"
        other = self.base / "other_ed25519"
        for path, comment in (
            (host_key, "ferry-test-host"),
            (client, "ferry-test-client"),
            (other, "ferry-test-unknown"),
        ):
            if not path.exists():
                _keygen(keygen, path, comment)
        self.host_public_key = host_key.with_suffix(".pub").read_text().strip()
        self.client_key = client.read_text()
        self.client_public_key = client.with_suffix(".pub").read_text().strip()
        self.other_key = other.read_text()
        self.other_public_key = other.with_suffix(".pub").read_text().strip()

        serve = self.base / "serve-git"
        serve.write_text(
            "#!/bin/sh\n"
            "# Forced command: record what git asked for, then let git-shell run it\n"
            "# (git-upload-pack / git-receive-pack only).\n"
            f"printf '%s\\n' \"$SSH_ORIGINAL_COMMAND\" >> '{self._commands_log}'\n"
            f"exec '{self.programs['git-shell']}' -c \"$SSH_ORIGINAL_COMMAND\"\n"
        )
        serve.chmod(0o700)
        authorized = self.base / "authorized_keys"
        authorized.write_text(f'command="{serve}",restrict {self.client_public_key}\n')
        authorized.chmod(0o600)
        if os.geteuid() == 0:
            # sshd started by root chroots its pre-auth child here (Debian creates it
            # at boot through the ssh service, which the test machine does not run).
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

        def attempt() -> SSHGitServer:
            self.port = process.free_port()
            config = self._write_config(host_key, authorized)
            self.log_path.write_text("")
            proc = process.spawn(
                [str(self.programs["sshd"]), "-D", "-f", str(config), "-E", str(self.log_path)],
                log_path=self.log_path,
                cwd=self.base,
                pdeathsig=signal.SIGTERM,
            )
            self._process = proc
            process.stop_at_exit(self, self.stop)
            try:
                self._wait_ready(proc)
            except BaseException:
                self.stop()
                raise
            return self

        clashed = process.port_clash_in(self.log_path)
        process.retry_on_port_clash(attempt, clashed=clashed, attempts=5)
        return self

    def _write_config(self, host_key: Path, authorized: Path) -> Path:
        config = self.base / "sshd_config"
        lines = [
            "ListenAddress 127.0.0.1",  # loopback only
            f"Port {self.port}",
            f"HostKey {host_key}",
            f"PidFile {self.base / 'sshd.pid'}",
            f"AuthorizedKeysFile {authorized}",
            "AuthorizedPrincipalsFile none",
            f"AllowUsers {self.user}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "HostbasedAuthentication no",
            "PermitEmptyPasswords no",
            "PermitRootLogin prohibit-password",
            "UsePAM no",
            "StrictModes no",  # the files live under /tmp, which is world-writable
            "AllowTcpForwarding no",
            "AllowAgentForwarding no",
            "AllowStreamLocalForwarding no",
            "X11Forwarding no",
            "PermitTunnel no",
            "PermitTTY no",
            "PermitUserEnvironment no",
            "AcceptEnv GIT_PROTOCOL",  # protocol v2, as real Git hosts accept
            "PrintMotd no",
            "LoginGraceTime 20",
            "LogLevel VERBOSE",
        ]
        config.write_text("\n".join(lines) + "\n")
        # OpenSSH >= 9.8 refuses a source address after a few failed logins (the wrong
        # key tests would lock 127.0.0.1 out); older versions do not know the option.
        probe = subprocess.run(
            [str(self.programs["sshd"]), "-t", "-f", str(config), "-o", "PerSourcePenalties=no"],
            capture_output=True,
            check=False,
        )
        if probe.returncode == 0:
            config.write_text(config.read_text() + "PerSourcePenalties no\n")
        return config

    def _wait_ready(self, proc: subprocess.Popen[bytes]) -> None:
        def greets() -> bool:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                return sock.recv(64).startswith(b"SSH-2.0-")

        process.wait_until_ready(
            proc,
            greets,
            what="sshd",
            log_path=self.log_path,
            timeout=SSH_START_TIMEOUT_S,
            interval=0.05,
        )

    def stop(self) -> None:
        proc, self._process = self._process, None
        if proc is not None and proc.poll() is None:
            process.terminate(proc, signal.SIGTERM, 10)
        process.forget(self)

    # --- what clients need ---------------------------------------------------------

    @property
    def known_hosts(self) -> str:
        """A ``known_hosts`` line for this server (what a Secret's ``known_hosts`` holds)."""
        key_type, key = self.host_public_key.split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key}\n"

    def url(self, name: str) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.root / name}.git"

    def create_repository(self, name: str, work_tree: Path) -> str:
        """Serve the Git repository at ``work_tree`` as ``name``; return its ssh URL."""
        _serve_bare_copy(work_tree, self.root / f"{name}.git")
        return self.url(name)

    # --- what the server saw -------------------------------------------------------

    @property
    def commands(self) -> list[str]:
        """The commands the client key ran (``git-upload-pack '/path'``), in order."""
        if not self._commands_log.exists():
            return []
        return self._commands_log.read_text().splitlines()

    def accepted_keys(self) -> list[str]:
        """Fingerprints of the keys sshd accepted a login with, in order."""
        return re.findall(r"Accepted publickey for \S+ from \S+ port \d+ \S+ \S+ (\S+)", self.log())

    def refused_keys(self) -> list[str]:
        """Fingerprints of the keys sshd refused, in order."""
        return re.findall(r"Failed publickey for \S+ from \S+ port \d+ \S+ \S+ (\S+)", self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def ssh_git_server_or_fail() -> Iterator[SSHGitServer]:
    """Body of a session fixture: a running :class:`SSHGitServer`, stopped at the end.

    Missing OpenSSH programs skip the requesting tests locally and fail them in CI
    (strict mode), with the hint to run ``hack/ensure-system-packages.sh``.
    """
    try:
        ssh_programs()
    except SSHUnavailableError as exc:
        message = (
            f"Git over SSH test server not available: {exc}. Run `{ENSURE_SCRIPT}` as root "
            "to install openssh-server and openssh-client."
        )
        if strict_mode():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    dbservers.cleanup_stale_base_dirs()
    base = dbservers.make_base_dir("sshd")
    try:
        with SSHGitServer(base) as server:
            yield server
    finally:
        shutil.rmtree(base, ignore_errors=True)
