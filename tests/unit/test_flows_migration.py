"""The Migration flow's verdicts: why no backup was taken, and a success with warnings.

The flow runs for real against two small SQLite databases and an in-memory cluster; a
post-commit warning comes as a ``MigrationResult`` the way ``migrate`` reports it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from controller.api.reasons import ConditionType, MigrationReason
from controller.commands import environments
from controller.commands.migrate import MigrationResult
from controller.flows.migration import (
    _Flow,
    backup_status,
    reconcile_migration,
)
from tests.fixtures import nocobase_shape as shape
from tests.unit.fake_cluster import FakeCluster

WARNED_REASON = MigrationReason.APPLIED_WITH_WARNINGS
WARNINGS_CONDITION = ConditionType.WARNINGS
NOW = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)
VARS = {"HOOK_TOKEN": ("secret", "t"), "TICKET_WEBHOOK": ("plain", "u")}
READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "Connected"}]}


def env(name: str, url: str, store: Path | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "stage": "development",
        "allowRunningApplication": True,
        "database": {"dialect": "sqlite", "url": url},
    }
    if store is not None:
        spec["backups"] = {"store": {"path": str(store)}}
    return {"kind": "Environment", "metadata": {"name": name}, "spec": spec, "status": READY}


def migration(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Migration",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"{name}-0000-uid",
            "generation": 1,
            "creationTimestamp": "2026-03-28T11:00:00Z",
        },
        "spec": {"source": {"environment": "dev"}, "target": "pre", **spec},
    }


def run(cluster: FakeCluster, name: str) -> dict[str, Any]:
    body = cluster.get("Migration", "ns", name)
    assert body is not None
    outcome = reconcile_migration(body, cluster, now=NOW, on_phase=lambda _phase: None)
    cluster.patch_status("Migration", "ns", name, outcome.status)
    return outcome.status


@pytest.fixture
def cluster(tmp_path: Path) -> FakeCluster:
    urls = {n: f"sqlite:///{tmp_path}/{n}.db" for n in ("dev", "pre")}
    shape.build(urls["dev"], app="dev", variables=VARS)
    shape.builder_changes(urls["dev"])
    shape.build(urls["pre"], app="pre", variables=VARS)
    return FakeCluster(env("dev", urls["dev"]), env("pre", urls["pre"], store=tmp_path / "backups"))


def test_a_noop_migration_says_why_no_backup_was_taken(cluster: FakeCluster) -> None:
    cluster.add(migration("first"))
    first = run(cluster, "first")
    assert first["phase"] == "Succeeded" and first["backup"]["id"], first
    cluster.add(migration("again"))
    again = run(cluster, "again")
    assert again["phase"] == "Succeeded", again
    skipped = again["backup"]["skipped"]
    assert skipped.startswith("nothing to apply, so nothing to back up")
    assert "spec.backup.skip" not in skipped
    cluster.add(migration("skipping", backup={"skip": True}))
    assert run(cluster, "skipping")["backup"] == {"skipped": "spec.backup.skip"}


def resolved(cluster: FakeCluster, name: str) -> environments.ResolvedEnvironment:
    return environments.lookup(cluster, "ns", name)


def result(status: str, **kw: Any) -> MigrationResult:
    return MigrationResult("ns.m.1234", status, None, **kw)


def test_backup_status_names_the_reason(cluster: FakeCluster) -> None:
    pre, dev = resolved(cluster, "pre"), resolved(cluster, "dev")
    assert backup_status(result("succeeded", backup_id="b1"), pre, skip=False) == {"id": "b1"}
    assert backup_status(result("succeeded"), pre, skip=True) == {"skipped": "spec.backup.skip"}
    assert backup_status(result("noop"), dev, skip=False) == {
        "skipped": "Environment dev has no backups.store"
    }
    stopped = backup_status(result("rolled-back"), pre, skip=False)
    assert stopped == {"skipped": "the migration stopped before its backup was taken"}


def test_a_post_commit_failure_is_a_success_with_a_warning(cluster: FakeCluster) -> None:
    body = migration("m")
    cluster.add(body)
    flow = _Flow(cluster.get("Migration", "ns", "m") or {}, cluster, NOW, lambda _: None, None)
    warning = "storing the post-migration state failed: store unreachable"
    out = flow.conclude(
        result("succeeded", backup_id="b1", warnings=(warning,)),
        resolved(cluster, "pre"),
        skip=False,
    )
    status = out.status
    assert status["phase"] == "Succeeded" and status["warnings"] == [warning]
    assert status["backup"] == {"id": "b1"}
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Ready"]["reason"] == WARNED_REASON
    assert conditions[WARNINGS_CONDITION]["status"] == "True"
    assert conditions[WARNINGS_CONDITION]["message"] == warning
    assert conditions["Applied"]["status"] == "True"
    assert "Stalled" in conditions and conditions["Stalled"]["status"] == "False"
    assert ("Warning", WARNED_REASON, warning) in [
        (e.type, e.reason, e.message) for e in out.events
    ]
    assert warning in status["message"]


def test_the_approver_stamped_by_the_api_server_reaches_status(cluster: FakeCluster) -> None:
    cluster.add(migration("gated", approval={"required": True}))
    waiting = run(cluster, "gated")
    assert waiting["phase"] == "AwaitingApproval" and "approval" not in waiting
    cluster.patch(
        "Migration",
        "ns",
        "gated",
        {
            "metadata": {"annotations": {"ferry.dev/approved-by": "abe"}},
            "spec": {"approval": {"planDigest": waiting["planDigest"]}},
        },
    )
    done = run(cluster, "gated")
    assert done["phase"] == "Succeeded", done
    assert done["approval"] == {"planDigest": waiting["planDigest"], "approvedBy": "abe"}


# -- the branches that wait or refuse before anything is planned ----------------------------


def conditions_of(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_an_invalid_spec_fails_at_once(cluster: FakeCluster) -> None:
    cluster.add(migration("bad", target="Not_A_Name"))
    status = run(cluster, "bad")
    assert status["phase"] == "Failed" and "spec.target" in status["message"], status
    assert conditions_of(status)["Stalled"] == ("True", "InvalidSpec")


def test_a_missing_environment_is_waited_for(cluster: FakeCluster) -> None:
    cluster.add(migration("m", target="ghost"))
    status = run(cluster, "m")
    assert (
        status["phase"] == "Pending" and "Environment ns/ghost does not exist" in status["message"]
    )
    assert conditions_of(status)["Reconciling"] == ("True", "EnvironmentNotFound")
    assert "plan" not in status


def test_a_promotion_the_target_does_not_accept_is_refused(cluster: FakeCluster) -> None:
    cluster.patch("Environment", "ns", "pre", {"spec": {"promotion": {"acceptsFrom": ["qa"]}}})
    cluster.add(migration("m"))
    status = run(cluster, "m")
    assert status["phase"] == "Failed", status
    assert status["message"] == ("Environment pre accepts promotions only from qa, not from dev")
    assert conditions_of(status)["Stalled"] == ("True", "PromotionRefused")
    assert "plan" not in status


@pytest.mark.parametrize("unready", ["dev", "pre"])
def test_an_unready_environment_is_waited_for(cluster: FakeCluster, unready: str) -> None:
    cluster.patch_status("Environment", "ns", unready, {"conditions": []})
    cluster.add(migration("m"))
    status = run(cluster, "m")
    assert status["phase"] == "Pending"
    assert status["message"] == f"waiting for Environment {unready} to be Ready"
    assert conditions_of(status)["Ready"] == ("False", "EnvironmentNotReady")


def test_an_earlier_writer_queues_the_migration(cluster: FakeCluster) -> None:
    cluster.add(
        {
            "kind": "Restore",
            "metadata": {"name": "first", "creationTimestamp": "2026-03-28T10:00:00Z"},
            "spec": {"backup": "b", "environment": "pre"},
        }
    )
    cluster.add(migration("m"))
    status = run(cluster, "m")
    assert status["phase"] == "Queued" and status["message"] == "Restore first writes to pre first"
    assert conditions_of(status)["Reconciling"] == ("True", "WaitingForTurn")
    assert "plan" not in status


def test_a_stale_approval_waits_for_a_new_one(cluster: FakeCluster) -> None:
    cluster.add(migration("gated", approval={"required": True, "planDigest": "sha256:" + "0" * 64}))
    status = run(cluster, "gated")
    assert status["phase"] == "AwaitingApproval", status
    assert "no longer matches" in status["message"]
    assert conditions_of(status)["Reconciling"] == ("True", "AwaitingApproval")


def test_a_missing_git_credentials_secret_fails(cluster: FakeCluster) -> None:
    cluster.add(
        migration(
            "g",
            source={
                "git": {"repository": "https://git.example/app.git", "secretRef": {"name": "creds"}}
            },
        )
    )
    status = run(cluster, "g")
    assert status["phase"] == "Failed" and "Secret ns/creds not found" in status["message"]
    assert conditions_of(status)["Stalled"] == ("True", "InvalidInput")
