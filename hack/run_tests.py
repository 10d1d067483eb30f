"""``make test``: every test tier, in two pytest processes side by side.

The real node's tier (``tests/node``) and the NocoBase tier (``tests/nocobase``) spend
most of their time waiting: for pods to start, for NocoBase to boot, for the operator
to act. They run one after the other in their own pytest process, alongside the
process that runs the other tiers (db, e2e, unit), which keeps a whole run inside CI's
time budget on two cores. The second process's output goes to a file and is printed
once both are done, so each report reads as one block; the exit status is the worse
of the two.

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
BESIDE = ("tests/node", "tests/nocobase")  # the waiting tiers, in this order


def _commands(extra: list[str]) -> tuple[list[str], list[str]]:
    ignored = [f"--ignore={tier}" for tier in BESIDE]
    rest = [*PYTEST, "tests", *ignored, "-q", "--durations=25", *extra]
    beside = [*PYTEST, *BESIDE, "-q", "--durations=25", *extra]
    return rest, beside


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def _serial(rest: list[str], beside: list[str]) -> int:
    first = subprocess.call(rest, cwd=ROOT)
    second = subprocess.call(beside, cwd=ROOT)
    return first or second


def _alongside(rest: list[str], waiting: list[str]) -> int:
    with tempfile.NamedTemporaryFile("w+", prefix="ferry-tiers-beside-", suffix=".log") as log:
        started = time.monotonic()
        beside = subprocess.Popen(waiting, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        try:
            code = subprocess.call(rest, cwd=ROOT)
            rest_took = time.monotonic() - started
            beside_code = beside.wait()
        finally:
            if beside.poll() is None:  # interrupted: stop the other pytest too
                beside.terminate()
                beside.wait(timeout=120)
        took = time.monotonic() - started
        log.seek(0)
        print(f"\n==> {' and '.join(BESIDE)}, run alongside the others", flush=True)
        sys.stdout.write(log.read())
        print(
            f"\n==> tiers: db, e2e and unit took {_minutes(rest_took)} (exit {code}); "
            f"node and NocoBase ended after {_minutes(took)} (exit {beside_code})",
            flush=True,
        )
    return code or beside_code


def main(argv: list[str]) -> int:
    rest, beside = _commands(argv)
    if os.environ.get("FERRY_SERIAL_TIERS", "").strip() in ("1", "true", "yes"):
        return _serial(rest, beside)
    return _alongside(rest, beside)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
