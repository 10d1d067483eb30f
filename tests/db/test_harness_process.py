"""The harness's one process helper, against real processes: what every server relies on."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.harness import process
from tests.harness.cluster import REPO_ROOT, wait_for
from tests.harness.process import NotReady, ServerStartError, alive


def _sh(script: str, log: Path, sig: signal.Signals = signal.SIGKILL) -> subprocess.Popen[bytes]:
    return process.spawn(["sh", "-c", script], log_path=log, pdeathsig=sig)


def test_a_process_that_dies_during_startup_is_named_with_its_log(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    proc = _sh("echo 'FATAL: bad setting'; exit 3", log)
    with pytest.raises(ServerStartError) as err:
        process.wait_until_ready(
            proc, lambda: False, what="toy server", log_path=log, timeout=30, interval=0.01
        )
    assert "toy server exited with code 3 during startup" in str(err.value)
    assert str(err.value).endswith("FATAL: bad setting")


def test_a_probe_that_never_answers_times_out_with_its_last_reason(tmp_path: Path) -> None:
    log = tmp_path / "b.log"
    log.write_text("".join(f"line {n}\n" for n in range(100)))
    proc = _sh("sleep 30", log)
    calls = []

    def probe() -> bool:
        calls.append(1)
        raise NotReady(f"still warming up ({len(calls)})")

    try:
        started = time.monotonic()
        with pytest.raises(ServerStartError) as err:
            process.wait_until_ready(
                proc, probe, what="toy", log_path=log, timeout=0.3, interval=0.05, log_lines=2
            )
        assert 0.3 <= time.monotonic() - started < 5
        message = str(err.value)
        assert f"toy not ready after 0s (last error: still warming up ({len(calls)}))" in message
        assert message.endswith("line 98\nline 99") and "line 97" not in message
        assert proc.poll() is None, "stopping is the caller's business"
    finally:
        process.terminate(proc)


def test_the_probe_s_answer_is_returned_and_other_errors_are_not_swallowed(
    tmp_path: Path,
) -> None:
    log = tmp_path / "c.log"
    proc = _sh("sleep 30", log)
    answers = iter([OSError("refused"), None, "15.4"])

    def probe() -> str | None:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    try:
        got = process.wait_until_ready(
            proc, probe, what="t", log_path=log, timeout=30, interval=0.01
        )
        assert got == "15.4"

        def broken() -> bool:
            raise KeyError("a bug in the probe")

        with pytest.raises(KeyError):
            process.wait_until_ready(proc, broken, what="t", log_path=log, timeout=30, interval=0)
    finally:
        process.terminate(proc)


def _clash(log: Path) -> ServerStartError:
    with log.open("a") as out:
        out.write("2024-01-01 LOG: could not bind IPv4 address: Address already in use\n")
    return ServerStartError("bind failed")


def test_a_taken_port_starts_again_and_other_failures_do_not(tmp_path: Path) -> None:
    log = tmp_path / "d.log"
    log.write_text("")
    tries: list[int] = []

    def clashes_once() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise _clash(log)
        return "up"

    assert process.retry_on_port_clash(clashes_once, clashed=process.port_clash_in(log)) == "up"
    assert len(tries) == 2

    other = tmp_path / "e.log"
    other.write_text("FATAL: data directory has wrong ownership\n")
    tries.clear()

    def fails() -> str:
        tries.append(1)
        raise ServerStartError("no")

    with pytest.raises(ServerStartError, match="no"):
        process.retry_on_port_clash(fails, clashed=process.port_clash_in(other))
    assert len(tries) == 1

    tries.clear()

    def always_clashes() -> str:
        tries.append(1)
        raise _clash(log)

    with pytest.raises(ServerStartError, match="bind failed"):
        process.retry_on_port_clash(always_clashes, clashed=process.port_clash_in(log), attempts=4)
    assert len(tries) == 4


@pytest.mark.parametrize(
    ("tail", "clash"),
    [
        ("[ERROR] Can't start server: Bind on TCP/IP port: Address already in use", True),
        ("[ERROR] Do you already have another server running on port: 3306? errno: 98", True),
        ("listen tcp 127.0.0.1:8333: bind: address already in use", True),
        ("FATAL: could not create lock file", False),
        ("", False),
    ],
)
def test_what_counts_as_a_taken_port(tmp_path: Path, tail: str, clash: bool) -> None:
    log = tmp_path / "f.log"
    log.write_text("starting\n" + tail + "\n")
    assert process.address_in_use(log) is clash
    log.write_text(tail + "\n" + "later line\n" * 60)  # an old line does not count
    assert process.address_in_use(log) is False


def test_a_process_deaf_to_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    proc = _sh("trap '' TERM; echo ready; sleep 30 & wait; sleep 30", tmp_path / "g.log")
    wait_for(lambda: "ready" in (tmp_path / "g.log").read_text(), timeout=10)
    started = time.monotonic()
    process.terminate(proc, signal.SIGTERM, 0.5)
    assert proc.returncode == -signal.SIGKILL
    assert 0.5 <= time.monotonic() - started < 10


def test_stopping_a_group_takes_its_children_along(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    proc = _sh(f"sleep 300 & echo $! > {pid_file}; wait", tmp_path / "h.log")
    child = int(wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), timeout=10))
    assert alive(child)
    process.terminate(proc, signal.SIGTERM, 10, group=True)
    wait_for(lambda: not alive(child), timeout=10, description="the child gone")


def test_a_server_dies_with_a_killed_test_session(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG: what keeps ``kill -9`` of pytest from leaving servers behind."""
    pid_file = tmp_path / "server.pid"
    code = textwrap.dedent(
        f"""
        import signal, time
        from pathlib import Path
        from tests.harness import process
        server = process.spawn(
            ["sleep", "300"], log_path=Path({str(tmp_path / "j.log")!r}), pdeathsig=signal.SIGTERM
        )
        Path({str(pid_file)!r}).write_text(str(server.pid))
        time.sleep(300)
        """
    )
    session = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT)
    try:
        server = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), timeout=30))
        assert alive(server)
        session.kill()
        session.wait(timeout=10)
        wait_for(lambda: not alive(server), timeout=10, description="the server gone")
    finally:
        session.kill()
        session.wait(timeout=10)


@pytest.mark.parametrize("forgotten", [False, True])
def test_what_is_still_running_at_exit_is_stopped(tmp_path: Path, forgotten: bool) -> None:
    marker = tmp_path / "stopped"
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from tests.harness import process
        owner = object()
        process.stop_at_exit(owner, lambda: Path({str(marker)!r}).write_text("stopped"))
        if {forgotten}:
            process.forget(owner)
        """
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
    assert marker.exists() is not forgotten
