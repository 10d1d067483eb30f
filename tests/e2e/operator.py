"""Run Ferry's operator as a separate process against the harness's control plane."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.harness import process
from tests.harness.cluster import REPO_ROOT, ControlPlane


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
