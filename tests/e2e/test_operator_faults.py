"""Restart safety and failure handling of the operator, with real processes killed."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from controller.commands.migrate import plan_only
from controller.commands.planning import PlanOptions
from tests.db.dbhelpers import dump, rows
from tests.e2e.conftest import Kubectl
from tests.e2e.operator import Operator, handover
from tests.e2e.test_operator import apply_ok, environment, migration, status, wait_phase
from tests.fixtures import nocobase_shape as shape
from tests.harness.cluster import ControlPlane

pytestmark = pytest.mark.e2e
DONE = {"Succeeded", "Failed", "RolledBack"}


def _declare(kubectl: Kubectl, namespace: str, sqlite_envs: dict[str, str], store: Path) -> None:
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", sqlite_envs["dev"])
        + "---"
        + environment("pre", "pre-release", sqlite_envs["pre"], store=str(store)),
    )


def _without_ledger(url: str) -> dict[str, Any]:
    return {k: v for k, v in dump(url).items() if k != "ferry_migrations"}


@pytest.mark.parametrize("kill_at", ["rows:uiSchemas", "committed"])
def test_operator_killed_mid_migration_resumes_and_applies_once(
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    ferry_crds: list[str],
    sqlite_envs: dict[str, str],
    tmp_path: Path,
    kill_at: str,
) -> None:
    before = _without_ledger(sqlite_envs["pre"])
    with handover(control_plane, namespace, tmp_path, kill_at) as ops:
        _declare(kubectl, namespace, sqlite_envs, tmp_path / "backups")
        apply_ok(kubectl, namespace, migration("release", "dev", "pre"))
        ops.wait_paused(kill_at)
        ops.crash()
        if kill_at == "rows:uiSchemas":
            assert _without_ledger(sqlite_envs["pre"]) == before, "a killed migration left changes"
        ops.second.start()
        done = wait_phase(kubectl, namespace, "release", DONE, timeout=90)
        assert done["phase"] == "Succeeded", done
        assert done["backup"]["id"]
    ledger = rows(sqlite_envs["pre"], "ferry_migrations", "id", "result", order="id")
    assert [r[1] for r in ledger] == ["succeeded"], ledger  # applied exactly once
    assert not plan_only(
        sqlite_envs["dev"], sqlite_envs["pre"], PlanOptions()
    ).plan.changes_anything


def test_approved_migration_killed_after_commit_ends_succeeded(
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    ferry_crds: list[str],
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    """After the commit the target has changed, so a new plan has another digest: the
    restarted operator must find the ledger's record, not ask for approval again."""
    with handover(control_plane, namespace, tmp_path, "committed") as ops:
        _declare(kubectl, namespace, sqlite_envs, tmp_path / "backups")
        gated = migration("gated", "dev", "pre", "  approval: {required: true}\n")
        apply_ok(kubectl, namespace, gated)
        waiting = wait_phase(kubectl, namespace, "gated", {"AwaitingApproval"} | DONE)
        assert waiting["phase"] == "AwaitingApproval", waiting
        kubectl.merge_patch(
            "migration/gated",
            namespace,
            {"spec": {"approval": {"required": True, "planDigest": waiting["planDigest"]}}},
            check=True,
        )
        ops.wait_paused("committed")
        ops.crash()
        ops.second.start()
        done = wait_phase(kubectl, namespace, "gated", DONE | {"AwaitingApproval"}, timeout=90)
        assert done["phase"] == "Succeeded", done
        assert "before a restart, as its ledger records" in done["message"], done
    ledger = rows(sqlite_envs["pre"], "ferry_migrations", "id", "result", order="id")
    assert [r[1] for r in ledger] == ["succeeded"], ledger


def test_failing_migration_rolls_back(
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    ferry_crds: list[str],
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    before = _without_ledger(sqlite_envs["pre"])
    op = Operator(
        control_plane, namespace, tmp_path / "op.log", env={"FERRY_FAILPOINTS": "verify=error"}
    ).start()
    try:
        _declare(kubectl, namespace, sqlite_envs, tmp_path / "backups")
        apply_ok(kubectl, namespace, migration("doomed", "dev", "pre"))
        done = wait_phase(kubectl, namespace, "doomed", DONE)
    finally:
        op.stop()
    assert done["phase"] == "RolledBack", done
    assert "injected failure" in done["message"] and done["backup"]["id"]
    assert any(c["type"] == "Stalled" and c["status"] == "True" for c in done["conditions"])
    assert _without_ledger(sqlite_envs["pre"]) == before
    events = kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=doomed",
        "-o",
        "jsonpath={.items[*].reason}",
    ).stdout
    assert "RolledBack" in events


