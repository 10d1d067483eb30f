"""A Migration from Git in Job mode on the real node: the Job's pod clones the commit the
operator planned, with the credentials Secret mounted by the real kubelet as a volume.

The repository is a local bare repository on the namespace's store volume (the claim of
``tests/node/test_jobs.py``), which the operator's pod and the Job's pod both mount at
the same path, so both clone it with ``file://``. The HTTPS Git server of
``tests/harness/gitserver.py`` is not used here: it listens on 127.0.0.1 only, with a
certificate for that address, and a private CA (``GIT_SSL_CAINFO``) does not reach a Job
yet. ``file://`` ignores the Secret's token, so this proves what only a real node can:
the kubelet mounts the Secret where the CLI reads it, readable by the Job's user, and
nothing of it lands in the Job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from controller.commands.export import export
from controller.commands.planning import PlanOptions
from controller.flows.jobs import OPERATOR_UID
from tests.e2e import main_flows
from tests.e2e.test_operator import apply_ok, wait_phase
from tests.harness.gitcmd import git
from tests.node.conftest import STORE_MOUNT, OperatorPod
from tests.node.test_jobs import job_pods, store_claim
from tests.node.test_migration_jobs import DONE, declared, ledger

pytestmark = pytest.mark.node

TOKEN = "ghp_NodeJobToken0123456789abcdefXYZ"


def repository(site: main_flows.Site, host: Path) -> tuple[str, str]:
    """dev exported into a bare repository on the store volume, owned by the pods' user:
    its ``file://`` URL as both pods see it, and the commit ``main`` names."""
    bare, work = host / "config-repo" / "config.git", host / "config-work"
    git(host, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git(host, "init", "--quiet", "--initial-branch=main", str(work))
    export(site.host_urls["dev"], work / "snapshots" / "app", PlanOptions())
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "release 1")
    git(work, "push", "--quiet", str(bare), "main")
    for path in [bare.parent, *bare.parent.rglob("*")]:
        os.chown(path, OPERATOR_UID, OPERATOR_UID, follow_symlinks=False)
    seen = f"{STORE_MOUNT}/{site.namespace}/config-repo/config.git"
    return f"file://{seen}", git(work, "rev-parse", "HEAD")


def test_a_git_migration_applies_in_a_job_pod_from_the_planned_commit(
    site: main_flows.Site, operator: OperatorPod
) -> None:
    declared(site)
    kubectl, namespace = site.kubectl, site.namespace
    host = store_claim(kubectl, operator, namespace)
    url, commit = repository(site, host)
    kubectl("create", "secret", "generic", "git-creds", "-n", namespace,
            f"--from-literal=token={TOKEN}")  # fmt: skip
    apply_ok(kubectl, namespace, f"""
apiVersion: ferry.dev/v1alpha1
kind: Migration
metadata: {{name: from-git}}
spec:
  source: {{git: {{repository: "{url}", revision: main, path: snapshots/app,
                   secretRef: {{name: git-creds}}}}}}
  target: pre
""")  # fmt: skip
    done = wait_phase(kubectl, namespace, "from-git", DONE, 240)
    assert done["phase"] == "Succeeded", done
    assert done["source"]["commit"] == commit
    assert done["job"]["phase"] == "Succeeded" and done["job"]["attempts"] == 1
    assert ledger(site.host_urls["pre"]) == [(done["migrationId"], "succeeded")]
    (pod,) = job_pods(kubectl, namespace, done["job"]["name"])
    args = pod["spec"]["containers"][0]["args"]
    assert args[args.index("--source") + 1] == f"git+{url}#revision={commit}&path=snapshots/app"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["git-credentials"]["secret"]["secretName"] == "git-creds"
    told = json.loads(pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"])
    assert (told["outcome"], told["status"]) == ("completed", "succeeded")
    job = kubectl.json("get", "job", done["job"]["name"], "-n", namespace)
    assert TOKEN not in json.dumps(job) + json.dumps(pod) + json.dumps(done)
    assert TOKEN not in site.operator_log(400)
