"""What the benchmarks share: peak memory of this process and its children, running a
scenario in a fresh interpreter (optionally under cProfile), and table formatting."""

from __future__ import annotations

import cProfile
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROFILE_DIR = "FERRY_BENCH_PROFILE"  # a directory: each scenario writes <name>.pstats there

ROOT = Path(__file__).resolve().parent.parent


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def children_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def in_child(script: str, name: str, env: dict[str, str]) -> dict[str, Any]:
    """Run ``script --scenario name`` in a fresh interpreter (so its peak memory is its
    own) and return the JSON object it printed last."""
    cmd = [sys.executable, str(Path(script).resolve()), "--scenario", name]
    proc = subprocess.run(
        cmd, env={**os.environ, **env}, capture_output=True, text=True, cwd=ROOT, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"scenario {name} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def scenario_result(name: str, run: Callable[[str], dict[str, Any]]) -> dict[str, Any]:
    """``run(name)`` in the child, under cProfile when ``$FERRY_BENCH_PROFILE`` names a
    directory (read the files with ``python -m pstats``). Profiling slows the run: its
    timings are for finding hot spots, not for the report."""
    directory = os.environ.get(PROFILE_DIR)
    if not directory:
        return run(name)
    profiler = cProfile.Profile()
    result = profiler.runcall(run, name)
    Path(directory).mkdir(parents=True, exist_ok=True)
    profiler.dump_stats(str(Path(directory) / f"{name}.pstats"))
    return result


def fmt_row(cells: list[str], widths: list[int]) -> str:
    return "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
