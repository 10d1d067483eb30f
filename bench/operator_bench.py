"""Time from ``kubectl apply`` of a small Migration to ``Succeeded`` on a local control plane.

Usage: ``.venv/bin/python bench/operator_bench.py [--runs 20] [--postgresql] [--timeline]``

Starts the harness's kube-apiserver + etcd, applies Ferry's CRDs, runs the operator as
a separate process (as in the e2e tests), declares NocoBase-shaped dev and pre-release
Environments on SQLite with a backup store, then repeats: change one setting in dev,
``kubectl apply`` a new Migration dev → pre-release, and wait (watching the API) for
``Succeeded``. The pre-migration backup is part of every run. Prints the median and the
spread; writes bench/out/operator.json (``--postgresql``: both Environments on a
throwaway PostgreSQL, operator-postgresql.json). Each run also reports the time from
``kubectl apply`` returning to ``Succeeded`` (the operator's part,
``median_after_apply_s``). ``--timeline`` prints, for every run, when each step was
seen: ``kubectl apply`` returning, every watch event with its phase, and the operator's
log lines about the Migration (Kopf's handler start and end).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"

import sqlalchemy as sa  # noqa: E402
from kubernetes import client, config, watch  # noqa: E402

from tests.e2e.operator import Operator  # noqa: E402
from tests.fixtures import nocobase_shape as shape  # noqa: E402
from tests.harness.cluster import ControlPlane, wait_for  # noqa: E402

NS = "bench"
ENVS = """
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec: {{stage: development, database: {dev}}}
---
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: pre}}
spec:
  stage: pre-release
  allowRunningApplication: true
  database: {pre}
  backups: {{store: {{path: {store}}}}}
"""
SQLITE_DB = '{{dialect: sqlite, url: "{url}"}}'
PG_DB = "{{dialect: postgresql, urlFrom: {{secretKeyRef: {{name: {name}-db, key: url}}}}}}"
MIGRATION = """
apiVersion: ferry.dev/v1alpha1
kind: Migration
metadata: {{name: release-{i}}}
spec: {{source: {{environment: dev}}, target: pre}}
"""


def wait_succeeded(
    api: client.CustomObjectsApi, name: str, timeout: float = 60
) -> tuple[str, list[tuple[float, str]]]:
    """The final phase, and when (``time.time()``) each change of the object was seen."""
    stream = watch.Watch().stream(
        api.list_namespaced_custom_object,
        "ferry.dev",
        "v1alpha1",
        NS,
        "migrations",
        field_selector=f"metadata.name={name}",
        timeout_seconds=int(timeout),
    )
    seen: list[tuple[float, str]] = []
    for event in stream:
        phase = (event["object"].get("status") or {}).get("phase")
        seen.append((time.time(), f"watch {event['type']} phase={phase}"))
        if phase in ("Succeeded", "Failed", "RolledBack"):
            return str(phase), seen
    raise TimeoutError(name)


_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\] (.*)$")


def operator_lines(log: Path, since: float, until: float) -> list[tuple[float, str]]:
    """The operator's log lines of a run (Kopf's FULL format: local time, ms); they
    name no object, so all of them, timers of other objects included."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        match = _LOG_TIME.match(line)
        if not match:
            continue
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        if since <= at <= until:
            out.append((at, "operator " + " ".join(match.group(2).split())[:140]))
    return out


class Site:
    """The two Environments, on SQLite files or on a throwaway PostgreSQL."""

    def __init__(self, tmp: Path, postgresql: bool) -> None:
        self.tmp, self.postgresql, self.server = tmp, postgresql, None
        token = {"HOOK_TOKEN": ("secret", "x")}
        if postgresql:
            from tests.harness.dbservers import make_base_dir, start_postgres

            self.server = start_postgres(make_base_dir("bench"))
            self.urls = {n: self.server.create_database(f"bench_{n}") for n in ("dev", "pre")}
        else:
            self.urls = {n: f"sqlite:///{tmp}/{n}.db" for n in ("dev", "pre")}
        for name, url in self.urls.items():
            shape.build(url, app=name, variables=token)

    def declare(self, cp: ControlPlane) -> None:
        store = self.tmp / "backups"
        if not self.postgresql:
            dbs = {n: SQLITE_DB.format(url=url) for n, url in self.urls.items()}
        else:
            for name, url in self.urls.items():
                cp.kubectl("create", "secret", "generic", f"{name}-db", "-n", NS,
                           f"--from-literal=url={url}")  # fmt: skip
            dbs = {n: PG_DB.format(name=n) for n in self.urls}
        text = ENVS.format(dev=dbs["dev"], pre=dbs["pre"], store=store)
        cp.kubectl("apply", "-n", NS, "-f", "-", input=text)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


