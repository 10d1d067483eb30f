"""A real Git server over HTTP that demands credentials, for the Git source tests.

Why this exists: Ferry's Migrations read reviewed snapshots from private Git
repositories with a token from a Secret. That path (the header git sends, what a
refused token looks like, that the token never lands in a URL, a log or an error)
must be tested against the real protocol, not a ``file://`` clone. This module
serves bare repositories with Git's own ``git http-backend`` (the smart HTTP
protocol, v0 and v2) behind a small stdlib HTTP server on 127.0.0.1 that accepts a
request only with ``Authorization: Bearer <token>`` or Basic auth whose password is
the token (what GitHub, GitLab, Gitea and Bitbucket accept), and answers 401 with
``WWW-Authenticate: Basic`` otherwise, as those hosts do.

Typical use::

    with GitServer(tmp_path / "repos", token="s3cret") as server:
        url = server.create_repository("config", source_tree)
        ...  # clone url with the token
        server.requests  # what git asked for: path, auth scheme, accepted

Only the standard library and the ``git`` command are used.
"""

from __future__ import annotations

import base64
import shutil
import subprocess
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

__all__ = ["GitServer", "SeenRequest", "http_backend"]


def http_backend() -> Path:
    """The ``git-http-backend`` program of the installed git."""
    exec_path = subprocess.run(
        ["git", "--exec-path"], check=True, capture_output=True, text=True
    ).stdout.strip()
    backend = Path(exec_path) / "git-http-backend"
    if not backend.exists():
        raise FileNotFoundError(f"{backend} not found (install git)")
    return backend


@dataclass(frozen=True)
class SeenRequest:
    method: str
    path: str  # path and query as requested: credentials must never appear here
    scheme: str  # "Bearer", "Basic" or "" (no Authorization header)
    username: str  # the Basic username, "" otherwise
    accepted: bool


class GitServer:
    """Smart-HTTP Git server on 127.0.0.1 requiring ``token`` (Bearer or Basic)."""

    def __init__(self, root: Path, token: str, username: str | None = None) -> None:
        """``username``: when given, Basic auth must use exactly this user name."""
        self.root = root
        self.token = token
        self.username = username
        self.requests: list[SeenRequest] = []
        self._backend = http_backend()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------

    def start(self) -> Self:
        self.root.mkdir(parents=True, exist_ok=True)
        server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.server_address[1])

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

    # --- repositories --------------------------------------------------------------

    def create_repository(self, name: str, work_tree: Path) -> str:
        """Serve the Git repository at ``work_tree`` (all branches and tags) as
        ``name``; return its URL."""
        bare = self.root / f"{name}.git"
        if bare.exists():
            shutil.rmtree(bare)
        subprocess.run(
            ["git", "clone", "--quiet", "--bare", str(work_tree), str(bare)],
            check=True,
            capture_output=True,
        )
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
