"""Backups, schedules and restores, driven through the API server like a user would."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.db.dbhelpers import dump, execute, rows
from tests.e2e.conftest import Kubectl
from tests.e2e.test_operator import apply_ok, environment, migration, status
from tests.fixtures import nocobase_shape as shape
from tests.harness.cluster import wait_for

pytestmark = pytest.mark.e2e
CONFIG_TABLES = ("roles", "uiSchemas", "desktopRoutes", "fields", "collections")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "backups"


@pytest.fixture
def tidy(kubectl: Kubectl, namespace: str, operator: Any) -> Iterator[None]:
    """Delete Backups while the operator still runs, so its finalizer does not keep
    them (and the namespace) around after the test."""
    yield
    kubectl(
        "delete", "backupschedules,backups", "--all", "-n", namespace, "--timeout=60s", check=False
    )


def backup(name: str, env: str, extra: str = "") -> str:
    return f"""
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata: {{name: {name}}}
spec:
  environment: {env}
{extra}"""


def restore(name: str, spec: str) -> str:
    return f"""
apiVersion: ferry.dev/v1alpha1
kind: Restore
metadata: {{name: {name}}}
spec:
{spec}"""


def wait_phase(
    kubectl: Kubectl, kind: str, namespace: str, name: str, phases: set[str], timeout: float = 90
) -> dict[str, Any]:
    wait_for(
        lambda: status(kubectl, kind, namespace, name).get("phase") in phases,
        timeout=timeout,
        description=f"{kind} {name} in {sorted(phases)}",
    )
    return status(kubectl, kind, namespace, name)


def artifact(store: Path, env: str, backup_id: str) -> Path:
    return store / env / backup_id / "manifest.json"


def exists(kubectl: Kubectl, kind: str, namespace: str, name: str) -> bool:
    got = kubectl("get", kind, name, "-n", namespace, "--ignore-not-found", "-o", "name")
    return bool(got.stdout.strip())


def schedule_backups(kubectl: Kubectl, namespace: str, schedule: str) -> list[dict[str, Any]]:
    items = kubectl.json("get", "backups", "-n", namespace, "-l", f"ferry.dev/schedule={schedule}")
    return list(items.get("items", []))


def test_manual_backup_completes_into_the_store(
    kubectl: Kubectl, namespace: str, tidy: None, sqlite_envs: dict[str, str], store: Path
) -> None:
    apply_ok(
        kubectl, namespace, environment("dev", "development", sqlite_envs["dev"], store=str(store))
    )
    apply_ok(kubectl, namespace, backup("first", "dev"))
    kubectl("wait", "--for=condition=Ready", "backup/first", "-n", namespace, "--timeout=90s")
    done = status(kubectl, "backup", namespace, "first")
    assert done["phase"] == "Completed", done
    assert artifact(store, "dev", done["id"]).is_file()
    assert done["location"] == str(store / "dev" / done["id"])
    assert done["sizeBytes"] > 0 and done["size"].endswith("B")
    assert done["tables"] > 10 and done["rows"] > 0
    assert done["checksum"].startswith("sha256:")
    assert done["startTime"] and done["completionTime"]
    manifest = json.loads(artifact(store, "dev", done["id"]).read_text())
    assert manifest["reason"] == "manual" and manifest["environment"] == "dev"
    listed = kubectl("get", "backups", "-n", namespace).stdout
    assert "Completed" in listed and done["id"] in listed


def test_backup_without_store_fails_with_a_reason(
    kubectl: Kubectl, namespace: str, tidy: None, sqlite_envs: dict[str, str]
) -> None:
    apply_ok(kubectl, namespace, environment("dev", "development", sqlite_envs["dev"]))
    apply_ok(kubectl, namespace, backup("nowhere", "dev"))
    done = wait_phase(kubectl, "backup", namespace, "nowhere", {"Completed", "Failed"})
    assert done["phase"] == "Failed" and "backups.store" in done["error"]
    stalled = [c for c in done["conditions"] if c["type"] == "Stalled"]
    assert stalled[0]["status"] == "True" and stalled[0]["reason"] == "NoBackupStore"


def test_deletion_policy_decides_the_artifact(
    kubectl: Kubectl, namespace: str, tidy: None, sqlite_envs: dict[str, str], store: Path
) -> None:
    apply_ok(
        kubectl, namespace, environment("dev", "development", sqlite_envs["dev"], store=str(store))
    )
    apply_ok(
        kubectl,
        namespace,
        backup("gone", "dev", "  deletionPolicy: Delete\n") + "---" + backup("kept", "dev"),
    )
    ids = {}
    for name in ("gone", "kept"):
        done = wait_phase(kubectl, "backup", namespace, name, {"Completed", "Failed"})
        assert done["phase"] == "Completed", done
        ids[name] = done["id"]
        assert artifact(store, "dev", done["id"]).is_file()
    kubectl("delete", "backup", "gone", "kept", "-n", namespace, "--timeout=60s")
    assert not (store / "dev" / ids["gone"]).exists()
    assert artifact(store, "dev", ids["kept"]).is_file()


def test_schedule_creates_labelled_backups_and_prunes(
    kubectl: Kubectl, namespace: str, tidy: None, sqlite_envs: dict[str, str], store: Path
) -> None:
    """A schedule, ``immediate`` for the first backup, then firing every minute. Rather
    than waiting for minutes, the test adds a completed Backup of the schedule by hand (its
    label, as the schedule writes it) and then moves the schedule's
    ``status.lastScheduleTime`` back, which makes the next run due at once: the cron
    expression and that time decide, never the timer."""
    apply_ok(
        kubectl, namespace, environment("dev", "development", sqlite_envs["dev"], store=str(store))
    )
    apply_ok(
        kubectl,
        namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata:
  name: nightly
  labels: {app.kubernetes.io/instance: ferry-dev, team: apps}
  annotations: {argocd.argoproj.io/tracking-id: "ferry-dev:ferry.dev/BackupSchedule:x/nightly"}
spec:
  environment: dev
  schedule: "0 0 1 1 *"
  immediate: true
  retention: {keepLast: 1}
""",
    )
    first = wait_for(
        lambda: schedule_backups(kubectl, namespace, "nightly"),
        timeout=30,
        description="the immediate backup",
    )[0]
    name_a = first["metadata"]["name"]
    assert name_a.startswith("nightly-") and len(name_a) == len("nightly-") + 14
    meta = first["metadata"]
    assert "app.kubernetes.io/instance" not in meta["labels"]
    assert meta["labels"]["team"] == "apps"
    assert not any(k.startswith("argocd.argoproj.io/") for k in meta.get("annotations") or {})
    # Not owned: deleting or renaming the schedule must not garbage-collect it.
    assert "ownerReferences" not in meta
    assert first["spec"]["reason"] == "scheduled" and first["spec"]["deletionPolicy"] == "Delete"
    done_a = wait_phase(kubectl, "backup", namespace, name_a, {"Completed", "Failed"})
    assert done_a["phase"] == "Completed", done_a
    kubectl("wait", "--for=condition=Ready", "backupschedule/nightly", "-n", namespace)
    got = wait_for(
        lambda: (
            (s := status(kubectl, "backupschedule", namespace, "nightly")).get(
                "lastSuccessfulBackup"
            )
            and s
        ),
        timeout=30,
        description="lastSuccessfulBackup",
    )
    assert got["lastBackup"] == name_a and got["nextScheduleTime"] > got["lastScheduleTime"]

    # A second completed backup of the schedule: keepLast 1 prunes the first, artifact too.
    apply_ok(
        kubectl,
        namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata:
  name: nightly-by-hand
  labels: {ferry.dev/schedule: nightly}
spec: {environment: dev, deletionPolicy: Delete, reason: scheduled}
""",
    )
    wait_phase(kubectl, "backup", namespace, "nightly-by-hand", {"Completed"})
    wait_for(
        lambda: not exists(kubectl, "backup", namespace, name_a),
        timeout=30,
        description=f"retention deletes {name_a}",
    )
    assert not (store / "dev" / done_a["id"]).exists()

    # The schedule runs again once a cron time passed since its last run (yearly until
    # now, so that no run raced the checks above); the new backup then replaces the
    # hand-made one.
    make_schedule_due(kubectl, namespace, "nightly")
    # Compare UIDs, not names: a run in the same minute as the first one gets its name
    # back (the first Backup is gone by now), and it is still a new object.
    seen = {first["metadata"]["uid"]}
    seen |= {b["metadata"]["uid"] for b in schedule_backups(kubectl, namespace, "nightly")}
    third = wait_for(
        lambda: [
            b
            for b in schedule_backups(kubectl, namespace, "nightly")
            if b["metadata"]["uid"] not in seen
        ],
        timeout=60,
        description="a scheduled run",
    )[0]["metadata"]["name"]
    wait_for(
        lambda: not exists(kubectl, "backup", namespace, "nightly-by-hand"),
        timeout=60,
        description="retention deletes the older backup",
    )
    # Every minute may bring another run, but only the schedule's own backups remain.
    remaining = [b["metadata"]["name"] for b in schedule_backups(kubectl, namespace, "nightly")]
    assert remaining and all(n >= third for n in remaining), remaining
    assert status(kubectl, "backupschedule", namespace, "nightly")["lastScheduleTime"] > "2020"


def make_schedule_due(kubectl: Kubectl, namespace: str, name: str) -> None:
    """Make a BackupSchedule's next run due now, as an admin would: it fires every minute
    from now on and its last run is moved back; the cron expression and that time
    decide, never the timer."""
    kubectl.merge_patch(
        f"backupschedule/{name}", namespace, {"spec": {"schedule": "* * * * *"}}, check=True
    )
    kubectl.merge_patch(
        f"backupschedule/{name}",
        namespace,
        {"status": {"lastScheduleTime": "2020-01-01T00:00:00Z"}},
        subresource="status",
        check=True,
    )


def test_suspended_schedule_creates_nothing(
    kubectl: Kubectl, namespace: str, tidy: None, sqlite_envs: dict[str, str], store: Path
) -> None:
    apply_ok(
        kubectl, namespace, environment("dev", "development", sqlite_envs["dev"], store=str(store))
    )
    apply_ok(
        kubectl,
        namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {name: paused}
spec: {environment: dev, schedule: "* * * * *", immediate: true, suspend: true}
""",
    )
    kubectl("wait", "--for=condition=Ready", "backupschedule/paused", "-n", namespace)
    ready = [
        c
        for c in status(kubectl, "backupschedule", namespace, "paused")["conditions"]
        if c["type"] == "Ready"
    ]
    assert ready[0]["reason"] == "Suspended"
    assert schedule_backups(kubectl, namespace, "paused") == []


