"""Real statuses of every kind, for the Argo CD health checks in ``argocd/health/``.

The operator is driven into each state a health check distinguishes (an Environment
Ready, Stalled, unreachable; a Migration awaiting approval, succeeded, failed,
rolled back, pending; Backups, Restores and BackupSchedules), and each object is
read back from the API server.

``FERRY_RECORD_FIXTURES=1`` writes them to ``tests/unit/fixtures/argocd/*.json``,
which ``tests/unit/test_argocd_health.py`` runs the Lua on. Only two things are
rewritten before writing: the test's random namespace becomes ``ferry`` and its
temporary directory ``/var/lib/ferry``; ``managedFields`` and kubectl's
last-applied annotation are dropped. Nothing else is edited, and the objects hold
no secrets (SQLite URLs, no credentials). Without the variable the test compares:
the live object must have the stored fixture's shape (phase, conditions' type,
status and reason, generations) and get the same health from the Lua.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Kubectl
from tests.e2e.operator import Operator
from tests.e2e.test_operator import apply_ok, environment, migration, release_chain, status
from tests.harness.cluster import REPO_ROOT, ControlPlane, wait_for
from tests.unit.test_argocd_health import run_action, run_health

pytestmark = pytest.mark.e2e
RECORD = os.environ.get("FERRY_RECORD_FIXTURES") == "1"
FIXTURES = REPO_ROOT / "tests" / "unit" / "fixtures" / "argocd"
FIXTURE_NAMESPACE = "ferry"
FIXTURE_DIR = "/var/lib/ferry"


def sanitize(obj: dict[str, Any], namespace: str, tmp_path: Path) -> dict[str, Any]:
    meta = obj.get("metadata") or {}
    meta.pop("managedFields", None)
    annotations = meta.get("annotations") or {}
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if not annotations:
        meta.pop("annotations", None)
    text = json.dumps(obj).replace(str(tmp_path), FIXTURE_DIR)
    text = text.replace(namespace, FIXTURE_NAMESPACE)
    cleaned: dict[str, Any] = json.loads(text)
    return cleaned


def shape_of(obj: dict[str, Any]) -> dict[str, Any]:
    """What must not change between runs: the parts the health checks read."""
    got = obj.get("status") or {}
    return {
        "kind": obj.get("kind"),
        "generation": (obj.get("metadata") or {}).get("generation"),
        "observedGeneration": got.get("observedGeneration"),
        "phase": got.get("phase"),
        "suspend": (obj.get("spec") or {}).get("suspend"),
        "conditions": sorted(
            (c["type"], c["status"], c["reason"]) for c in got.get("conditions") or []
        ),
    }


def record(
    kubectl: Kubectl, kind: str, namespace: str, name: str, fixture: str, tmp_path: Path
) -> dict[str, Any]:
    """Write (``FERRY_RECORD_FIXTURES=1``) or compare the fixture ``fixture``."""
    live = sanitize(kubectl.json("get", kind, name, "-n", namespace), namespace, tmp_path)
    path = FIXTURES / f"{fixture}.json"
    if RECORD:
        FIXTURES.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(live, indent=2, sort_keys=True) + "\n")
        return live
    stored = json.loads(path.read_text())
    assert shape_of(live) == shape_of(stored), fixture
    assert run_health(live)["status"] == run_health(stored)["status"], fixture
    return live


def has_condition(got: dict[str, Any], type_: str, value: str, reason: str | None = None) -> bool:
    return any(
        c.get("type") == type_
        and c.get("status") == value
        and (reason is None or c.get("reason") == reason)
        for c in got.get("conditions") or []
    )


def wait_status(
    kubectl: Kubectl, kind: str, namespace: str, name: str, check: Any, what: str
) -> dict[str, Any]:
    wait_for(
        lambda: check(status(kubectl, kind, namespace, name)),
        timeout=90,
        description=f"{kind} {name}: {what}",
    )
    return status(kubectl, kind, namespace, name)


def phase_in(*phases: str) -> Any:
    return lambda got: got.get("phase") in phases


@pytest.fixture
def tidy(kubectl: Kubectl, namespace: str) -> Iterator[None]:
    """Delete Backups and Restores while the operator still runs (finalizers)."""
    yield
    kubectl(
        "delete",
        "restores,backupschedules,backups",
        "--all",
        "-n",
        namespace,
        "--timeout=60s",
        check=False,
    )


def test_environment_statuses(
    kubectl: Kubectl, namespace: str, operator: Any, sqlite_envs: dict[str, str], tmp_path: Path
) -> None:
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", sqlite_envs["dev"])
        + "---"
        + environment(
            "down", "production", "postgresql+psycopg://ferry@127.0.0.1:1/app"
        )  # refused at once: nothing listens on port 1
        + "---\n"
        + """
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {name: no-secret}
spec:
  stage: production
  allowRunningApplication: true
  database: {dialect: postgresql, urlFrom: {secretKeyRef: {name: missing, key: url}}}
