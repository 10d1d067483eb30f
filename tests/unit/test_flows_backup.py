"""The Backup flow's branches, run for real: SQLite, a FilesystemStore and a fake cluster.

``reconcile_backup`` waits for what may yet come (the Environment, the API server, the
database), fails for what only a spec change fixes (no store, an unknown table, an
invalid spec) and writes nothing to the store unless it completes. ``finalize_backup``
deletes the stored artifact only under ``deletionPolicy: Delete`` and never while a
migration's rollback window needs it.
"""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path
from typing import Any

import pytest

from controller.backups.store import FilesystemStore
from controller.flows.backup import DELETE_ATTEMPTS, finalize_backup, reconcile_backup
from controller.flows.outcome import Outcome
from tests.unit.fake_cluster import FakeCluster
from tests.unit.flow_support import conditions, events

NOW = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)
READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "Connected"}]}


def environment(url: str, store: Path | None, **database: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "stage": "production",
        "database": {"dialect": "sqlite", "url": url, **database},
    }
    if store is not None:
        spec["backups"] = {"store": {"path": str(store)}}
    return {"kind": "Environment", "metadata": {"name": "prod"}, "spec": spec, "status": READY}


def backup(name: str = "b", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Backup",
        "metadata": {"name": name, "namespace": "ns", "generation": 1},
        "spec": {"environment": "prod", **spec},
    }


def run(cluster: FakeCluster, name: str = "b", retry: int = 0) -> Outcome:
    body = cluster.get("Backup", "ns", name)
    assert body is not None
    outcome = reconcile_backup(body, cluster, now=NOW, retry=retry)
    cluster.patch_status("Backup", "ns", name, outcome.status)
    return outcome


def stored(store: Path) -> list[str]:
    """Every file in the store, partial ones included."""
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())


def assert_failed(outcome: Outcome, reason: str, fragment: str) -> None:
    status = outcome.status
    assert status["phase"] == "Failed", status
    assert fragment in status["message"] and status["error"] == status["message"]
    assert status["completionTime"] == "2026-03-28T12:00:00Z"
    assert status["startTime"] == "2026-03-28T12:00:00Z"
    cond = conditions(outcome)
    assert cond["Stalled"] == ("True", reason, status["message"])
    assert cond["Ready"][:2] == ("False", reason)
    assert events(outcome) == [("Warning", reason)]
    assert outcome.events[0].message == status["message"]
    assert outcome.retry_after is None
    assert "id" not in status


def assert_waiting(outcome: Outcome, reason: str, fragment: str, delay: float) -> None:
    status = outcome.status
    assert status["phase"] == "Pending" and fragment in status["message"], status
    assert "completionTime" not in status
    cond = conditions(outcome)
    assert cond["Reconciling"][:2] == ("True", reason)
    assert cond["Ready"][:2] == ("False", reason) and fragment in cond["Ready"][2]
    assert cond["Stalled"][:2] == ("False", reason)
    assert outcome.retry_after == delay


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        pytest.param({"environment": None}, "spec.environment", id="no-environment"),
        pytest.param(
            {"tables": ["users"], "exclude": ["roles"]},
            "set tables or exclude, not both",
            id="tables-and-exclude",
        ),
        pytest.param({"environment": "Not_A_Name"}, "spec.environment", id="bad-name"),
        pytest.param({"deletionPolicy": "Shred"}, "spec.deletionPolicy", id="bad-policy"),
    ],
)
def test_an_invalid_spec_fails_at_once(
    url: str, store: Path, spec: dict[str, Any], fragment: str
) -> None:
    body = backup(**spec)
    if spec.get("environment", "") is None:
        del body["spec"]["environment"]
    cluster = FakeCluster(environment(url, store), body)
    assert_failed(run(cluster), "InvalidSpec", fragment)
    assert stored(store) == []


def test_a_missing_environment_is_waited_for_with_one_event(store: Path) -> None:
    cluster = FakeCluster(backup())
    first = run(cluster)
    assert_waiting(first, "EnvironmentNotFound", "Environment ns/prod does not exist", 5.0)
    assert events(first) == [("Normal", "EnvironmentNotFound")]
    again = run(cluster)
    assert_waiting(again, "EnvironmentNotFound", "does not exist", 5.0)
    assert again.events == ()  # one event per new reason, not per retry
    assert again.status["startTime"] == first.status["startTime"]


