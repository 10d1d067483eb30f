"""Ferry under a real Argo CD: the GitOps loop users run, with Argo CD doing the syncing.

Argo CD (application controller, repo server, API server: :mod:`tests.harness.argocd`,
built from the Go module proxy by ``hack/argocd/build.sh``) syncs a local Git
repository (``file://``) of Ferry objects into the test's namespace, where Ferry's
operator runs. Every health asserted here is Argo CD's own assessment, read through
its API (``argocd app get``), with Ferry's checks from ``argocd/argocd-cm.yaml``
loaded the way docs/argocd.md tells users to.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.e2e.conftest import Kubectl
from tests.e2e.test_approvals import POLICY_KINDS
from tests.e2e.test_operator import environment, migration, status
from tests.harness.argocd import (
    ARGOCD_NAMESPACE,
    RELEASE_MANAGER,
    ArgoCD,
    GitRepo,
    application,
    health,
    operation,
    resource_health,
    synced,
    wave,
)
from tests.harness.cluster import ControlPlane, wait_for
from tests.unit.test_chart import of_kind, render

pytestmark = pytest.mark.e2e


# One Argo CD per test module: with one for the whole session, the first test here
# failed after the hook or kustomize tests had run (its sync operation stayed "waiting
# for healthy state" of Environments Argo CD itself showed Healthy); alone it passes.
@pytest.fixture(scope="module")
def argocd(
    control_plane: ControlPlane, ferry_crds: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ArgoCD]:
    with ArgoCD(control_plane, tmp_path_factory.mktemp("argocd")) as running:
        yield running


@pytest.fixture
def app(argocd: ArgoCD, kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """The name of this test's Application (its namespace's), deleted afterwards: Argo CD
    stops syncing before the namespace goes."""
    yield namespace
    kubectl("delete", "application", namespace, "-n", ARGOCD_NAMESPACE, check=False)


def gated_migration(digest: str = "") -> str:
    approval = "  approval: {required: true"
    approval += f", planDigest: '{digest}'}}\n" if digest else "}\n"
    return wave(migration("dev-to-pre", "dev", "pre", approval), 1)


def test_an_approval_holds_the_sync_and_a_committed_digest_makes_it_healthy(
    argocd: ArgoCD,
    app: str,
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = GitRepo(tmp_path)
    envs = "---".join(
        wave(doc, 0)
        for doc in (
            environment("dev", "development", sqlite_envs["dev"]),
            environment("pre", "pre-release", sqlite_envs["pre"], accepts="dev"),
            environment("prod", "production", sqlite_envs["prod"], accepts="pre"),
        )
    )
    repo.commit(
        "environments and a gated promotion", {"envs.yaml": envs, "m.yaml": gated_migration()}
    )
    kubectl("apply", "-f", "-", input=application(app, repo, namespace))

    # Wave 0 first: the Environments are Healthy before the Migration exists.
    # The Migration is in the last wave: the sync operation ends once it is applied, and
    # the Application stays Synced, its health Suspended until the approval.
    held = argocd.wait_view(
        app,
        lambda a: (
            resource_health(a, "Migration", "dev-to-pre").get("status") == "Suspended"
            and operation(a) == ("Succeeded", "successfully synced (all tasks run)")
        ),
        "the Migration Suspended in Argo CD, the sync operation over",
    )
    for env in ("dev", "pre", "prod"):
        assert resource_health(held, "Environment", env)["status"] == "Healthy", held
    digest = status(kubectl, "migration", namespace, "dev-to-pre")["planDigest"]
    message = resource_health(held, "Migration", "dev-to-pre")["message"]
    assert message.startswith("AwaitingApproval: ") and digest in message
    assert health(held) == "Suspended" and synced(held), held["status"]

    # The reviewed digest, committed: Argo CD applies it, Ferry applies the promotion.
    done = argocd.commit_and_wait(
        app,
        repo,
        "approve dev-to-pre",
        {"m.yaml": gated_migration(digest)},
        lambda a: health(a) == "Healthy" and synced(a),
        "Healthy",
    )
    assert resource_health(done, "Migration", "dev-to-pre")["status"] == "Healthy"
    assert status(kubectl, "migration", namespace, "dev-to-pre")["phase"] == "Succeeded"

    # A Migration the target refuses (prod accepts only pre): Degraded, with Ferry's reason.
    refused = wave(migration("dev-to-prod", "dev", "prod"), 1)
    failed = argocd.commit_and_wait(
        app,
        repo,
        "promote dev to prod",
        {"m2.yaml": refused},
        lambda a: health(a) == "Degraded",
        "Degraded",
    )
    got = resource_health(failed, "Migration", "dev-to-prod")
    assert got["status"] == "Degraded", got
    assert (
        got["message"].startswith("Failed: ")
        and "accepts promotions only from pre" in got["message"]
    )

    # A finished Migration retargeted in Git: the API server rejects the apply, and the
    # sync says why; the promotion that ran is left as it was.
    retargeted = wave(migration("dev-to-pre", "dev", "prod", "  approval: {required: true}\n"), 1)
    argocd.commit_and_wait(
        app,
        repo,
        "retarget dev-to-pre",
        {"m.yaml": retargeted},
        lambda a: "target cannot change; create a new Migration" in operation(a)[1],
        "the sync failing with the API server's message",
    )
    kept = kubectl.json("get", "migration", "dev-to-pre", "-n", namespace)
    assert kept["spec"]["target"] == "pre" and kept["status"]["phase"] == "Succeeded"


AFTER_PROMOTION = """
apiVersion: v1
kind: ConfigMap
metadata:
  name: after-promotion
  annotations: {argocd.argoproj.io/sync-wave: "2"}
