"""Run Ferry's operator as a separate process against the harness's control plane."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

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
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
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
                cwd=REPO_ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, as a crashed pod."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
