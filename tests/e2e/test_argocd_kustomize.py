"""The example GitOps repository (docs/examples/gitops-repo), synced by the real Argo CD.

Its layout is kustomize's (a root kustomization with ``environments/`` and
``migrations/``, each setting its sync wave with ``commonAnnotations``), so the repo
server renders it with the ``kustomize`` binary ``hack/argocd/build.sh`` builds beside
Argo CD. The repository is copied as it is into a local Git repository; the
Application is the example's own ``argocd/application.yaml`` with only the repository
URL (and name) changed.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e import main_flows
from tests.e2e.conftest import Kubectl
from tests.e2e.test_argocd_real import argocd  # noqa: F401  (the shared fixture)
from tests.harness.argocd import ARGOCD_NAMESPACE, ArgoCD, GitRepo, operation, resource_health
from tests.harness.cluster import REPO_ROOT, ControlPlane, wait_for
from tests.harness.dbservers import RunningServer

pytestmark = pytest.mark.e2e
EXAMPLE = REPO_ROOT / "docs" / "examples" / "gitops-repo"
#: The namespace the example's kustomization puts everything in.
NAMESPACE = "nocobase"
ENVIRONMENTS = ("development", "pre-release", "production")
MIGRATION = "development-to-pre-release-3f6c2a9d81b0"


@pytest.fixture
def example_namespace(kubectl: Kubectl) -> Iterator[str]:
    """The example's namespace (its Application has ``CreateNamespace=false``)."""
    kubectl("create", "namespace", NAMESPACE)
    yield NAMESPACE
    kubectl("delete", "application", "gitops-example", "-n", ARGOCD_NAMESPACE, check=False)
    kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def example_application(repo: GitRepo) -> dict[str, Any]:
    app: dict[str, Any] = yaml.safe_load((EXAMPLE / "argocd" / "application.yaml").read_text())
    app["metadata"]["name"] = "gitops-example"
    app["spec"]["source"]["repoURL"] = repo.url
    return app


def rendered(argocd_: ArgoCD, name: str) -> list[dict[str, Any]]:
    """The manifests Argo CD's repo server generated from Git."""
    out = argocd_.cli("app", "manifests", name, "--source", "git").stdout
    docs = [doc for doc in yaml.safe_load_all(out) if doc]
    for doc in docs:  # Argo CD's own tracking annotation, added to what it applies
        doc["metadata"]["annotations"].pop("argocd.argoproj.io/tracking-id")
    return docs


def kustomize_build(bin_dir: Path, tree: Path) -> list[dict[str, Any]]:
    out = subprocess.run(
        [str(bin_dir / "kustomize"), "build", str(tree)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def key(doc: dict[str, Any]) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def test_the_example_repository_syncs_in_its_waves(
    argocd: ArgoCD,  # noqa: F811
    kubectl: Kubectl,
    control_plane: ControlPlane,
    ferry_crds: list[str],
    example_namespace: str,
    postgres_server: RunningServer,
    tmp_path: Path,
) -> None:
    from tests.e2e.operator import Operator

    repo = GitRepo(tmp_path)
    shutil.copytree(EXAMPLE, repo.work, dirs_exist_ok=True)
    repo.commit("the example repository", {})
    op = Operator(control_plane, example_namespace, tmp_path / "op.log").start()
    try:
        kubectl("apply", "-f", "-", input=yaml.safe_dump(example_application(repo)))
        # Rendered by the repo server's kustomize, exactly as kustomize renders it here.
        assert argocd.bin_dir is not None
        got = wait_for(
            lambda: rendered(argocd, "gitops-example"), timeout=120, description="manifests"
        )
        want = kustomize_build(argocd.bin_dir, EXAMPLE)
        assert sorted(map(key, got)) == sorted(map(key, want))
        assert sorted(got, key=key) == sorted(want, key=key)
        waves = {key(d): d["metadata"]["annotations"]["argocd.argoproj.io/sync-wave"] for d in got}
        assert waves.pop(("Migration", MIGRATION)) == "1"
        assert set(waves.values()) == {"-1"}, waves

        # Wave -1 first. Without their database Secrets the Environments are Degraded
        # (Stalled): the sync attempt fails there, and the Migration of wave 1 is not
        # applied; the automated sync retries.
        argocd.wait_view(
            "gitops-example",
            lambda a: (
                resource_health(a, "Environment", "pre-release").get("status") == "Degraded"
                and "one or more synchronization tasks completed unsuccessfully" in operation(a)[1]
            ),
            "the sync failed at wave -1",
        )
        gone = kubectl("get", "migration", MIGRATION, "-n", example_namespace, check=False)
        assert gone.returncode != 0, gone.stdout
        gone = kubectl("get", "migration", MIGRATION, "-n", example_namespace, check=False)
        assert gone.returncode != 0

        # The Secrets (from a secret manager in real life), on real PostgreSQL databases:
        # the Environments become Ready, then Argo CD applies the Migration.
        _database_secrets(kubectl, example_namespace, postgres_server)
        wait_for(
            lambda: (
                kubectl(
                    "get", "migration", MIGRATION, "-n", example_namespace, check=False
                ).returncode
                == 0
            ),
            timeout=240,
            description="the Migration applied in wave 1 by a retry",
        )
        for env in ENVIRONMENTS:
            got_env = kubectl.json("get", "environment", env, "-n", example_namespace)
            ready = {c["type"]: c["status"] for c in got_env["status"]["conditions"]}
            assert ready["Ready"] == "True", got_env["status"]
        applied = kubectl.json("get", "migration", MIGRATION, "-n", example_namespace)
        annotations = applied["metadata"]["annotations"]
        assert annotations["argocd.argoproj.io/sync-options"] == "Prune=false"
    finally:
        op.stop()


def _database_secrets(kubectl: Kubectl, namespace: str, server: RunningServer) -> None:
    urls, _ = main_flows.build_databases(server, lambda url: url)
    secrets = [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{env}-db", "namespace": namespace},
            "stringData": {"url": urls[name]},
        }
        for env, name in zip(ENVIRONMENTS, ("dev", "pre", "prod"), strict=True)
    ]
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(secrets))
