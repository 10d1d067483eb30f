"""`make demo`: Ferry's whole loop on a local Kubernetes control plane.

1. start the local cluster with its real node: control plane, kubelet, containerd (built
   once, cached; root only);
2. build Ferry's image from the Dockerfile (buildah, no registry) and `helm install` the
   chart: the operator runs as a pod with the chart's ServiceAccount, RBAC and probes;
3. a stand-in application (two http.server pods, a Deployment) serving pre-release, three
   NocoBase-shaped environments on SQLite, and a nightly BackupSchedule;
4. a builder's change in development, exported into a Git repository and tagged;
5. a Migration dev → pre-release from that Git revision, held for approval, approved by
   its plan digest, applied with a backup; the stand-in is scaled to zero before the write
   and back to two replicas after it (its replicas and the phase are printed as they change);
6. `kubectl get` and `kubectl describe` of what happened;
7. a rollback of that release with a Restore (the stand-in quiesced again), business rows kept;
8. clean-up (the cluster stops and the host is restored; files stay in demo-out/).

The demo's SQLite files and Git repository live in demo-out/cluster/, which the operator's
pod mounts at the same path (the chart's ``extraVolumes``), so URLs read the same inside.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import demo_app  # noqa: E402  (hack/, this script's directory)

from controller.commands.export import export  # noqa: E402
from controller.commands.planning import PlanOptions  # noqa: E402
from tests.fixtures import nocobase_shape as shape  # noqa: E402
from tests.harness.cluster import ControlPlane, wait_for  # noqa: E402
from tests.node.conftest import build_image, import_base_image  # noqa: E402
from tests.unit.test_chart import helm_binary  # noqa: E402

OUT = ROOT / "demo-out" / "cluster"
NS = "demo"
OPERATOR_UID = 10001  # the image's user (Dockerfile), who must own the demo's files


def hand_over() -> None:
    """Give the operator's user the demo's files (SQLite files, Git repository, backups)."""
    for path in [OUT, *OUT.rglob("*")]:
        if "k8s" not in path.relative_to(OUT).parts[:1]:
            os.chown(path, OPERATOR_UID, OPERATOR_UID, follow_symlinks=False)


def say(step: str, text: str) -> None:
    print(f"\n\033[1m==> {step} {text}\033[0m", flush=True)


class Kube:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.stand_in = ""  # the base image the stand-in application runs in

    def __call__(self, *args: str, input: str | None = None, show: bool = True) -> str:
        if show:
            print("$ kubectl " + " ".join(args), flush=True)
        out = self.cp.kubectl(*args, input=input).stdout
        if show and out.strip():
            print(out.rstrip(), flush=True)
        return out

    def field(self, kind: str, name: str, path: str) -> str:
        return self.cp.kubectl(
            "get", kind, name, "-n", NS, "-o", f"jsonpath={path}", check=False
        ).stdout

    def wait_field(
        self, kind: str, name: str, path: str, values: set[str], timeout: float = 120
    ) -> str:
        wait_for(
            lambda: self.field(kind, name, path) in values,
            timeout=timeout,
            description=f"{kind}/{name} {path} in {sorted(values)}",
        )
        return self.field(kind, name, path)


def environments(urls: dict[str, str], store: Path) -> str:
    """dev → pre-release → production; pre-release declares the stand-in application."""
    return f"""
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: dev}}
spec:
  stage: development
  database: {{dialect: sqlite, url: "{urls["dev"]}"}}
---
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: pre-release}}
spec:
  stage: pre-release
  database: {{dialect: sqlite, url: "{urls["pre"]}"}}
  promotion: {{acceptsFrom: [dev]}}
  backups: {{store: {{path: "{store}"}}}}
{demo_app.application(NS)}---
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: production}}
spec:
  stage: production
  allowRunningApplication: true
  configChanges: locked
  database: {{dialect: sqlite, url: "{urls["prod"]}"}}
  promotion: {{acceptsFrom: [pre-release]}}
  backups: {{store: {{path: "{store}"}}}}
---
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {{name: production-nightly}}
spec:
  environment: production
  schedule: "30 2 * * *"
  timeZone: Europe/Berlin
  immediate: true
  template: {{deletionPolicy: Delete}}
  retention: {{keepLast: 7, minKeep: 2}}