def test_an_environment_that_cannot_be_resolved_fails_the_backup(store: Path) -> None:
    env = environment("ignored", store)
    env["spec"]["database"] = {
        "dialect": "sqlite",
        "urlFrom": {"secretKeyRef": {"name": "db", "key": "url"}},
    }
    cluster = FakeCluster(env, backup())
    assert_failed(run(cluster), "InvalidEnvironment", "Secret ns/db not found")
    assert stored(store) == []


def test_an_unanswered_secret_read_is_retried_with_backoff(url: str, store: Path) -> None:
    env = environment(url, store)
    env["spec"]["database"] = {
        "dialect": "sqlite",
        "urlFrom": {"secretKeyRef": {"name": "db", "key": "url"}},
    }
    cluster = FakeCluster(env, backup(), secrets={"db": {"url": url}})
    cluster.unanswered.add("db")
    outcome = run(cluster, retry=2)
    assert_waiting(outcome, "Temporary", "503 Service Unavailable", 20.0)
    assert events(outcome) == [("Normal", "Temporary")]
    assert stored(store) == []
    cluster.unanswered.clear()
    assert run(cluster).status["phase"] == "Completed"


def test_an_environment_without_a_store_fails(url: str) -> None:
    cluster = FakeCluster(environment(url, None), backup())
    assert_failed(run(cluster), "NoBackupStore", "Environment prod has no spec.backups.store")
    assert ("patch_status", "Backup", "b") in cluster.calls  # only the verdict


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        pytest.param({"tables": ["no_such_table"]}, "no table matches", id="unknown-table"),
        pytest.param({"tables": ["nope*"]}, "no table matches", id="unmatched-glob"),
        pytest.param({"exclude": ["ghost"]}, "no table matches", id="unknown-exclude"),
    ],
)
def test_a_selection_that_matches_nothing_fails_and_leaves_no_debris(
    url: str, store: Path, spec: dict[str, Any], fragment: str
) -> None:
    cluster = FakeCluster(environment(url, store), backup(**spec))
    assert_failed(run(cluster), "InvalidSelection", fragment)
    assert stored(store) == []


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_database_is_retried_with_backoff(store: Path) -> None:
    pg = f"postgresql+psycopg://app:hunter2@127.0.0.1:{closed_port()}/app"
    cluster = FakeCluster(environment(pg, store, dialect="postgresql"), backup())
    delays = []
    for retry in (0, 3, 9):
        outcome = run(cluster, retry=retry)
        assert_waiting(outcome, "Unreachable", "database unreachable", outcome.retry_after or 0)
        assert "hunter2" not in repr(outcome)
        delays.append(outcome.retry_after)
        if retry == 0:
            assert [(e.type, e.reason) for e in outcome.events] == [("Warning", "Unreachable")]
        else:
            assert outcome.events == ()
    assert delays == [10.0, 40.0, 300.0]  # never below the error's own delay
    # The phase was shown as Running before the long work, then set back to Pending.
    assert cluster.calls.count(("patch_status", "Backup", "b")) == 6
    assert stored(store) == []


def test_a_completed_backup_is_recorded_and_never_run_again(url: str, store: Path) -> None:
    cluster = FakeCluster(environment(url, store), backup(tables=["collections", "ui*"]))
    outcome = run(cluster)
    status = outcome.status
    assert status["phase"] == "Completed" and status["tables"] == 3, status
    assert conditions(outcome)["Ready"][:2] == ("True", "Completed")
    assert events(outcome) == [("Normal", "Completed")]
    manifest = FilesystemStore(store).manifest(status["id"], "prod")
    assert [m.table for m in manifest.members] == ["collections", "uiSchemaTreePath", "uiSchemas"]
    files = stored(store)
    body = cluster.get("Backup", "ns", "b")
    assert body is not None
    assert reconcile_backup(body, cluster, now=NOW) == Outcome({})
    assert stored(store) == files


# -- finalize -----------------------------------------------------------------------------


@pytest.fixture
def done(url: str, store: Path) -> FakeCluster:
    """A cluster holding a Completed Backup ``b`` (deletionPolicy Delete) of ``prod``."""
    cluster = FakeCluster(environment(url, store), backup(deletionPolicy="Delete"))
    assert run(cluster).status["phase"] == "Completed"
    return cluster


def finalize(cluster: FakeCluster, retry: int = 0) -> Outcome:
    body = cluster.get("Backup", "ns", "b")
    assert body is not None
    return finalize_backup(body, cluster, now=NOW, retry=retry)


def finalize_events(outcome: Outcome) -> list[tuple[str, str, str]]:
    return [(e.type, e.reason, e.message) for e in outcome.events]


def backup_id(cluster: FakeCluster) -> str:
    body = cluster.get("Backup", "ns", "b")
    assert body is not None
    return str(body["status"]["id"])


