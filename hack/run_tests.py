"""``make test``: every test tier, in three pytest processes side by side.

The tiers differ in what they spend their time on. The db and unit tiers keep a core
busy in the test process itself. The real node's tier (``tests/node``) mostly waits:
for pods to start, for the operator to act, for NocoBase to boot in a Deployment. The
e2e tier (a local API server, the operator, Argo CD) and the NocoBase tier (NocoBase
on three databases) wait too, between bursts of work. Their times, measured side by
side, add up to over an hour on two cores. Two processes left a quarter of the cores
idle and the longer lane at about 40 minutes; three lanes of similar length keep both
cores busy. A lane's tiers run one after the other in its process.

The first lane's report is printed as it runs; the others' go to files and are printed
in order once all are done, so each report reads as one block. A last line gives each
lane's time and exit status; the run fails if any lane failed (with the first such
lane's status).

Usage: ``python hack/run_tests.py [PYTEST_ARGS...]`` (passed to every process).
``FERRY_SERIAL_TIERS=1`` runs the lanes one after the other instead.

``FERRY_TESTS_DEADLINE`` (seconds since the epoch; ``.ci/run`` sets it a few minutes
before CI's own limit) stops the lanes still running at that time: each gets SIGINT,
which makes pytest print where it was and what had failed so far, and their reports
are printed as usual. Without it a run that CI kills leaves no word of the lanes whose
reports were still in their files.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
PYTEST = [sys.executable, "-m", "pytest"]


@dataclass(frozen=True)
class Lane:
    """A pytest process: its name in reports, and the tiers it runs in this order."""

    name: str
    tiers: tuple[str, ...]


#: The first lane runs everything under ``tests`` that no later lane runs: the db and
#: NocoBase tiers. The tiers' times in one run of the earlier two lanes (2026-12-02,
#: cold, ``--durations=0`` summed): db 10.5 min, NocoBase 17.7, unit 4.3, e2e 19.1,
#: node 22.2.
LANES = (
    Lane("db and NocoBase", ("tests",)),
    Lane("unit, then e2e with Argo CD", ("tests/unit", "tests/e2e")),
    Lane("the real node", ("tests/node",)),
)


def _commands(extra: list[str]) -> list[list[str]]:
    """One pytest command line per lane."""
    elsewhere = [tier for lane in LANES[1:] for tier in lane.tiers]
    first = [*LANES[0].tiers, *(f"--ignore={tier}" for tier in elsewhere)]
    lanes = [first, *(list(lane.tiers) for lane in LANES[1:])]
    return [[*PYTEST, *paths, "-q", "--durations=25", *extra] for paths in lanes]


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {int(seconds % 60)} s"


def _summary(results: list[tuple[float, int]]) -> str:
    parts = [
        f"{lane.name} {_minutes(took)} (exit {code})"
        for lane, (took, code) in zip(LANES, results, strict=True)
    ]
    return "==> lanes: " + "; ".join(parts)


def _serial(argvs: list[list[str]]) -> list[tuple[float, int]]:
    results = []
    for argv in argvs:
        started = time.monotonic()
        code = subprocess.call(argv, cwd=ROOT)
        results.append((time.monotonic() - started, code))
    return results


def _deadline() -> float | None:
    """``FERRY_TESTS_DEADLINE`` as a ``time.monotonic()`` value, or None."""
    text = os.environ.get("FERRY_TESTS_DEADLINE", "").strip()
    return time.monotonic() + float(text) - time.time() if text else None


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Interrupt every pytest process still running (pytest reports where it was), then
    terminate those that do not end within a minute."""
    running = [proc for proc in procs if proc.poll() is None]
    print("\n==> the tests' deadline has passed: interrupting the lanes still running", flush=True)
    for proc in running:
        proc.send_signal(signal.SIGINT)
    for proc in running:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.terminate()


def _side_by_side(argvs: list[list[str]], logs: Sequence[IO[str]]) -> list[tuple[float, int]]:
    started = time.monotonic()
    deadline = _deadline()
    procs = [subprocess.Popen(argvs[0], cwd=ROOT)]
    procs += [
        subprocess.Popen(argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        for argv, log in zip(argvs[1:], logs, strict=True)
    ]
    ended: dict[int, float] = {}
    try:
        while len(ended) < len(procs):
            time.sleep(1)
            if deadline is not None and time.monotonic() > deadline:
                _stop(procs)
                deadline = None
            for n, proc in enumerate(procs):
                if n not in ended and proc.poll() is not None:
                    ended[n] = time.monotonic() - started
    finally:  # interrupted: signal every pytest process still running, then wait
        running = [proc for proc in procs if proc.poll() is None]
        for proc in running:
            proc.terminate()
        for proc in running:
            proc.wait(timeout=120)
    return [(ended[n], proc.returncode) for n, proc in enumerate(procs)]


def _alongside(argvs: list[list[str]]) -> list[tuple[float, int]]:
    with tempfile.TemporaryDirectory(prefix="ferry-lanes-") as tmp:
        paths = [Path(tmp) / f"lane-{n}.log" for n in range(1, len(argvs))]
        logs = [path.open("w+") for path in paths]
        try:
            results = _side_by_side(argvs, logs)
        finally:
            for log in logs:
                log.close()
        for lane, path in zip(LANES[1:], paths, strict=True):
            print(f"\n==> {lane.name} ({', '.join(lane.tiers)}), run alongside", flush=True)
            sys.stdout.write(path.read_text())
    return results


def main(argv: list[str]) -> int:
    argvs = _commands(argv)
    if os.environ.get("FERRY_SERIAL_TIERS", "").strip() in ("1", "true", "yes"):
        results = _serial(argvs)
    else:
        results = _alongside(argvs)
    print(f"\n{_summary(results)}", flush=True)
    return next((code for _, code in results if code), 0)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