data: {released: "yes"}
"""


def test_the_approve_action_run_through_argo_cd_sets_exactly_the_digest_shown(
    argocd: ArgoCD,
    app: str,
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    """Git holds no digest; a release manager approves from Argo CD (``argocd app actions
    run``, what the UI's menu calls), allowed by Argo CD RBAC to do that and no more.
    Something in a later wave (a ConfigMap in wave 2) holds the sync operation at the
    Suspended Migration until then. Self-heal leaves the approval alone, since Git never
    set the field."""
    repo = GitRepo(tmp_path)
    envs = "---".join(
        wave(doc, 0)
        for doc in (
            environment("dev", "development", sqlite_envs["dev"]),
            environment("pre", "pre-release", sqlite_envs["pre"]),
        )
    )
    files = {"envs.yaml": envs, "m.yaml": gated_migration(), "after.yaml": AFTER_PROMOTION}
    repo.commit("a gated promotion", files)
    kubectl("apply", "-f", "-", input=application(app, repo, namespace))
    waiting = ("Running", "waiting for healthy state of ferry.dev/Migration/dev-to-pre")
    held = argocd.wait_view(
        app,
        lambda a: (
            resource_health(a, "Migration", "dev-to-pre").get("status") == "Suspended"
            and operation(a) == waiting
        ),
        "the sync operation waiting at the Suspended Migration",
    )
    assert kubectl("get", "configmap", "after-promotion", "-n", namespace, check=False).returncode
    shown = resource_health(held, "Migration", "dev-to-pre")["message"]
    listed = argocd.cli(
        "app", "actions", "list", app, "--kind", "Migration", "--resource-name", "dev-to-pre"
    ).stdout
    assert "approve" in listed, listed

    # Argo CD RBAC decides who may: the release manager's role grants only ``approve``.
    refused = argocd.cli(
        "app",
        "actions",
        "run",
        app,
        "backup-now",
        "--kind",
        "Environment",
        "--resource-name",
        "dev",
        user=RELEASE_MANAGER,
        check=False,
    )
    assert refused.returncode != 0 and "permission denied" in refused.stderr, refused.stderr
    argocd.cli(
        "app",
        "actions",
        "run",
        app,
        "approve",
        "--kind",
        "Migration",
        "--resource-name",
        "dev-to-pre",
        "--namespace",
        namespace,
        user=RELEASE_MANAGER,
    )
    spec = kubectl.json("get", "migration", "dev-to-pre", "-n", namespace)["spec"]
    digest = spec["approval"]["planDigest"]
    assert shown.endswith(digest) and spec["approval"]["required"] is True
    done = argocd.wait_view(
        app,
        lambda a: (
            health(a) == "Healthy"
            and synced(a)
            and operation(a) == ("Succeeded", "successfully synced (all tasks run)")
        ),
        "Healthy, the sync operation over",
    )
    assert resource_health(done, "Migration", "dev-to-pre")["status"] == "Healthy"
    kubectl("get", "configmap", "after-promotion", "-n", namespace)  # wave 2 went on
    final = kubectl.json("get", "migration", "dev-to-pre", "-n", namespace)
    assert final["status"]["phase"] == "Succeeded"
    assert final["spec"]["approval"]["planDigest"] == digest  # self-heal left it


SCHEDULE = """
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {name: nightly}
spec:
  environment: dev
  schedule: "0 0 1 1 *"
  immediate: true
"""


def test_scheduled_backups_are_not_argo_cd_s_and_survive_pruning_their_schedule(
    argocd: ArgoCD,
    app: str,
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    store = tmp_path / "store"
    repo = GitRepo(tmp_path)
    env = wave(environment("dev", "development", sqlite_envs["dev"], store=str(store)), 0)
    repo.commit("dev and its nightly backups", {"env.yaml": env, "schedule.yaml": SCHEDULE})
    kubectl("apply", "-f", "-", input=application(app, repo, namespace))

    def completed_backups() -> list[dict[str, Any]]:
        items = kubectl.json("get", "backups", "-n", namespace)["items"]
        return [b for b in items if (b.get("status") or {}).get("phase") == "Completed"]

    (backup,) = wait_for(completed_backups, timeout=120, description="the immediate backup")
    name = backup["metadata"]["name"]
    assert not any(
        k.startswith("argocd.argoproj.io/") for k in backup["metadata"].get("annotations") or {}
    )
    argocd.refresh(app)
    steady = argocd.wait_view(
        app,
        lambda a: (
            health(a) == "Healthy"
            and synced(a)
            and resource_health(a, "BackupSchedule", "nightly").get("status") == "Healthy"
        ),
        "Healthy and Synced beside the scheduled Backup",
    )
    tracked = {(r["kind"], r["name"]) for r in steady["status"]["resources"]}
    assert tracked == {("Environment", "dev"), ("BackupSchedule", "nightly")}
    manual = backup_now(argocd, app, kubectl, namespace, before={name})

    # Suspended from Argo CD (the action): Argo CD's health says so, Git is not involved.
    argocd.cli(
        "app",
        "actions",
        "run",
        app,
        "suspend",
        "--kind",
        "BackupSchedule",
        "--resource-name",
        "nightly",
    )
    argocd.wait_view(
        app,
        lambda a: (
            resource_health(a, "BackupSchedule", "nightly").get("status") == "Suspended"
            and health(a) == "Suspended"
            and synced(a)
        ),
        "the schedule Suspended, the Application still Synced",
    )

    repo.commit("stop the nightly backups", {"schedule.yaml": None})
    argocd.refresh(app)
    wait_for(
        lambda: (
            kubectl("get", "backupschedule", "nightly", "-n", namespace, check=False).returncode
            != 0
        ),
        timeout=120,
        description="the BackupSchedule pruned",
    )
    argocd.wait_view(app, lambda a: synced(a) and health(a) == "Healthy", "Synced after prune")
    for survivor in (name, manual):
        kept = kubectl.json("get", "backup", survivor, "-n", namespace)
        assert kept["status"]["phase"] == "Completed", survivor
    assert any(store.rglob("*")), "the backup's artifact is gone"


def backup_now(argocd: ArgoCD, app: str, kubectl: Kubectl, namespace: str, before: set[str]) -> str:
    """Run the Environment's ``backup-now`` action through Argo CD's API; return the name
    of the Backup it created, once Completed and checked to be no resource of ``app``."""
    argocd.cli(
        "app",
        "actions",
        "run",
        app,
        "backup-now",
        "--kind",
        "Environment",
        "--resource-name",
        "dev",
    )

    def created() -> dict[str, Any] | None:
        for item in kubectl.json("get", "backups", "-n", namespace)["items"]:
            done = (item.get("status") or {}).get("phase") == "Completed"
            if item["metadata"]["name"] not in before and done:
                return dict(item)
        return None

    backup = wait_for(created, timeout=120, description="the backup-now Backup Completed")
    meta = backup["metadata"]
    assert meta["name"].startswith("dev-") and backup["spec"]["reason"] == "manual"
    assert meta["annotations"]["ferry.dev/created-by"] == "argocd-action-backup-now"
    assert "ownerReferences" not in meta
    marks = {**(meta.get("annotations") or {}), **(meta.get("labels") or {})}
    assert not [k for k in marks if k.startswith("argocd.argoproj.io/")], marks
    assert "app.kubernetes.io/instance" not in marks, marks
    argocd.refresh(app)
    view = argocd.wait_view(app, synced, "Synced beside the backup-now Backup")
    assert "Backup" not in {r["kind"] for r in view["status"]["resources"]}
    return str(meta["name"])


def approvals_policy(
    kubectl: Kubectl, namespace: str, name: str, users: list[str]
) -> list[dict[str, Any]]:
    """The chart's approvers policy (scoped to ``namespace``) with ``users`` as approvers;
    returns what was applied."""
    docs = of_kind(
        render(
            {
                "fullnameOverride": name,
                "watchNamespaces": [namespace],
                "approvals": {"policy": {"enabled": True}, "approvers": {"users": users}},
            }
        ),
        *POLICY_KINDS,
    )
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    return docs


def run_approve(argocd: ArgoCD, app: str, namespace: str) -> subprocess.CompletedProcess[str]:
    return argocd.cli(
        "app",
        "actions",
        "run",
        app,
        "approve",
        "--kind",
        "Migration",
        "--resource-name",
        "dev-to-pre",
        "--namespace",
        namespace,
        check=False,
    )


def test_with_the_approvers_policy_argo_cd_s_service_account_must_be_an_approver(
    argocd: ArgoCD,
    app: str,
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    """Argo CD's API server applies an action with its own Kubernetes identity, so the
    chart's approvers policy judges ``argocd-server``'s service account, not the person
    who clicked: it must be listed as an approver (and who may click is Argo CD RBAC)."""
    server = f"system:serviceaccount:{ARGOCD_NAMESPACE}:argocd-server"
    name = f"ferry-{secrets.token_hex(3)}"
    docs = approvals_policy(kubectl, namespace, name, ["someone-else"])
    try:
        repo = GitRepo(tmp_path)
        envs = "---".join(
            wave(environment(env, stage, sqlite_envs[env]), 0)
            for env, stage in (("dev", "development"), ("pre", "pre-release"))
        )
        repo.commit("a gated promotion", {"envs.yaml": envs, "m.yaml": gated_migration()})
        kubectl("apply", "-f", "-", input=application(app, repo, namespace))
        argocd.wait_view(
            app,
            lambda a: resource_health(a, "Migration", "dev-to-pre").get("status") == "Suspended",
            "the Migration Suspended in Argo CD",
        )

        # The policy reaches the admission plugins after a moment: wait, with server-side
        # dry runs as argocd-server (admitted like real requests, never stored), until it
        # is in force, then run the action for real.
        def admits_server() -> bool:
            body = json.dumps({"spec": {"approval": {"planDigest": "sha256:" + "b" * 64}}})
            args = ("patch", "migration", "dev-to-pre", "-n", namespace, "--type=merge", "-p")
            dry = kubectl(*args, body, "--dry-run=server", f"--as={server}", check=False)
            return dry.returncode == 0

        wait_for(lambda: not admits_server(), timeout=60, description="the policy in force")
        refused = run_approve(argocd, app, namespace)
        assert refused.returncode != 0
        assert f"{server} may not set or change spec.approval.planDigest" in refused.stderr
        spec = kubectl.json("get", "migration", "dev-to-pre", "-n", namespace)["spec"]
        assert "planDigest" not in spec["approval"]

        approvals_policy(kubectl, namespace, name, [server])
        wait_for(admits_server, timeout=60, description="argocd-server listed as an approver")
        approved = run_approve(argocd, app, namespace)
        assert approved.returncode == 0, approved.stderr
        got = kubectl.json("get", "migration", "dev-to-pre", "-n", namespace)["metadata"]
        assert got["annotations"]["ferry.dev/approved-by"] == server
        argocd.wait_view(app, lambda a: health(a) == "Healthy" and synced(a), "Healthy")
    finally:
        for doc in docs:
            kind, doc_name = doc["kind"].lower(), doc["metadata"]["name"]
            kubectl("delete", kind, doc_name, "--ignore-not-found", check=False)


def test_a_digest_committed_while_a_later_wave_waits_needs_the_operation_ended(
    argocd: ArgoCD,
    app: str,
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    """With a later wave, the sync operation waits at the Suspended Migration, and Argo CD
    starts no new sync while one runs: the commit carrying the digest is not applied
    until that operation ends (``argocd app terminate-op``), or approve with the action."""
    repo = GitRepo(tmp_path)
    envs = "---".join(
        wave(environment(env, stage, sqlite_envs[env]), 0)
        for env, stage in (("dev", "development"), ("pre", "pre-release"))
    )
    files = {"envs.yaml": envs, "m.yaml": gated_migration(), "after.yaml": AFTER_PROMOTION}
    repo.commit("a gated promotion", files)
    kubectl("apply", "-f", "-", input=application(app, repo, namespace))
    waiting = ("Running", "waiting for healthy state of ferry.dev/Migration/dev-to-pre")
    argocd.wait_view(app, lambda a: operation(a) == waiting, "the sync waiting")
    digest = status(kubectl, "migration", namespace, "dev-to-pre")["planDigest"]
    approved = repo.commit("approve dev-to-pre", {"m.yaml": gated_migration(digest)})
    argocd.refresh(app)
    argocd.wait_view(
        app,
        lambda a: a["status"].get("sync", {}).get("revision") == approved and not synced(a),
        "Argo CD seeing the approving commit, OutOfSync",
    )
    time.sleep(20)  # several refreshes and resyncs: nothing applies the new commit
    still = argocd.view(app)
    assert operation(still) == waiting
    spec = kubectl.json("get", "migration", "dev-to-pre", "-n", namespace)["spec"]
    assert "planDigest" not in spec["approval"]

    argocd.cli("app", "terminate-op", app)
    done = argocd.wait_view(app, lambda a: health(a) == "Healthy" and synced(a), "Healthy")
    assert resource_health(done, "Migration", "dev-to-pre")["status"] == "Healthy"
    kubectl("get", "configmap", "after-promotion", "-n", namespace)


def test_with_the_approvers_policy_a_digest_from_git_needs_the_controller_as_approver(
    argocd: ArgoCD,
    app: str,
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    """A digest committed to Git is applied by the application controller, with its own
    service account: with the approvers policy on, the sync fails with the policy's
    message until that account is an approver."""
    controller = f"system:serviceaccount:{ARGOCD_NAMESPACE}:argocd-application-controller"
    name = f"ferry-{secrets.token_hex(3)}"
    docs = approvals_policy(kubectl, namespace, name, ["someone-else"])
    try:
        repo = GitRepo(tmp_path)
        envs = "---".join(
            wave(environment(env, stage, sqlite_envs[env]), 0)
            for env, stage in (("dev", "development"), ("pre", "pre-release"))
        )
        repo.commit("a gated promotion", {"envs.yaml": envs, "m.yaml": gated_migration()})
        kubectl("apply", "-f", "-", input=application(app, repo, namespace))
        argocd.wait_view(
            app,
            lambda a: resource_health(a, "Migration", "dev-to-pre").get("status") == "Suspended",
            "the Migration Suspended in Argo CD",
        )
        digest = status(kubectl, "migration", namespace, "dev-to-pre")["planDigest"]
        refusal = f"{controller} may not set or change spec.approval.planDigest"
        argocd.commit_and_wait(
            app,
            repo,
            "approve dev-to-pre",
            {"m.yaml": gated_migration(digest)},
            lambda a: refusal in operation(a)[1],
            "the sync refused",
        )
        spec = kubectl.json("get", "migration", "dev-to-pre", "-n", namespace)["spec"]
        assert "planDigest" not in spec["approval"]

        approvals_policy(kubectl, namespace, name, [controller])

        def admits_controller() -> bool:
            body = json.dumps({"spec": {"approval": {"planDigest": digest}}})
            args = ("patch", "migration", "dev-to-pre", "-n", namespace, "--type=merge", "-p")
            dry = kubectl(*args, body, "--dry-run=server", f"--as={controller}", check=False)
            return dry.returncode == 0

        wait_for(admits_controller, timeout=60, description="the controller an approver")
        argocd.cli("app", "terminate-op", app, check=False)  # a retry may still be running
        argocd.cli("app", "sync", app, "--async")
        argocd.wait_view(app, lambda a: health(a) == "Healthy" and synced(a), "Healthy")
        got = kubectl.json("get", "migration", "dev-to-pre", "-n", namespace)["metadata"]
        assert got["annotations"]["ferry.dev/approved-by"] == controller
    finally:
        for doc in docs:
            kind, doc_name = doc["kind"].lower(), doc["metadata"]["name"]
            kubectl("delete", kind, doc_name, "--ignore-not-found", check=False)


WEB = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "registry.invalid/web:1"}]
"""
#: WEB whose pods stay (Terminating) until the test lets them go: without a kubelet a
#: Pending pod is gone the moment it is deleted, so a quiesce could end before Argo CD's
#: self-heal reacts; on a real node pods take their grace period to stop.
HELD_POD = "    metadata: {labels: {app: web}}\n"
WEB_HELD = WEB.replace(
    HELD_POD, "    metadata: {labels: {app: web}, finalizers: [ferry.test/held]}\n"
)
IGNORE_REPLICAS = """  ignoreDifferences:
  - {group: apps, kind: Deployment, name: web, jsonPointers: [/spec/replicas]}
"""


#: How the Application treats the replica count (docs/argocd.md, "The application's
#: replica count"): self-heal alone; plus ignoreDifferences on /spec/replicas; plus
#: RespectIgnoreDifferences=true, which a sync from a new commit needs too.
REPLICA_MODES = ("self-heal-only", "ignore-differences", "respect-ignore-differences")


@pytest.mark.parametrize("mode", REPLICA_MODES)
def test_the_replica_count_is_left_to_ferry_only_with_ignore_differences(
    argocd: ArgoCD,
    app: str,
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    ferry_crds: list[str],
    sqlite_envs: dict[str, str],
    tmp_path: Path,
    mode: str,
) -> None:
    """docs/argocd.md, "The application's replica count": with self-heal alone, Argo CD
    puts a quiesced workload's replicas back, so the quiesce times out and nothing is
    written; `ignoreDifferences` on `/spec/replicas` stops that, but a sync from a new
    commit during the quiesce still writes Git's count over Ferry's zero unless the
    Application also has `RespectIgnoreDifferences=true`."""
    with _web_site(control_plane, namespace, sqlite_envs, tmp_path, 45) as (op, envs):
        repo = GitRepo(tmp_path)
        web = WEB_HELD if mode == "self-heal-only" else WEB
        repo.commit("an application and its environments", {"web.yaml": web, "envs.yaml": envs})
        spec = application(app, repo, namespace)
        if mode != "self-heal-only":
            spec = spec.replace("  syncPolicy:\n", IGNORE_REPLICAS + "  syncPolicy:\n")
        if mode == "respect-ignore-differences":
            spec += "    syncOptions: [RespectIgnoreDifferences=true]\n"
        # Synced (its pods stay Pending here: no node), then a promotion into pre; the
        # Migration is applied by hand, so no sync wave waits on the Deployment's health.
        _synced_then_promote(argocd, app, kubectl, namespace, spec, 3, "synced from Git")
        if mode == "self-heal-only":
            try:
                _self_heal_undoes_the_quiesce(kubectl, namespace, sqlite_envs["pre"])
            finally:
                _let_pods_go(kubectl, namespace, app)
        else:
            _new_commit_during_the_quiesce(argocd, app, repo, kubectl, namespace, op, mode)


def _synced_then_promote(
    argocd: ArgoCD, app: str, kubectl: Kubectl, namespace: str, spec: str, replicas: int, what: str
) -> None:
    """Create the Application ``spec``; once it is Synced and the Deployment has
    ``replicas``, apply the promotion ``release`` from dev into pre."""
    kubectl("apply", "-f", "-", input=spec)
    argocd.wait_view(app, synced, "the Application Synced")
    wait_for(
        lambda: _replicas(kubectl, namespace) == replicas,
        timeout=90,
        description=f"the Deployment {what}",
    )
    kubectl("apply", "-n", namespace, "-f", "-", input=migration("release", "dev", "pre"))


def _let_pods_go(kubectl: Kubectl, namespace: str, app: str) -> None:
    """Stop Argo CD and the Deployment, then release every held pod, so the namespace can go."""
    kubectl("delete", "application", app, "-n", ARGOCD_NAMESPACE, check=False)
    kubectl("delete", "deployment", "web", "-n", namespace, "--wait=false", check=False)

    def released() -> bool:
        pods = kubectl.json("get", "pods", "-n", namespace)["items"]
        for pod in pods:
            name = pod["metadata"]["name"]
            kubectl.merge_patch(f"pod/{name}", namespace, {"metadata": {"finalizers": None}})
        return not pods

    wait_for(released, timeout=60, description="the held pods gone")


@contextlib.contextmanager
def _web_site(
    control_plane: ControlPlane,
    namespace: str,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
    apply_seconds: int,
) -> Iterator[tuple[Any, str]]:
    """Ferry's operator, its promotions pausing ``apply_seconds`` in their apply (the
    application quiesced meanwhile), and the Environments dev and pre (whose application
    is the Deployment ``web``, checked on a local health server), as YAML for Git."""
    from tests.e2e.operator import Operator
    from tests.e2e.test_application_lifecycle import serve_health

    health_server = serve_health()
    server = next(health_server)
    op = Operator(
        control_plane,
        namespace,
        tmp_path / "op.log",
        env={"FERRY_FAILPOINTS": f"rows:uiSchemas=sleep({apply_seconds})"},
    ).start()
    try:
        application_block = (
            "  application:\n"
            "    workload: {kind: Deployment, name: web}\n"
            "    quiesce: {timeoutSeconds: 45}\n"
            f'    health: {{url: "{server.url}", timeoutSeconds: 10}}\n'
        )
        yield (
            op,
            "---".join(
                wave(doc, 0)
                for doc in (
                    environment("dev", "development", sqlite_envs["dev"]),
                    environment("pre", "pre-release", sqlite_envs["pre"], extra=application_block),
                )
            ),
        )
    finally:
        op.stop()
        health_server.close()


def _paused_in_its_apply(op: Any) -> None:
    wait_for(
        lambda: "failpoint rows:uiSchemas" in op.tail(200),
        timeout=120,
        description="the promotion paused in its apply, the application quiesced",
    )


def _replicas(kubectl: Kubectl, namespace: str) -> int:
    got = kubectl.json("get", "deployment", "web", "-n", namespace)
    return int(got["spec"].get("replicas", 1))


def _ended(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    return wait_for(
        lambda: (
            (s := status(kubectl, "migration", namespace, "release")).get("phase")
            in {"Succeeded", "Failed", "RolledBack"}
            and s
        ),
        timeout=150,
        description="the promotion ended",
    )


def _new_commit_during_the_quiesce(
    argocd: ArgoCD, app: str, repo: GitRepo, kubectl: Kubectl, namespace: str, op: Any, mode: str
) -> None:
    _paused_in_its_apply(op)
    time.sleep(10)  # past Argo CD's self-heal delay: ignoreDifferences keeps the zero
    assert _replicas(kubectl, namespace) == 0
    # A new commit (a new image) while Ferry writes: Argo CD syncs it.
    argocd.commit_and_wait(
        app,
        repo,
        "web 2",
        {"web.yaml": WEB.replace("web:1", "web:2")},
        lambda a: operation(a)[0] == "Succeeded",
        "the new commit synced",
    )
    got = kubectl.json("get", "deployment", "web", "-n", namespace)
    assert got["spec"]["template"]["spec"]["containers"][0]["image"].endswith("web:2")
    assert (
        "failpoint rows:uiSchemas" in op.tail(400)
        and status(kubectl, "migration", namespace, "release").get("phase") == "Applying"
    ), "the promotion left its apply before the sync was seen"
    if mode == "ignore-differences":
        assert got["spec"]["replicas"] == 3  # Git's count, over Ferry's zero, mid-write
        return
    assert got["spec"]["replicas"] == 0
    done = _ended(kubectl, namespace)
    assert done["phase"] == "Succeeded", done
    assert _replicas(kubectl, namespace) == 3


def _self_heal_undoes_the_quiesce(kubectl: Kubectl, namespace: str, pre: str) -> None:
    def put_back_while_quiescing() -> bool:
        phase = status(kubectl, "migration", namespace, "release").get("phase")
        pods = kubectl.json("get", "pods", "-n", namespace)["items"]
        new = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        return phase == "Quiescing" and _replicas(kubectl, namespace) == 3 and len(new) == 3

    # Ferry scaled to zero; Argo CD's self-heal puts Git's 3 back, and the ReplicaSet
    # starts new pods, while Ferry still waits for the old ones to go.
    wait_for(put_back_while_quiescing, timeout=40, description="Argo CD undoing the quiesce")
    done = _ended(kubectl, namespace)
    assert done["phase"] == "Failed", done
    reasons = {c.get("reason") for c in done.get("conditions", [])}
    assert "QuiesceTimedOut" in reasons, done
    assert _replicas(kubectl, namespace) == 3
    ledger = "select count(*) from ferry_migrations where result = 'succeeded'"
    engine = sa.create_engine(pre)
    try:
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("ferry_migrations") or (
                conn.exec_driver_sql(ledger).scalar() == 0
            )
    finally:
        engine.dispose()


HPA = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 4
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
"""


def _hpa_condition(kubectl: Kubectl, namespace: str, kind: str) -> dict[str, Any]:
    got = kubectl.json("get", "hpa", "web", "-n", namespace)
    conditions = got.get("status", {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


def test_an_hpa_leaves_a_quiesced_workload_at_zero(
    argocd: ArgoCD,
    app: str,
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    """docs/argocd.md, the HPA advice: the replica count is left out of Git (the HPA owns
    it), so Argo CD never diffs it. Kubernetes' HPA controller (the control plane's
    kube-controller-manager; no metrics server here, so it acts only on its bounds)
    raises the Deployment to minReplicas, and leaves it alone while Ferry holds it at
    zero: a target at zero replicas disables autoscaling. Ferry then restores the
    count it recorded."""
    with _web_site(control_plane, namespace, sqlite_envs, tmp_path, 30) as (op, envs):
        web = WEB.replace("  replicas: 3\n", "")
        repo = GitRepo(tmp_path)
        repo.commit(
            "web, its HPA, environments", {"web.yaml": web, "hpa.yaml": HPA, "envs.yaml": envs}
        )
        spec = application(app, repo, namespace)
        _synced_then_promote(argocd, app, kubectl, namespace, spec, 2, "raised to minReplicas")
        _paused_in_its_apply(op)
        wait_for(
            lambda: (
                _hpa_condition(kubectl, namespace, "ScalingActive").get("reason")
                == "ScalingDisabled"
            ),
            timeout=40,
            description="the HPA seeing the target at zero",
        )
        time.sleep(16)  # a further HPA sync period (15 s): it still does not scale up
        assert _replicas(kubectl, namespace) == 0
        assert synced(argocd.view(app))
        done = _ended(kubectl, namespace)
        assert done["phase"] == "Succeeded", done
        assert _replicas(kubectl, namespace) == 2