def test_restore_brings_a_changed_table_back(
    kubectl: Kubectl, namespace: str, tidy: None, sqlite_envs: dict[str, str], store: Path
) -> None:
    url = sqlite_envs["dev"]
    apply_ok(kubectl, namespace, environment("dev", "development", url, store=str(store)))
    apply_ok(kubectl, namespace, backup("before", "dev"))
    done = wait_phase(kubectl, "backup", namespace, "before", {"Completed", "Failed"})
    assert done["phase"] == "Completed", done
    roles = rows(url, "roles", "name", "title", order="name")
    execute(url, "update roles set title = 'changed by hand'")
    apply_ok(kubectl, namespace, restore("undo", "  backup: before\n  tables: [roles]\n"))
    finished = wait_phase(kubectl, "restore", namespace, "undo", {"Completed", "Failed"})
    assert finished["phase"] == "Completed", finished
    assert rows(url, "roles", "name", "title", order="name") == roles
    assert finished["backup"] == {"name": "before", "id": done["id"]}
    assert finished["environment"] == "dev" and finished["tables"] == ["roles"]
    safety = finished["safetyBackup"]["id"]
    assert artifact(store, "dev", safety).is_file()
    kubectl("wait", "--for=condition=Ready", "restore/undo", "-n", namespace)