def test_a_failure_after_the_commit_is_a_success_with_a_warning(
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    ferry_crds: list[str],
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    """The migration committed, then the step after it failed (``committed``: where the
    post-migration state is stored). The target holds the new configuration and the
    ledger says succeeded, so the Migration is Succeeded with a warning: never Failed or
    RolledBack, and the ledger is not rewritten."""
    before = _without_ledger(sqlite_envs["pre"])
    op = Operator(
        control_plane, namespace, tmp_path / "op.log", env={"FERRY_FAILPOINTS": "committed=error"}
    ).start()
    try:
        _declare(kubectl, namespace, sqlite_envs, tmp_path / "backups")
        apply_ok(kubectl, namespace, migration("late", "dev", "pre"))
        done = wait_phase(kubectl, namespace, "late", DONE)
    finally:
        op.stop()
    assert done["phase"] == "Succeeded", done
    assert _without_ledger(sqlite_envs["pre"]) != before  # applied
    ledger = rows(sqlite_envs["pre"], "ferry_migrations", "result", order="id")
    assert ledger == [("succeeded",)], ledger
    conditions = {c["type"]: c for c in done["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == "AppliedWithWarnings"
    assert conditions["Warnings"]["status"] == "True"
    assert "injected failure" in conditions["Warnings"]["message"]
    assert done["warnings"] and done["backup"]["id"]
    events = kubectl(
        "get",
        "events",
        "-n",
        namespace,
        "--field-selector",
        "involvedObject.name=late",
        "-o",
        "jsonpath={range .items[*]}{.type}/{.reason} {end}",
    ).stdout.split()
    assert "Warning/AppliedWithWarnings" in events, events
    assert not [e for e in events if e.endswith(("/RolledBack", "/ApplyFailed"))], events


def test_promotion_from_a_git_revision(
    kubectl: Kubectl, namespace: str, operator: Any, sqlite_envs: dict[str, str], tmp_path: Path
) -> None:
    from controller.commands.export import export

    repo = tmp_path / "config-repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=ci@ferry.dev", "-c", "user.name=CI"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    export(sqlite_envs["dev"], repo / "snapshots" / "app", PlanOptions())
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "release 1"], check=True)
    commit = subprocess.run(
        [*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    subprocess.run([*git, "tag", "v1"], check=True)
    _declare(kubectl, namespace, sqlite_envs, tmp_path / "backups")
    apply_ok(
        kubectl,
        namespace,
        f"""
apiVersion: ferry.dev/v1alpha1
kind: Migration
metadata: {{name: from-git}}
spec:
  source: {{git: {{repository: "file://{repo}", revision: v1, path: snapshots/app}}}}
  target: pre
""",
    )
    done = wait_phase(kubectl, namespace, "from-git", DONE)
    assert done["phase"] == "Succeeded", done
    assert done["source"]["commit"] == commit
    apply_ok(
        kubectl,
        namespace,
        f"""
apiVersion: ferry.dev/v1alpha1
kind: Migration
metadata: {{name: missing-revision}}
spec:
  source: {{git: {{repository: "file://{repo}", revision: v404, path: snapshots/app}}}}
  target: pre
""",
    )
    bad = wait_phase(kubectl, namespace, "missing-revision", DONE)
    assert bad["phase"] == "Failed" and "v404" in bad["message"]


def test_environment_on_postgresql(
    kubectl: Kubectl, namespace: str, operator: Any, make_database: Any
) -> None:
    url = make_database("postgresql", "env")
    shape.build(url)
    host_part = url.split("@", 1)[1]
    user, password = url.split("://", 1)[1].split("@", 1)[0].split(":", 1)
    host, rest = host_part.split(":", 1)
    port, database = rest.split("/", 1)
    kubectl(
        "create", "secret", "generic", "pg", "-n", namespace, f"--from-literal=password={password}"
    )
    apply_ok(
        kubectl,
        namespace,
        f"""
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: pg}}
spec:
  stage: production
  allowRunningApplication: true
  database:
    dialect: postgresql
    host: {host}
    port: {port}
    name: {database}
    user: {user}
    passwordFrom: {{secretKeyRef: {{name: pg, key: password}}}}
""",
    )
    kubectl("wait", "--for=condition=Ready", "environment/pg", "-n", namespace, "--timeout=60s")
    got = status(kubectl, "environment", namespace, "pg")
    assert got["dialect"] == "postgresql" and got["serverVersion"].startswith("15")
    shown = kubectl("get", "environment", "pg", "-n", namespace, "-o", "yaml").stdout
    assert password not in shown + operator.tail(400)