def wait_ready(cp: ControlPlane) -> None:
    for env in ("dev", "pre"):
        wait_for(
            lambda e=env: (
                cp.kubectl(
                    "get", "environment", e, "-n", NS, "-o",
                    "jsonpath={.status.conditions[?(@.type=='Ready')].status}", check=False,
                ).stdout
                == "True"
            ),
            timeout=60,
            description=env,
        )  # fmt: skip


def one_run(
    cp: ControlPlane, api: client.CustomObjectsApi, engine: Any, i: int, log: Path
) -> dict[str, Any]:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"update \"systemSettings\" set title = 'Release {i}'")
    start, wall = time.perf_counter(), time.time()
    cp.kubectl("apply", "-n", NS, "-f", "-", input=MIGRATION.format(i=i))
    applied = time.time()
    phase, seen = wait_succeeded(api, f"release-{i}")
    elapsed = time.perf_counter() - start
    if phase != "Succeeded":
        message = cp.kubectl(
            "get", "migration", f"release-{i}", "-n", NS, "-o", "jsonpath={.status.message}"
        ).stdout
        raise SystemExit(f"release-{i} ended {phase}: {message}")
    time.sleep(0.05)  # the log line of the handler's end
    timeline = sorted([(applied, "kubectl apply returned"), *seen,
                       *operator_lines(log, wall, time.time())])  # fmt: skip
    return {
        "seconds": elapsed,
        # the operator's part: from ``kubectl apply`` returning (the object exists) to
        # the watch seeing Succeeded; creationTimestamp has whole seconds only
        "after_apply": seen[-1][0] - applied,
        "timeline": [(round(at - wall, 3), what) for at, what in timeline],
    }


def start_profile(op: Operator, out: Path) -> subprocess.Popen[bytes]:
    assert op.process is not None
    OUT.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    cmd = [str(spy), "record", "--pid", str(op.process.pid), "--idle", "--threads"]
    cmd += ["--rate", "200", "--format", "raw", "--output", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)  # attached
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--postgresql", action="store_true", help="Environments on PostgreSQL, not SQLite"
    )
    parser.add_argument(
        "--timeline", action="store_true", help="print when each step of every run was seen"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the operator with py-spy during the measured runs (idle threads too): "
        "bench/out/operator-<variant>.pyspy, collapsed stacks",
    )
    parser.add_argument(
        "--check-seconds",
        default="2",
        help="FERRY_ENVIRONMENT_CHECK_SECONDS of the operator (2, as in the e2e tests; "
        "the default is 60): each check of the two Environments competes with a run",
    )
    args = parser.parse_args()
    variant = "postgresql" if args.postgresql else "sqlite"
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp_name:
        tmp = Path(tmp_name)
        site = Site(tmp, args.postgresql)
        try:
            with ControlPlane(tmp / "k8s") as cp:
                cp.kubectl("apply", "-f", str(ROOT / "crds"))
                cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
                cp.kubectl("create", "namespace", NS)
                config.load_kube_config(str(cp.kubeconfig))
                api = client.CustomObjectsApi()
                log = tmp / "operator.log"
                checks = {"FERRY_ENVIRONMENT_CHECK_SECONDS": args.check_seconds}
                op = Operator(cp, NS, log, env=checks).start()
                spy = None
                try:
                    site.declare(cp)
                    wait_ready(cp)
                    engine = sa.create_engine(site.urls["dev"])
                    for i in range(args.runs + 1):
                        if i == 1 and args.profile:
                            spy = start_profile(op, OUT / f"operator-{variant}.pyspy")
                        run = one_run(cp, api, engine, i, log)
                        if i:  # the first run warms the operator up
                            runs.append(run)
                        print(
                            f"release-{i}: {run['seconds']:.3f} s "
                            f"({run['after_apply']:.3f} s after kubectl apply returned)",
                            flush=True,
                        )
                        if args.timeline:
                            for at, what in run["timeline"]:
                                print(f"    {at:+7.3f}  {what}")
                    engine.dispose()
                finally:
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(timeout=60)
                    op.stop()
                    OUT.mkdir(parents=True, exist_ok=True)
                    shutil.copy(log, OUT / f"operator-{variant}.log")
        finally:
            site.stop()
    seconds = [r["seconds"] for r in runs]
    result = {
        "variant": variant,
        "runs": len(seconds),
        "median_s": statistics.median(seconds),
        "median_after_apply_s": statistics.median(r["after_apply"] for r in runs),
        "p90_s": sorted(seconds)[max(0, int(len(seconds) * 0.9) - 1)],
        "min_s": min(seconds),
        "max_s": max(seconds),
        "environment_check_seconds": args.check_seconds,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "timelines": [r["timeline"] for r in runs],
    }
    print(json.dumps({k: v for k, v in result.items() if k != "timelines"}, indent=2))
    name = "operator.json" if variant == "sqlite" else f"operator-{variant}.json"
    (OUT / name).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
