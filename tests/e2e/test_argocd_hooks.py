"""Migrations as Argo CD ``PreSync`` hooks, run by the real Argo CD (docs/argocd.md,
"Migrations as PreSync hooks").

Argo CD (:mod:`tests.harness.argocd`) syncs a local Git repository whose Migration is a
``PreSync`` hook into the test's namespace, where Ferry's operator runs. A hook's state
is its health (Ferry's checks from ``argocd/argocd-cm.yaml``): Progressing or Suspended
holds the sync operation, Healthy lets it go on, Degraded fails it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl
from tests.e2e.test_argocd_real import app, argocd  # noqa: F401  (the shared fixtures)
from tests.e2e.test_operator import environment, migration, status, wait_phase
from tests.harness.argocd import ArgoCD, GitRepo, application, operation, operation_revision
from tests.harness.cluster import wait_for

pytestmark = pytest.mark.e2e

#: Something of the Sync phase: it is applied only once every PreSync hook succeeded.
CONFIG = """
apiVersion: v1
kind: ConfigMap
metadata: {name: app-config}
data: {version: "VERSION"}
"""
RUNNING = ("Running", "waiting for completion of hook ferry.dev/Migration/release-1")


def held(app_: dict[str, Any]) -> bool:
    return operation(app_) == RUNNING


def config(version: int) -> str:
    return CONFIG.replace("VERSION", str(version))


def hook(name: str, source: str, target: str, delete_policy: str = "") -> str:
    """A gated Migration annotated as a PreSync hook (and with ``delete_policy``)."""
    annotations = "argocd.argoproj.io/hook: PreSync"
    if delete_policy:
        annotations += f", argocd.argoproj.io/hook-delete-policy: {delete_policy}"
    doc = migration(name, source, target, "  approval: {required: true}\n")
    return doc.replace(
        f"metadata: {{name: {name}}}", f"metadata: {{name: {name}, annotations: {{{annotations}}}}}"
    )


def config_version(kubectl: Kubectl, namespace: str) -> str | None:
    got = kubectl("get", "configmap", "app-config", "-n", namespace, "-o", "json", check=False)
    return json.loads(got.stdout)["data"]["version"] if got.returncode == 0 else None


def uid(kubectl: Kubectl, namespace: str, name: str) -> str:
    return str(kubectl.json("get", "migration", name, "-n", namespace)["metadata"]["uid"])


def approve(kubectl: Kubectl, namespace: str, name: str) -> str:
    """Approve ``name`` with the digest it shows (as the ``approve`` action does)."""
    digest = str(wait_phase(kubectl, namespace, name, {"AwaitingApproval"}, 120)["planDigest"])
    patch = {"spec": {"approval": {"planDigest": digest}}}
    kubectl.merge_patch(f"migration/{name}", namespace, patch, check=True)
    return digest


def terminate_deletes_the_waiting_hook(
    cd: ArgoCD, name: str, kubectl: Kubectl, namespace: str
) -> None:
    def terminated() -> bool:
        phase, message = operation(cd.view(name))
        if phase == "Running":  # again if an automated retry started meanwhile
            cd.cli("app", "terminate-op", name, check=False)
        return phase == "Failed" and message.startswith("Operation terminated")

    wait_for(terminated, timeout=120, interval=3, description="the operation terminated")
    wait_for(
        lambda: kubectl("get", "migration", "release-1", "-n", namespace, check=False).returncode,
        timeout=60,
        description="release-1 deleted by terminate-op",
    )


def hook_result(app_: dict[str, Any], name: str) -> dict[str, Any]:
    """The sync result Argo CD recorded for the hook ``name`` (its phase and message)."""
    result = (app_.get("status", {}).get("operationState") or {}).get("syncResult") or {}
    for res in result.get("resources") or []:
        if res.get("kind") == "Migration" and res.get("name") == name:
            return dict(res)
    return {}


def test_a_presync_migration_runs_before_the_sync_and_its_delete_policy_decides_reruns(
    argocd: ArgoCD,  # noqa: F811
    app: str,  # noqa: F811
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    repo = GitRepo(tmp_path)
    repo.commit("release 1", {"cm.yaml": config(1), "m.yaml": hook("release-1", "dev", "pre")})
    kubectl("apply", "-f", "-", input=application(app, repo, namespace))

    # PreSync runs before anything else of the sync: without its Environments (managed
    # elsewhere) the Migration waits, Pending, and holds the whole operation.
    argocd.wait_view(app, held, "the sync held by the hook")
    assert wait_phase(kubectl, namespace, "release-1", {"Pending"})["phase"] == "Pending"
    envs = "---".join(
        environment(env, stage, sqlite_envs[env], accepts=accepts)
        for env, stage, accepts in (
            ("dev", "development", ""),
            ("pre", "pre-release", ""),
            ("prod", "production", "pre"),
        )
    )
    kubectl("apply", "-n", namespace, "-f", "-", input=envs)
    # Awaiting approval (Suspended) still holds it: the Sync phase has not started.
    wait_phase(kubectl, namespace, "release-1", {"AwaitingApproval"}, 120)
    assert held(argocd.view(app))
    assert config_version(kubectl, namespace) is None
    approve(kubectl, namespace, "release-1")
    argocd.wait_view(
        app,
        lambda a: operation(a)[0] == "Succeeded" and config_version(kubectl, namespace) == "1",
        "the Sync phase applied after the hook",
    )
    assert status(kubectl, "migration", namespace, "release-1")["phase"] == "Succeeded"
    first = uid(kubectl, namespace, "release-1")

    # No delete policy means BeforeHookCreation: the next sync (any new commit) deletes
    # the Migration and creates it again, so the promotion runs again (here it waits for
    # approval again, holding that sync).
    argocd.commit_and_wait(app, repo, "config 2", {"cm.yaml": config(2)}, held, "held")
    wait_for(  # deleted, then created again: absent for a moment
        lambda: uid(kubectl, namespace, "release-1") != first,
        timeout=60,
        description="release-1 created again",
    )
    assert wait_phase(kubectl, namespace, "release-1", {"AwaitingApproval"})
    assert config_version(kubectl, namespace) == "1"
    # Ending that operation deletes the hook it waits for (the Migration, unapplied).
    terminate_deletes_the_waiting_hook(argocd, app, kubectl, namespace)

    # HookFailed: a Migration that succeeded stays, and later syncs re-apply it unchanged,
    # which counts as done at once: it is not run again.
    kept = hook("release-1", "dev", "pre", "HookFailed")
    revision = repo.commit("keep release-1", {"m.yaml": kept, "cm.yaml": config(3)})
    argocd.refresh(app)
    approve(kubectl, namespace, "release-1")
    argocd.wait_view(
        app,
        lambda a: operation(a)[0] == "Succeeded" and operation_revision(a) == revision,
        "synced",
    )
    assert config_version(kubectl, namespace) == "3"
    third = uid(kubectl, namespace, "release-1")
    argocd.commit_and_wait(
        app,
        repo,
        "config 4",
        {"cm.yaml": config(4)},
        lambda a: operation(a)[0] == "Succeeded",
        "synced",
    )
    assert uid(kubectl, namespace, "release-1") == third
    assert status(kubectl, "migration", namespace, "release-1")["phase"] == "Succeeded"
    assert config_version(kubectl, namespace) == "4"

    # A failing hook Migration fails the sync: the Sync phase is not applied and Argo CD
    # records Ferry's reason. A failed sync deletes every hook with HookFailed, also the
    # release-1 that succeeded, and the automated retry creates it again: it runs again.
    refused = hook("release-2", "dev", "prod", "HookSucceeded").replace(
        "  approval: {required: true}\n", ""
    )
    failed = argocd.commit_and_wait(
        app,
        repo,
        "release 2",
        {"m2.yaml": refused, "cm.yaml": config(5)},
        lambda a: hook_result(a, "release-2").get("hookPhase") == "Failed",
        "the hook failed",
    )
    result = hook_result(failed, "release-2")
    assert "accepts promotions only from pre" in result["message"], result
    wait_for(
        lambda: uid(kubectl, namespace, "release-1") != third,
        timeout=60,
        description="release-1 created again",
    )
    wait_phase(kubectl, namespace, "release-1", {"AwaitingApproval"}, 120)
    retry = argocd.wait_view(
        app,
        lambda a: (
            operation(a)[0] == "Running"
            and hook_result(a, "release-1").get("hookPhase") == "Running"
        ),
        "the retry waiting for release-1 again",
    )
    state = retry["status"]["operationState"]
    assert state.get("retryCount", 0) >= 1  # a retry of the failed attempt, not a new sync
    assert state["operation"]["retry"]["limit"] == 5  # Argo CD 3.x's automated default
    assert config_version(kubectl, namespace) == "4"
    terminate_deletes_the_waiting_hook(argocd, app, kubectl, namespace)

    # HookSucceeded: the Migration is deleted as soon as it succeeded.
    once = hook("release-3", "dev", "pre", "HookSucceeded").replace(
        "  approval: {required: true}\n", ""
    )
    argocd.commit_and_wait(
        app,
        repo,
        "release 3 alone",
        {"m.yaml": None, "m2.yaml": None, "m3.yaml": once, "cm.yaml": config(6)},
        lambda a: operation(a)[0] == "Succeeded",
        "synced",
    )
    assert config_version(kubectl, namespace) == "6"
    gone = kubectl("get", "migration", "release-3", "-n", namespace, check=False)
    assert gone.returncode != 0, gone.stdout
    # Hooks are not pruned: the failed release-2, its file gone from Git, stays.
    assert status(kubectl, "migration", namespace, "release-2")["phase"] == "Failed"