def test_restore_by_backup_id_refuses_a_damaged_backup(
    kubectl: Kubectl, namespace: str, tidy: None, sqlite_envs: dict[str, str], store: Path
) -> None:
    apply_ok(
        kubectl, namespace, environment("dev", "development", sqlite_envs["dev"], store=str(store))
    )
    apply_ok(kubectl, namespace, backup("b", "dev"))
    done = wait_phase(kubectl, "backup", namespace, "b", {"Completed", "Failed"})
    member = next((store / "dev" / done["id"] / "tables").glob("*-roles.arrow"))
    member.write_bytes(member.read_bytes()[:-5] + b"XXXXX")
    apply_ok(kubectl, namespace, restore("by-id", f"  backup: {done['id']}\n"))
    finished = wait_phase(kubectl, "restore", namespace, "by-id", {"Completed", "Failed"})
    assert finished["phase"] == "Failed", finished
    assert "damaged" in finished["error"] and "roles" in finished["error"]
    stalled = [c for c in finished["conditions"] if c["type"] == "Stalled"]
    assert stalled[0]["reason"] == "BackupCorrupted"


def test_restore_rolls_a_migration_back(
    kubectl: Kubectl, namespace: str, tidy: None, sqlite_envs: dict[str, str], store: Path
) -> None:
    pre = sqlite_envs["pre"]
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", sqlite_envs["dev"], store=str(store))
        + "---"
        + environment("pre", "pre-release", pre, accepts="dev", store=str(store)),
    )
    config_before = {t: v for t, v in dump(pre).items() if t in CONFIG_TABLES}
    apply_ok(kubectl, namespace, migration("to-pre", "dev", "pre"))
    done = wait_phase(
        kubectl, "migration", namespace, "to-pre", {"Succeeded", "Failed", "RolledBack"}
    )
    assert done["phase"] == "Succeeded", done
    assert {t: v for t, v in dump(pre).items() if t in CONFIG_TABLES} != config_before
    shape.add_orders(pre, 1)
    apply_ok(kubectl, namespace, restore("undo-to-pre", "  migration: to-pre\n"))
    finished = wait_phase(kubectl, "restore", namespace, "undo-to-pre", {"Completed", "Failed"})
    assert finished["phase"] == "Completed", finished
    after = dump(pre)
    assert {t: after[t] for t in config_before} == config_before
    assert "tickets" not in after
    assert ("Late order 0",) in rows(pre, "orders", "title")
    assert finished["environment"] == "pre" and finished["backup"]["id"] == done["backup"]["id"]
    assert finished["safetyBackup"]["id"]
    ledger = rows(pre, "ferry_migrations", "result", order="id")
    assert ledger == [("rolled-back",)]


