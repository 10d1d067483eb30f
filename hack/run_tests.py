"""``make test``: every test tier, the real node's beside the others.

The node tier (``tests/node``) spends most of its time waiting: for pods to start, for
NocoBase to boot in them, for the operator's pod to act. It runs in its own pytest
process alongside the other tiers, which keeps a whole run inside CI's time budget on
two cores. Its output goes to a file and is printed once both are done, so each
tier's report reads as one block; the exit status is the worse of the two.

Usage: ``python hack/run_tests.py [PYTEST_ARGS...]`` (passed to both processes).
``FERRY_SERIAL_TIERS=1`` runs the two one after the other instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTEST = [sys.executable, "-m", "pytest"]
NODE = "tests/node"


def _commands(extra: list[str]) -> tuple[list[str], list[str]]:
    rest = [*PYTEST, "tests", f"--ignore={NODE}", "-q", "--durations=30", *extra]
    node = [*PYTEST, NODE, "-q", "--durations=15", *extra]
    return rest, node


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def _serial(rest: list[str], node: list[str]) -> int:
    first = subprocess.call(rest, cwd=ROOT)
    second = subprocess.call(node, cwd=ROOT)
    return first or second


def _alongside(rest: list[str], node: list[str]) -> int:
    with tempfile.NamedTemporaryFile("w+", prefix="ferry-node-tier-", suffix=".log") as log:
        started = time.monotonic()
        beside = subprocess.Popen(node, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = subprocess.call(rest, cwd=ROOT)
            rest_took = time.monotonic() - started
            node_code = beside.wait()
        finally:
            if beside.poll() is None:  # interrupted: stop the node tier's pytest too
                beside.terminate()
                beside.wait(timeout=120)
        took = time.monotonic() - started
        log.seek(0)
        print(f"\n==> the node tier ({NODE}), run alongside the others", flush=True)
        sys.stdout.write(log.read())
        print(
            f"\n==> tiers: the others {_minutes(rest_took)} (exit {code}), "
            f"the node tier ended after {_minutes(took)} (exit {node_code})",
            flush=True,
        )
    return code or node_code


def main(argv: list[str]) -> int:
    rest, node = _commands(argv)
    if os.environ.get("FERRY_SERIAL_TIERS", "").strip() in ("1", "true", "yes"):
        return _serial(rest, node)
    return _alongside(rest, node)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
