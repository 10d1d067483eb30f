"""A test process killed with SIGKILL leaves no control plane running.

up.sh daemonizes etcd, the API server and the controller manager, so a ``kill -9`` of
pytest used to leave them running (and loading the machine) until someone ran
down.sh by hand. The harness starts a reaper beside each cluster for that case.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.harness.cluster import REPO_ROOT, wait_for
from tests.harness.process import alive

_START = """
import sys, time
from tests.harness.cluster import ControlPlane
ControlPlane(sys.argv[1]).start()
print("up", flush=True)
time.sleep(600)
"""


def test_a_killed_test_process_leaves_no_control_plane(tmp_path: Path) -> None:
    directory = tmp_path / "k8s"
    owner = subprocess.Popen(
        [sys.executable, "-c", _START, str(directory)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        assert owner.stdout.readline().strip() == "up"
        pids = [int(f.read_text()) for f in sorted((directory / "pids").glob("*.pid"))]
        assert pids and all(alive(pid) for pid in pids)
        owner.send_signal(signal.SIGKILL)
        owner.wait()
        wait_for(
            lambda: not any(alive(pid) for pid in pids),
            timeout=60,
            description="the killed test process's control plane to stop",
        )
    finally:
        if owner.poll() is None:
            owner.kill()
        subprocess.run([str(REPO_ROOT / "hack/cluster/down.sh"), str(directory)], check=False)