def test_restore_waits_for_an_earlier_migration(
    kubectl: Kubectl, namespace: str, tidy: None, sqlite_envs: dict[str, str], store: Path
) -> None:
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", sqlite_envs["dev"])
        + "---"
        + environment("pre", "pre-release", sqlite_envs["pre"], store=str(store)),
    )
    apply_ok(kubectl, namespace, backup("pre-now", "pre"))
    wait_phase(kubectl, "backup", namespace, "pre-now", {"Completed"})
    apply_ok(kubectl, namespace, migration("gated", "dev", "pre", "  approval: {required: true}\n"))
    wait_phase(kubectl, "migration", namespace, "gated", {"AwaitingApproval"})
    apply_ok(kubectl, namespace, restore("later", "  backup: pre-now\n"))
    wait_for(
        lambda: (
            "Migration gated" in str(status(kubectl, "restore", namespace, "later").get("message"))
        ),
        timeout=30,
        description="the Restore queued behind the Migration",
    )
    queued = status(kubectl, "restore", namespace, "later")
    assert queued["phase"] == "Queued" and queued["environment"] == "pre"
    ready = [c for c in queued["conditions"] if c["type"] == "Ready"]
    assert ready[0]["reason"] == "WaitingForTurn"
    kubectl("delete", "migration", "gated", "-n", namespace)
    done = wait_phase(kubectl, "restore", namespace, "later", {"Completed", "Failed"})
    assert done["phase"] == "Completed", done


def test_deleting_a_schedule_keeps_its_backups_for_the_next_one_to_prune(
    kubectl: Kubectl, namespace: str, tidy: None, sqlite_envs: dict[str, str], store: Path
) -> None:
    """An Argo CD prune of a BackupSchedule (here: a foreground delete, Argo CD's default
    propagation) keeps its Backups and their artifacts; a schedule created for the same
    environment under another name (a rename) adopts them and its retention prunes them."""
    apply_ok(
        kubectl, namespace, environment("dev", "development", sqlite_envs["dev"], store=str(store))
    )
    apply_ok(
        kubectl,
        namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {name: nightly}
spec: {environment: dev, schedule: "0 0 1 1 *", immediate: true}
""",
    )
    first = wait_for(
        lambda: schedule_backups(kubectl, namespace, "nightly"),
        timeout=30,
        description="the immediate backup",
    )[0]["metadata"]["name"]
    done = wait_phase(kubectl, "backup", namespace, first, {"Completed", "Failed"})
    assert done["phase"] == "Completed", done
    # A second backup of the schedule, so that the new schedule's keepLast has work.
    apply_ok(
        kubectl,
        namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata: {name: nightly-later, labels: {ferry.dev/schedule: nightly}}
spec: {environment: dev, deletionPolicy: Delete, reason: scheduled}
""",
    )
    older = wait_phase(kubectl, "backup", namespace, "nightly-later", {"Completed"})
    kubectl(
        "delete",
        "backupschedule",
        "nightly",
        "-n",
        namespace,
        "--cascade=foreground",
        "--timeout=60s",
    )
    # The garbage collector has had its chance: the schedule is gone, the Backups stay.
    assert not exists(kubectl, "backupschedule", namespace, "nightly")
    for name, backup_id in ((first, done["id"]), ("nightly-later", older["id"])):
        assert exists(kubectl, "backup", namespace, name), name
        assert artifact(store, "dev", backup_id).is_file()

    apply_ok(
        kubectl,
        namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {name: nightly-renamed}
spec: {environment: dev, schedule: "0 0 1 1 *", retention: {keepLast: 1, minKeep: 1}}
""",
    )
    adopted = wait_for(
        lambda: schedule_backups(kubectl, namespace, "nightly-renamed"),
        timeout=30,
        description="the orphans adopted",
    )
    assert {b["metadata"]["annotations"]["ferry.dev/adopted-from"] for b in adopted} == {"nightly"}
    # keepLast 1: of the two adopted Backups the one created later stays, the immediate
    # one goes, with its artifact (deletionPolicy Delete).
    wait_for(
        lambda: not exists(kubectl, "backup", namespace, first),
        timeout=60,
        description=f"retention deletes the adopted {first}",
    )
    assert not (store / "dev" / done["id"]).exists()
    assert exists(kubectl, "backup", namespace, "nightly-later")
    assert artifact(store, "dev", older["id"]).is_file()
