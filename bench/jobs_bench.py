"""20 Environments whose BackupSchedules fire at the same minute: InProcess vs Job mode.

Usage (needs the real node; one runs per machine, so take the shared lock):

    flock /tmp/ferry-node-tests.lock .venv/bin/python bench/jobs_bench.py [--envs 20]

It runs itself under pytest to reuse the real-node tier's fixtures (``tests/node``): the
control plane with its node, Ferry's image built here, the operator installed from the
chart as a pod, PostgreSQL behind ``postgres.db.svc``. It builds ``--envs`` NocoBase-shaped
databases, then for each mode in its own namespace: Secrets and Environments (Job mode:
``spec.execution.mode: Job`` and a claim on the store's directory), one BackupSchedule
per Environment whose cron fires at the same coming minute, and it waits until every
scheduled Backup is Completed. Before each mode the operator's pod is restarted, so the
peak memory (its container's cgroup ``memory.peak``, or ``memory.max_usage_in_bytes``
on cgroup v1) is that mode's alone. Prints a table; writes bench/out/jobs.json.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from tests.e2e.conftest import Kubectl  # noqa: E402
from tests.fixtures import nocobase_shape as shape  # noqa: E402
from tests.harness.cluster import wait_for  # noqa: E402
from tests.node.conftest import (  # noqa: E402
    RELEASE,
    STORE_MOUNT,
    SYSTEM_NS,
    NodePostgres,
    OperatorPod,
    wait_ready,
)
from tests.node.test_jobs import store_claim  # noqa: E402

OUT = ROOT / "bench" / "out" / "jobs.json"
ENVS = int(os.environ.get("FERRY_BENCH_ENVS", "20"))
MEMORY_FILES = ("/sys/fs/cgroup/memory.peak", "/sys/fs/cgroup/memory/memory.max_usage_in_bytes")


def operator_peak_mib(kubectl: Kubectl) -> float | None:
    for path in MEMORY_FILES:
        got = kubectl("exec", "-n", SYSTEM_NS, f"deployment/{RELEASE}", "--", "cat", path,
                      check=False)  # fmt: skip
        if got.returncode == 0 and got.stdout.strip().isdigit():
            return int(got.stdout.strip()) / 2**20
    return None


def restart_operator(operator: OperatorPod) -> None:
    before = {p["metadata"]["name"] for p in operator.pods()}  # type: ignore[index]
    operator.kubectl("delete", "pod", "-n", SYSTEM_NS, *before, "--wait=true")
    wait_ready(operator)


def declare(kubectl: Kubectl, ns: str, urls: list[str], mode: str, fire: dt.datetime) -> None:
    docs: list[dict[str, Any]] = []
    for i, url in enumerate(urls):
        name = f"env{i:02d}"
        kubectl("create", "secret", "generic", f"{name}-db", "-n", ns, f"--from-literal=url={url}")
        spec: dict[str, Any] = {
            "stage": "production",
            "allowRunningApplication": True,
            "database": {
                "dialect": "postgresql",
                "urlFrom": {"secretKeyRef": {"name": f"{name}-db", "key": "url"}},
            },
            "backups": {"store": {"path": f"{STORE_MOUNT}/{ns}"}},
        }
        if mode == "Job":
            spec["execution"] = {"mode": "Job", "storeVolumeClaim": "ferry-backups"}
        docs.append({"apiVersion": "ferry.dev/v1alpha1", "kind": "Environment",
                     "metadata": {"name": name}, "spec": spec})  # fmt: skip
        docs.append({
            "apiVersion": "ferry.dev/v1alpha1", "kind": "BackupSchedule",
            "metadata": {"name": name},
            "spec": {"environment": name, "schedule": f"{fire.minute} {fire.hour} * * *",
                     "retention": {"keepLast": 3}},
        })  # fmt: skip
    kubectl("apply", "-n", ns, "-f", "-", input=yaml.safe_dump_all(docs))


def completed(kubectl: Kubectl, ns: str) -> tuple[int, int]:
    items = kubectl.json("get", "backups", "-n", ns)["items"]
    done = sum(1 for b in items if (b.get("status") or {}).get("phase") == "Completed")
    failed = sum(1 for b in items if (b.get("status") or {}).get("phase") == "Failed")
    return done, failed


def run_mode(operator: OperatorPod, urls: list[str], mode: str) -> dict[str, Any]:
    kubectl = operator.kubectl
    ns = f"bench-jobs-{mode.lower()}-{int(time.time())}"
    kubectl("create", "namespace", ns)
    operator.grant_secrets(ns)
    store_claim(kubectl, operator, ns)
    restart_operator(operator)
    now = dt.datetime.now(dt.UTC)
    fire = (now + dt.timedelta(seconds=90)).replace(second=0, microsecond=0)
    declare(kubectl, ns, urls, mode, fire)
    wait_for(lambda: time.time() >= fire.timestamp(), timeout=200, interval=1,
             description="the minute the schedules fire")  # fmt: skip
    start = time.monotonic()
    peak = 0.0

    def all_done() -> bool:
        nonlocal peak
        peak = max(peak, operator_peak_mib(kubectl) or 0.0)
        done, failed = completed(kubectl, ns)
        assert failed == 0, f"{failed} Backup(s) failed in {mode} mode"
        return done >= len(urls)

    wait_for(all_done, timeout=1800, interval=2, description=f"{len(urls)} backups ({mode})")
    seconds = time.monotonic() - start
    peak = max(peak, operator_peak_mib(kubectl) or 0.0)
    kubectl("delete", "namespace", ns, "--wait=false", check=False)
    return {"mode": mode, "environments": len(urls), "seconds": round(seconds, 1),
            "operator_peak_mib": round(peak, 1)}  # fmt: skip


def test_jobs_bench(operator_pod: OperatorPod, node_postgres: NodePostgres) -> None:
    urls = []
    for i in range(ENVS):
        url = node_postgres.server.create_database(f"ferry_bench_jobs_{i:02d}_{int(time.time())}")
        shape.build(url, app=f"env{i:02d}")
        urls.append(node_postgres.for_pods(url))
    results = [run_mode(operator_pod, urls, mode) for mode in ("InProcess", "Job")]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(results, indent=2))
    print("\nmode        envs  all Completed (s)  operator peak (MiB)")
    for r in results:
        cells = (r["mode"], r["environments"], r["seconds"], r["operator_peak_mib"])
        print("{:<10}  {:>4}  {:>17}  {:>19}".format(*cells))


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=ENVS)
    args = parser.parse_args()
    os.environ["FERRY_BENCH_ENVS"] = str(args.envs)
    # The real-node tier's fixtures (the cluster, the image, the operator's pod), as a
    # plugin of a fresh pytest process (this one imported them as plain modules).
    plugins = ["-p", "tests.node.conftest", "-p", "no:cacheprovider"]
    cmd = [sys.executable, "-m", "pytest", __file__, "-q", "-s", *plugins, "--rootdir", str(ROOT)]
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
