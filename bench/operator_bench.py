"""Time from ``kubectl apply`` of a small Migration to ``Succeeded`` on a local control plane.

Usage: ``.venv/bin/python bench/operator_bench.py [--runs 20]``

Starts the harness's kube-apiserver + etcd, applies Ferry's CRDs, runs the operator as
a separate process (as in the e2e tests), declares NocoBase-shaped dev and pre-release
Environments on SQLite with a backup store, then repeats: change one setting in dev,
``kubectl apply`` a new Migration dev → pre-release, and wait (watching the API) for
``Succeeded``. The pre-migration backup is part of every run. Prints the median and the
spread; writes bench/out/operator.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

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
spec: {{stage: development, database: {{dialect: sqlite, url: "{dev}"}}}}
---
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: pre}}
spec:
  stage: pre-release
  allowRunningApplication: true
  database: {{dialect: sqlite, url: "{pre}"}}
  backups: {{store: {{path: {store}}}}}
"""
MIGRATION = """
apiVersion: ferry.dev/v1alpha1
kind: Migration
metadata: {{name: release-{i}}}
spec: {{source: {{environment: dev}}, target: pre}}
"""


def wait_succeeded(api: client.CustomObjectsApi, name: str, timeout: float = 60) -> str:
    stream = watch.Watch().stream(
        api.list_namespaced_custom_object,
        "ferry.dev",
        "v1alpha1",
        NS,
        "migrations",
        field_selector=f"metadata.name={name}",
        timeout_seconds=int(timeout),
    )
    for event in stream:
        phase = (event["object"].get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed", "RolledBack"):
            return str(phase)
    raise TimeoutError(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ferry-bench-") as tmp_name:
        tmp = Path(tmp_name)
        dev, pre = f"sqlite:///{tmp}/dev.db", f"sqlite:///{tmp}/pre.db"
        token = {"HOOK_TOKEN": ("secret", "x")}
        shape.build(dev, app="dev", variables=token)
        shape.build(pre, app="pre", variables=token)
        with ControlPlane(tmp / "k8s") as cp:
            cp.kubectl("apply", "-f", str(ROOT / "crds"))
            cp.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
            cp.kubectl("create", "namespace", NS)
            config.load_kube_config(str(cp.kubeconfig))
            api = client.CustomObjectsApi()
            op = Operator(cp, NS, tmp / "operator.log").start()
            try:
                cp.kubectl(
                    "apply",
                    "-n",
                    NS,
                    "-f",
                    "-",
                    input=ENVS.format(dev=dev, pre=pre, store=tmp / "backups"),
                )
                for env in ("dev", "pre"):
                    wait_for(
                        lambda e=env: (
                            cp.kubectl(
                                "get",
                                "environment",
                                e,
                                "-n",
                                NS,
                                "-o",
                                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                                check=False,
                            ).stdout
                            == "True"
                        ),
                        timeout=60,
                        description=env,
                    )
                engine = sa.create_engine(dev)
                seconds = []
                for i in range(args.runs + 1):
                    with engine.begin() as conn:
                        conn.exec_driver_sql(f"update systemSettings set title = 'Release {i}'")
                    start = time.perf_counter()
                    cp.kubectl("apply", "-n", NS, "-f", "-", input=MIGRATION.format(i=i))
                    phase = wait_succeeded(api, f"release-{i}")
                    elapsed = time.perf_counter() - start
                    if phase != "Succeeded":
                        message = cp.kubectl(
                            "get",
                            "migration",
                            f"release-{i}",
                            "-n",
                            NS,
                            "-o",
                            "jsonpath={.status.message}",
                        ).stdout
                        raise SystemExit(f"release-{i} ended {phase}: {message}")
                    if i:  # the first run warms the operator up
                        seconds.append(elapsed)
                    print(f"release-{i}: {elapsed:.3f} s", flush=True)
                engine.dispose()
            finally:
                op.stop()
    result = {
        "runs": len(seconds),
        "median_s": statistics.median(seconds),
        "p90_s": sorted(seconds)[int(len(seconds) * 0.9) - 1],
        "min_s": min(seconds),
        "max_s": max(seconds),
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "operator.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