"""


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            f"safe.directory={repo}",  # the operator's user owns it (hand_over)
            "-c",
            "user.email=demo@ferry.dev",
            "-c",
            "user.name=Ferry demo",
            *args,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    say("1/8", "Local Kubernetes cluster with a real node (first run builds it: ~15 minutes)")
    subprocess.run(["bash", str(ROOT / "hack/node/build.sh")], check=True)
    subprocess.run(["bash", str(ROOT / "hack/helm/build.sh")], check=True)
    with ControlPlane(OUT / "k8s", node=True) as cp:
        kube = Kube(cp)
        print(f"API server {cp.server}; kubeconfig {cp.kubeconfig}")
        kube("get", "nodes", "-o", "wide")
        say("2/8", "Build Ferry's image, install the chart: the operator runs as a pod")
        image = build_image(cp)
        print(f"image {image.repository}:{image.tag} (imported into the node's containerd)")
        kube("apply", "--server-side", "-f", str(ROOT / "crds"))
        kube("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        kube("create", "namespace", NS)
        install(cp, image.repository, image.tag)
        kube.stand_in = import_base_image(cp)
        run(kube)
        say("8/8", "Clean-up: the cluster stops and the host is restored; see demo-out/cluster/")


def install(cp: ControlPlane, repository: str, tag: str) -> None:
    values = {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "watchNamespaces": [NS],
        "extraVolumes": [{"name": "demo", "hostPath": {"path": str(OUT), "type": "Directory"}}],
        "extraVolumeMounts": [{"name": "demo", "mountPath": str(OUT)}],
    }
    path = OUT / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    hand_over()
    cmd = [helm_binary(), "install", "ferry", str(ROOT / "charts/ferry"), "-n", NS]
    print("$ " + " ".join([*cmd[1:], "--values", "demo-out/cluster/values.yaml", "--wait"]))
    subprocess.run(
        [*cmd, "--values", str(path), "--wait", "--timeout=180s"], env=cp.env, check=True
    )


def run(kube: Kube) -> None:
    urls = {n: f"sqlite:///{OUT}/{n}.db" for n in ("dev", "pre", "prod")}
    variables = {"HOOK_TOKEN": ("secret", "demo"), "TICKET_WEBHOOK": ("plain", "https://x")}
    for name, url in urls.items():
        shape.build(url, app=name, variables=variables)
    hand_over()
    say("3/8", "The application pre-release serves (a stand-in: two pods of a Deployment),")
    print("three environments (SQLite, NocoBase-shaped) and a nightly BackupSchedule")
    kube("apply", "-n", NS, "-f", "-", input=demo_app.manifests(kube.stand_in))
    kube("rollout", "status", f"deployment/{demo_app.NAME}", "-n", NS, "--timeout=120s")
    kube("get", "pods,services", "-n", NS, "-o", "wide")
    kube("apply", "-n", NS, "-f", "-", input=environments(urls, OUT / "backups"))
    for env in ("dev", "pre-release", "production"):
        kube(
            "wait",
            "--for=condition=Ready",
            f"environment/{env}",
            "-n",
            NS,
            "--timeout=120s",
            show=env == "production",
        )
    kube("get", "environments", "-n", NS)
    wait_for(
        lambda: (
            kube.field("backupschedule", "production-nightly", "{.status.lastSuccessfulBackup}")
            != ""
        ),
        timeout=120,
        description="the schedule's immediate backup",
    )
    kube("get", "backupschedules,backups", "-n", NS)

    say("4/8", "A builder's change in dev, exported to Git and tagged v1 (the reviewed PR)")
    shape.builder_changes(urls["dev"])
    repo = OUT / "config-repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    export(urls["dev"], repo / "nocobase", PlanOptions())
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "Tickets collection, two pages, support role")
    git(repo, "tag", "v1")
    hand_over()
    print(git(repo, "log", "--oneline", "--stat", "-1")[:1200])

    say("5/8", "Migration dev → pre-release from git v1, held for approval")
    migration = f"""
apiVersion: ferry.dev/v1alpha1
kind: Migration
metadata: {{name: release-1}}
spec:
  source: {{git: {{repository: "file://{repo}", revision: v1, path: nocobase}}}}
  target: pre-release
  approval: {{required: true}}
"""
    kube("apply", "-n", NS, "-f", "-", input=migration)
    kube.wait_field("migration", "release-1", "{.status.phase}", {"AwaitingApproval"})
    digest = kube.field("migration", "release-1", "{.status.planDigest}")
    plan = json.loads(kube.field("migration", "release-1", "{.status.plan}"))
    print(f"plan {digest}: {plan['totals']}")
    print("A reviewer approves exactly this plan by committing its digest:")
    kube(
        "patch",
        "migration",
        "release-1",
        "-n",
        NS,
        "--type=merge",
        "-p",
        json.dumps({"spec": {"approval": {"required": True, "planDigest": digest}}}),
    )
    print("The operator scales the stand-in to zero, backs up, applies, restores 2 replicas")
    print("and waits until its Service answers:")
    with demo_app.watch(kube.field, "migration", "release-1"):
        phase = kube.wait_field(
            "migration", "release-1", "{.status.phase}", {"Succeeded", "Failed", "RolledBack"}
        )
    print(f"release-1: {phase}")

    say("6/8", "What happened, as kubectl shows it")
    kube("get", "ferry", "-n", NS)
    kube("describe", "migration", "release-1", "-n", NS)

    say("7/8", "Pre-release takes new business rows; then release-1 is rolled back")
    shape.add_orders(urls["pre"], 2)
    kube(
        "apply",
        "-n",
        NS,
        "-f",
        "-",
        input="""
apiVersion: ferry.dev/v1alpha1
kind: Restore
metadata: {name: undo-release-1}
spec: {migration: release-1}
""",
    )
    with demo_app.watch(kube.field, "restore", "undo-release-1"):
        kube.wait_field("restore", "undo-release-1", "{.status.phase}", {"Completed", "Failed"})
    kube("get", "restores", "-n", NS)
    counts = shape.row_counts(urls["pre"])
    print(
        f"pre-release after the rollback: {counts['roles']} roles (the new 'support' role is "
        f"gone), 'tickets' table present: {'tickets' in counts}, orders: {counts['orders']} "
        "(the 2 written after the release are still there)"
    )


if __name__ == "__main__":
    main()
