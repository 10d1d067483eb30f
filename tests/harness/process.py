"""One way to run the test harness's local server processes.

Why this exists: PostgreSQL, MariaDB, SeaweedFS, sshd, NocoBase and the control plane
all need the same few things -- start a process with its output in a log file, tied
to the test session's life; wait until a probe succeeds, the process dies or a
deadline passes; start again on fresh ports when another process took a port between
our pick and the server's bind; stop it with a polite signal, then SIGKILL. Each
server module used to carry its own copy of these loops, with slightly different
error messages. They live here once; the server modules keep only what is theirs
(command lines, probes, ports).

Lifetime of a started process, as a best effort for abnormal exits:

* :func:`spawn` runs it through ``setpriv --pdeathsig`` (Linux PR_SET_PDEATHSIG), so
  the kernel signals it when the thread that started it dies -- this covers ``kill -9``
  of the test process;
* it runs in its own session, so a terminal Ctrl-C reaches pytest (which tears the
  fixtures down) rather than the server;
* :func:`stop_at_exit` registers a stop function that an :mod:`atexit` handler calls
  for every server still running when the interpreter exits normally.

Only the standard library is used.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Self, TypeVar

__all__ = [
    "Managed",
    "NotReady",
    "ServerStartError",
    "address_in_use",
    "alive",
    "forget",
    "free_port",
    "port_clash_in",
    "retry_on_port_clash",
    "spawn",
    "stop_at_exit",
    "tail",
    "terminate",
    "wait_until_ready",
]

T = TypeVar("T")


class ServerStartError(RuntimeError):
    """The binaries exist but the server failed to initialise or start."""


class NotReady(Exception):
    """Raised by a probe to say why the server is not ready yet (shown on timeout)."""


class Managed:
    """A server used as ``with Server(...) as server:``, started on entry, stopped on exit."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (see retry_on_port_clash)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def tail(path: Path | None, lines: int = 40) -> str:
    """The last lines of a log, for an error message."""
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def address_in_use(log_path: Path, lines: int = 60) -> bool:
    """Whether the log's end says a port was taken (EADDRINUSE, errno 98 on Linux)."""
    text = tail(log_path, lines).lower()
    return "address already in use" in text or "errno: 98" in text


def port_clash_in(log_path: Path) -> Callable[[Exception], bool]:
    """For :func:`retry_on_port_clash`: a start failed and the log says a port was taken."""
    return lambda err: isinstance(err, ServerStartError) and address_in_use(log_path)


def spawn(
    cmd: list[str],
    *,
    log_path: Path,
    pdeathsig: signal.Signals,
    cwd: Path | None = None,
    user: str | None = None,
    group: int | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a long-running server process that dies with us; output goes to ``log_path``.

    ``setpriv --pdeathsig`` (util-linux) sets PR_SET_PDEATHSIG in the child right before
    exec'ing the server -- after Popen's ``user=`` switch, which would otherwise reset
    it. Without setpriv we rely on :func:`terminate` and the atexit handler only.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        cmd = [setpriv, f"--pdeathsig={pdeathsig.name.removeprefix('SIG')}", "--", *cmd]
    with log_path.open("ab") as log:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,
            env=dict(env) if env is not None else None,
            # Own session: a terminal Ctrl-C goes to pytest, which then stops the
            # server through fixture teardown.
            start_new_session=True,
        )


def wait_until_ready(
    proc: subprocess.Popen[bytes] | None,
    probe: Callable[[], T | None],
    *,
    what: str,
    log_path: Path,
    timeout: float,
    interval: float,
    errors: tuple[type[BaseException], ...] = (OSError,),
    log_lines: int = 40,
) -> T:
    """Call ``probe`` until it returns a truthy value, and return that value.

    ``probe`` raising one of ``errors`` (or :class:`NotReady`) means "not yet". Raises
    :class:`ServerStartError` with the log's tail when the process exits first or the
    deadline passes; stopping the process is the caller's business.
    """
    caught: tuple[type[BaseException], ...] = (NotReady, *errors)
    deadline = time.monotonic() + timeout
    last: object = "no attempt"
    while True:
        if proc is None or proc.poll() is not None:
            code = None if proc is None else proc.returncode
            raise ServerStartError(
                f"{what} exited with code {code} during startup; log {log_path}:\n"
                + tail(log_path, log_lines)
            )
        try:
            result = probe()
        except caught as exc:
            last = exc
        else:
            if result:
                return result
            last = "the probe said not yet"
        if time.monotonic() >= deadline:
            raise ServerStartError(
                f"{what} not ready after {timeout:.0f}s (last error: {last}); "
                f"log {log_path}:\n" + tail(log_path, log_lines)
            )
        time.sleep(interval)


def retry_on_port_clash(
    attempt: Callable[[], T], *, clashed: Callable[[Exception], bool], attempts: int = 3
) -> T:
    """Run ``attempt`` (which picks fresh free ports each time) until it succeeds.

    A port found free can be taken by another process before the server binds it;
    when ``clashed`` says that is why an attempt failed, try again, at most
    ``attempts`` times. ``attempt`` must stop what it started before raising.
    """
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except Exception as err:
            if number == attempts or not clashed(err):
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def terminate(
    proc: subprocess.Popen[bytes],
    sig: int = signal.SIGTERM,
    timeout: float = 10.0,
    *,
    group: bool = False,
) -> None:
    """Send ``sig``, wait up to ``timeout`` seconds, then SIGKILL.

    With ``group`` the signals go to the process group (the server's own session),
    and whatever is left of the group is killed at the end.
    """

    def send(signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            if group:
                os.killpg(proc.pid, signum)
            else:
                proc.send_signal(signum)

    if proc.poll() is None:
        send(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            send(signal.SIGKILL)
            proc.wait(timeout=10)
    if group:
        send(signal.SIGKILL)  # stragglers of the group, if any


_AT_EXIT: dict[object, Callable[[], None]] = {}


def stop_at_exit(owner: object, stop: Callable[[], None]) -> None:
    """Call ``stop`` when the interpreter exits, unless :func:`forget` comes first."""
    _AT_EXIT[owner] = stop


def forget(owner: object) -> None:
    """``owner`` has been stopped: nothing to do for it at exit."""
    _AT_EXIT.pop(owner, None)


@atexit.register
def _stop_all_at_exit() -> None:
    for stop in list(_AT_EXIT.values()):
        with contextlib.suppress(Exception):
            stop()