def test_finalize_deletes_the_artifact_under_delete(done: FakeCluster, store: Path) -> None:
    ident = backup_id(done)
    out = finalize(done)
    assert finalize_events(out) == [("Normal", "ArtifactDeleted", f"deleted backup {ident}")]
    assert out.status == {} and out.retry_after is None
    assert stored(store) == []
    assert finalize(done) == Outcome({})  # already gone: nothing to say


def test_finalize_keeps_the_artifact_under_retain(done: FakeCluster, store: Path) -> None:
    done.patch("Backup", "ns", "b", {"spec": {"deletionPolicy": "Retain"}})
    files = stored(store)
    out = finalize(done)
    assert finalize_events(out) == [
        ("Normal", "ArtifactRetained", f"kept backup {backup_id(done)} (deletionPolicy Retain)")
    ]
    assert stored(store) == files


def test_finalize_of_a_backup_never_taken_or_invalid_does_nothing(
    done: FakeCluster, store: Path
) -> None:
    files = stored(store)
    unfinished = backup("never")
    assert finalize_backup(unfinished, done, now=NOW) == Outcome({})
    done.patch("Backup", "ns", "b", {"spec": {"environment": None}})
    assert finalize(done) == Outcome({})
    assert stored(store) == files


@pytest.mark.parametrize(
    ("migration_status", "pinned"),
    [
        pytest.param({"phase": "Applying"}, True, id="unfinished"),
        pytest.param(
            {"phase": "Succeeded", "completionTime": "2026-03-27T12:00:00Z"}, True, id="recent"
        ),
        pytest.param(
            {"phase": "Succeeded", "completionTime": "2026-03-01T12:00:00Z"}, False, id="old"
        ),
    ],
)
def test_finalize_keeps_an_artifact_a_rollback_window_needs(
    done: FakeCluster, store: Path, migration_status: dict[str, Any], pinned: bool
) -> None:
    ident = backup_id(done)
    done.add(
        {
            "kind": "Migration",
            "metadata": {"name": "m"},
            "status": {"backup": {"id": ident}, **migration_status},
        }
    )
    files = stored(store)
    out = finalize(done)
    if pinned:
        assert finalize_events(out) == [
            (
                "Warning",
                "ArtifactPinned",
                f"kept backup {ident}: a migration's rollback window needs it",
            )
        ]
        assert stored(store) == files
    else:
        assert [e.reason for e in out.events] == ["ArtifactDeleted"]
        assert stored(store) == []


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        pytest.param(
            lambda c: c.delete("Environment", "ns", "prod"),
            "Environment ns/prod does not exist",
            id="environment-gone",
        ),
        pytest.param(
            lambda c: c.patch("Environment", "ns", "prod", {"spec": {"backups": None}}),
            "Environment prod has no backup store",
            id="store-gone",
        ),
    ],
)
def test_finalize_that_cannot_reach_the_store_keeps_the_artifact_and_says_so(
    done: FakeCluster, store: Path, change: Any, fragment: str
) -> None:
    ident = backup_id(done)
    files = stored(store)
    change(done)
    out = finalize(done)
    assert finalize_events(out) == [
        ("Warning", "ArtifactKept", f"could not delete backup {ident}: {fragment}")
    ]
    assert out.retry_after is None
    assert stored(store) == files


def test_finalize_retries_a_temporary_failure_then_gives_up(
    done: FakeCluster, store: Path, url: str
) -> None:
    ident = backup_id(done)
    files = stored(store)
    done.patch(
        "Environment",
        "ns",
        "prod",
        {
            "spec": {
                "database": {"url": None, "urlFrom": {"secretKeyRef": {"name": "db", "key": "u"}}}
            }
        },
    )
    done.secrets["db"] = {"u": url}
    done.unanswered.add("db")
    delays = []
    for retry in range(DELETE_ATTEMPTS - 1):
        out = finalize(done, retry=retry)
        assert out.events == () and out.retry_after is not None
        delays.append(out.retry_after)
    assert delays == [5.0, 10.0, 20.0, 40.0]
    last = finalize(done, retry=DELETE_ATTEMPTS - 1)
    assert last.retry_after is None
    ((type_, reason, message),) = finalize_events(last)
    assert (type_, reason) == ("Warning", "ArtifactKept")
    assert message.startswith(f"could not delete backup {ident}: Kubernetes API")
    assert stored(store) == files
    done.unanswered.clear()
    assert [e.reason for e in finalize(done).events] == ["ArtifactDeleted"]