""",
    )
    wait_status(
        kubectl,
        "environment",
        namespace,
        "dev",
        lambda s: has_condition(s, "Ready", "True"),
        "Ready",
    )
    record(kubectl, "environment", namespace, "dev", "environment-ready", tmp_path)
    wait_status(
        kubectl,
        "environment",
        namespace,
        "down",
        lambda s: has_condition(s, "Ready", "False", "Unreachable"),
        "Unreachable",
    )
    record(kubectl, "environment", namespace, "down", "environment-unreachable", tmp_path)
    wait_status(
        kubectl,
        "environment",
        namespace,
        "no-secret",
        lambda s: has_condition(s, "Stalled", "True"),
        "Stalled",
    )
    record(kubectl, "environment", namespace, "no-secret", "environment-stalled", tmp_path)


def test_migration_statuses(
    kubectl: Kubectl, namespace: str, operator: Any, sqlite_envs: dict[str, str], tmp_path: Path
) -> None:
    store = tmp_path / "backups"
    apply_ok(kubectl, namespace, release_chain(sqlite_envs, store))
    apply_ok(
        kubectl,
        namespace,
        migration("release-1", "dev", "pre", "  approval: {required: true}\n")
        + "---"
        + migration("skip-pre", "dev", "prod")
        + "---"
        + migration("to-nowhere", "dev", "staging"),
    )
    wait_status(
        kubectl, "migration", namespace, "release-1", phase_in("AwaitingApproval"), "waiting"
    )
    gated = record(
        kubectl, "migration", namespace, "release-1", "migration-awaiting-approval", tmp_path
    )
    assert run_health(gated)["status"] == "Suspended"

    # Approve the way Argo CD's action does: run the Lua, send its spec.approval.
    approved = run_action("Migration", "approve", gated)
    kubectl.merge_patch(
        "migration/release-1",
        namespace,
        {"spec": {"approval": approved["spec"]["approval"]}},
        check=True,
    )
    wait_status(kubectl, "migration", namespace, "release-1", phase_in("Succeeded"), "Succeeded")
    record(kubectl, "migration", namespace, "release-1", "migration-succeeded", tmp_path)

    # A finished Migration is a record: the API server refuses a spec change, so it is
    # never left with an edited spec that does not run (the health check still reads
    # such a Migration, made before the rule existed, as finished: the fixture
    # migration-succeeded-edited was recorded then and stays in the Lua tests).
    refused = kubectl.merge_patch(
        "migration/release-1", namespace, {"spec": {"rules": {"strict": False}}}
    )
    assert refused.returncode != 0 and "is a record" in refused.stderr, refused.stderr
    got = kubectl.json("get", "migration", "release-1", "-n", namespace)
    assert got["metadata"]["generation"] == 2 and got["status"]["phase"] == "Succeeded"

    wait_status(kubectl, "migration", namespace, "skip-pre", phase_in("Failed"), "Failed")
    record(kubectl, "migration", namespace, "skip-pre", "migration-failed", tmp_path)
    wait_status(
        kubectl,
        "migration",
        namespace,
        "to-nowhere",
        lambda s: s.get("phase") == "Pending" and has_condition(s, "Reconciling", "True"),
        "Pending",
    )
    record(kubectl, "migration", namespace, "to-nowhere", "migration-pending", tmp_path)


def test_migration_rolled_back(
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    ferry_crds: list[str],
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    op = Operator(
        control_plane, namespace, tmp_path / "op.log", env={"FERRY_FAILPOINTS": "verify=error"}
    ).start()
    try:
        apply_ok(
            kubectl,
            namespace,
            environment("dev", "development", sqlite_envs["dev"])
            + "---"
            + environment(
                "pre", "pre-release", sqlite_envs["pre"], store=str(tmp_path / "backups")
            ),
        )
        apply_ok(kubectl, namespace, migration("release-2", "dev", "pre"))
        wait_status(
            kubectl, "migration", namespace, "release-2", phase_in("RolledBack"), "RolledBack"
        )
    finally:
        op.stop()
    record(kubectl, "migration", namespace, "release-2", "migration-rolled-back", tmp_path)


def test_migration_rehearsal_failed(
    kubectl: Kubectl, namespace: str, operator: Any, sqlite_envs: dict[str, str], tmp_path: Path
) -> None:
    """spec.rehearsal: Required, and the release fails on the copy of pre (a unique
    index only pre has): Failed with RehearsalFailed and status.rehearsal."""
    from tests.db.dbhelpers import execute

    # the end state breaks pre's unique index: dev adds 'Support' and gives member that
    # title too (whatever order the rows are written in, two rows hold it)
    execute(sqlite_envs["pre"], "create unique index uq_roles_title on roles(title)")
    execute(sqlite_envs["dev"], "update roles set title = 'Support' where name = 'member'")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    rehearsal = f"  rehearsal: {{scratch: {{directory: {scratch}}}}}\n"
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", sqlite_envs["dev"])
        + "---"
        + environment("pre", "pre-release", sqlite_envs["pre"], extra=rehearsal),
    )
    apply_ok(kubectl, namespace, migration("release-3", "dev", "pre", "  rehearsal: Required\n"))
    got = wait_status(
        kubectl, "migration", namespace, "release-3", phase_in("Failed"), "Failed in rehearsal"
    )
    assert has_condition(got, "Stalled", "True", "RehearsalFailed"), got
    assert got["rehearsal"]["outcome"] == "Failed" and list(scratch.iterdir()) == []
    live = record(
        kubectl, "migration", namespace, "release-3", "migration-rehearsal-failed", tmp_path
    )
    assert run_health(live)["message"].startswith("Failed in rehearsal")


def test_backup_restore_schedule_statuses(
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    tidy: None,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    store = tmp_path / "backups"
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", sqlite_envs["dev"], store=str(store))
        + "---"
        + environment("pre", "pre-release", sqlite_envs["pre"]),
    )
    apply_ok(
        kubectl,
        namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata: {name: dev-manual}
spec: {environment: dev}
---
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata: {name: pre-manual}
spec: {environment: pre}
---
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {name: nightly}
spec: {environment: dev, schedule: "0 3 * * *", retention: {keepLast: 7}}
---
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {name: paused}
spec: {environment: dev, schedule: "@daily", suspend: true}
""",
    )
    wait_status(kubectl, "backup", namespace, "dev-manual", phase_in("Completed"), "Completed")
    record(kubectl, "backup", namespace, "dev-manual", "backup-completed", tmp_path)
    wait_status(kubectl, "backup", namespace, "pre-manual", phase_in("Failed"), "Failed")
    record(kubectl, "backup", namespace, "pre-manual", "backup-failed", tmp_path)
    for name, fixture, reason in (
        ("nightly", "backupschedule-scheduled", "Scheduled"),
        ("paused", "backupschedule-suspended", "Suspended"),
    ):
        wait_status(
            kubectl,
            "backupschedule",
            namespace,
            name,
            lambda s, r=reason: has_condition(s, "Ready", "True", r),
            reason,
        )
        record(kubectl, "backupschedule", namespace, name, fixture, tmp_path)

    apply_ok(
        kubectl,
        namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: Restore
metadata: {name: dev-undo}
spec: {backup: dev-manual, tables: [roles]}
---
apiVersion: ferry.dev/v1alpha1
kind: Restore
metadata: {name: from-failed}
spec: {backup: pre-manual}
""",
    )
    wait_status(kubectl, "restore", namespace, "dev-undo", phase_in("Completed"), "Completed")
    record(kubectl, "restore", namespace, "dev-undo", "restore-completed", tmp_path)
    wait_status(kubectl, "restore", namespace, "from-failed", phase_in("Failed"), "Failed")
    record(kubectl, "restore", namespace, "from-failed", "restore-failed", tmp_path)
