"""Run Ferry's operator as a separate process against the harness's control plane."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.harness import process
from tests.harness.cluster import REPO_ROOT, ControlPlane, wait_for


class Operator:
    """``python -m controller run`` scoped to one namespace; logs go to a file."""

    def __init__(
        self,
        control_plane: ControlPlane,
        namespace: str,
        log: Path,
        kubeconfig: Path | None = None,
        env: dict[str, str] | None = None,
        metrics_port: int = 0,
        liveness: str = "",
    ) -> None:
        self.control_plane = control_plane
        self.namespace = namespace
        self.log = log
        self.kubeconfig = kubeconfig or control_plane.kubeconfig
        self.extra_env = dict(env or {})
        self.metrics_port = metrics_port
        self.liveness = liveness
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> Operator:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "FERRY_ENVIRONMENT_CHECK_SECONDS": "2",
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }
        env.pop("AWS_ENDPOINT_URL", None)
        self.process = process.spawn(
            [
                sys.executable,
                "-m",
                "controller",
                "run",
                "--namespace",
                self.namespace,
                "--liveness",
                self.liveness,
                "--metrics-port",
                str(self.metrics_port),
                "--metrics-address",
                "127.0.0.1",
                "--plain-logs",
            ],
            log_path=self.log,
            # dies with the test session even when pytest is killed
            pdeathsig=signal.SIGTERM,
            cwd=REPO_ROOT,
            env=env,
        )
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crashed pod."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process:
            process.terminate(self.process, signal.SIGTERM, 20)

    def tail(self, lines: int = 60) -> str:
        return process.tail(self.log, lines) if self.log.exists() else ""


@dataclass
class Handover:
    """Two operators for one namespace: ``first`` runs (paused at a failpoint, if any),
    ``second`` waits to take over once the first has crashed."""

    first: Operator
    second: Operator

    def wait_paused(self, failpoint: str, timeout: float = 90) -> None:
        wait_for(
            lambda: f"failpoint {failpoint}" in self.first.tail(200),
            timeout=timeout,
            description=f"the operator paused at {failpoint}",
        )

    def crash(self) -> None:
        """SIGKILL the first operator, as a crashed pod; the second is started apart."""
        self.first.kill()


@contextmanager
def handover(
    control_plane: ControlPlane, namespace: str, logs: Path, failpoint: str = ""
) -> Iterator[Handover]:
    """Start an operator paused at ``failpoint`` (``"rows:uiSchemas"``, ``"committed"``;
    none if empty) and prepare a second; both are stopped when the block ends."""
    env = {"FERRY_FAILPOINTS": f"{failpoint}=sleep(120)"} if failpoint else {}
    first = Operator(control_plane, namespace, logs / "op1.log", env=env).start()
    second = Operator(control_plane, namespace, logs / "op2.log")
    try:
        yield Handover(first, second)
    finally:
        first.kill()
        second.stop()
