"""A Migration or Restore into an Environment that declares its application.

The flows run for real against NocoBase-shaped SQLite databases, an in-memory cluster
and in-memory workloads (``fake_workloads.py``) whose clock moves only when the flow
sleeps. Each test drives one step or one way out of it: the order of the steps, the
replica count recorded before the scale to zero, the restart at each step, the ways a
step fails, and that no way out leaves the application at zero.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from controller.api.migration import MigrationPhase
from controller.api.reasons import ApplicationReason, ConditionType
from controller.api.restore import RestorePhase
from controller.commands.migrate import MigrationRequest, migrate
from controller.errors import PermanentError
from controller.flows.application import FINALIZER, holds_application, keeps_finalizer, release
from controller.flows.migration import ledger_id, reconcile_migration
from controller.flows.restore import reconcile_restore
from controller.k8s.workloads import Health
from tests.db.dbhelpers import dump, rows
from tests.fixtures import nocobase_shape as shape
from tests.unit.fake_cluster import FakeCluster
from tests.unit.fake_workloads import Clock, FakeWorkloads

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "Connected"}]}
URL = "http://web.pre.svc:13000/api/__health_check"
WEB = "Deployment/web"
VARS = {"HOOK_TOKEN": ("secret", "t"), "TICKET_WEBHOOK": ("plain", "u")}
OK, DOWN = Health(True, "HTTP 200"), Health(False, "HTTP 503")
APP = {
    "workload": {"kind": "Deployment", "name": "web"},
    "quiesce": {"timeoutSeconds": 30},
    "health": {"url": URL, "timeoutSeconds": 20},
}


def env(name: str, url: str, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Environment",
        "metadata": {"name": name},
        "spec": {"stage": "development", "database": {"dialect": "sqlite", "url": url}, **spec},
        "status": READY,
    }


def migration(name: str = "release") -> dict[str, Any]:
    return {
        "kind": "Migration",
        "metadata": {"name": name, "namespace": "ns", "uid": f"{name}-uid", "generation": 1},
        "spec": {"source": {"environment": "dev"}, "target": "pre"},
    }


@pytest.fixture
def urls(tmp_path: Path) -> dict[str, str]:
    out = {n: f"sqlite:///{tmp_path}/{n}.db" for n in ("dev", "pre")}
    shape.build(out["dev"], app="dev", variables=VARS)
    shape.builder_changes(out["dev"])
    shape.build(out["pre"], app="pre", variables=VARS)
    return out


@pytest.fixture
def cluster(urls: dict[str, str], tmp_path: Path) -> FakeCluster:
    store = {"store": {"path": str(tmp_path / "backups")}}
    return FakeCluster(
        env("dev", urls["dev"]),
        env("pre", urls["pre"], backups=store, application=APP),
        migration(),
    )


def state(cluster: FakeCluster, kind: str = "Migration", name: str = "release") -> Any:
    body = cluster.get(kind, "ns", name)
    assert body is not None
    return (body.get("status") or {}).get("application")


def apps(cluster: FakeCluster, *health: Health, lingering: int = 0) -> FakeWorkloads:
    return FakeWorkloads(
        {WEB: 3},
        health=list(health) or [OK],
        lingering=lingering,
        witness=lambda: state(cluster),
    )


def run(cluster: FakeCluster, workloads: FakeWorkloads, clock: Clock | None = None) -> Any:
    body = cluster.get("Migration", "ns", "release")
    assert body is not None
    outcome = reconcile_migration(
        body,
        cluster,
        now=NOW,
        on_phase=lambda _: None,
        workloads=workloads,
        lifecycle_options=(clock or Clock()).options(),
    )
    cluster.patch_status("Migration", "ns", "release", outcome.status)
    return outcome


def conditions(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}


def test_quiesce_apply_resume_then_healthy(cluster: FakeCluster, urls: dict[str, str]) -> None:
    workloads = apps(cluster, DOWN, DOWN, OK, lingering=2)
    clock = Clock()
    status = run(cluster, workloads, clock).status
    assert status["phase"] == "Succeeded", status
    assert workloads.steps() == [
        ("set_replicas", WEB, 0),
        ("set_replicas", WEB, 3),
        ("health", URL),
        ("health", URL),
        ("health", URL),
    ]
    # The count was in the object's status before the workload went to zero.
    at_zero = workloads.seen[workloads.calls.index(("set_replicas", WEB, 0))]
    assert at_zero["replicas"] == 3 and at_zero["quiesced"] is True
    assert [c for c in workloads.calls if c[0] == "pods"] == [("pods", "app=web")] * 3
    assert clock.slept == [1.0] * 4  # two lingering pods, two unhealthy answers
    assert status["application"]["quiesced"] is False and status["application"]["replicas"] == 3
    assert conditions(status)[ConditionType.APPLICATION_QUIESCED] == ("False", "Resumed")
    assert conditions(status)[ConditionType.APPLICATION_HEALTHY] == ("True", "Healthy")
    assert rows(urls["pre"], "ferry_migrations", "result") == [("succeeded",)]
    migration_body = cluster.get("Migration", "ns", "release")
    assert migration_body is not None and FINALIZER in migration_body["metadata"]["finalizers"]
    assert workloads.replicas[WEB] == 3


def test_unhealthy_after_resume_is_rolled_back_and_resumed(
    cluster: FakeCluster, urls: dict[str, str]
) -> None:
    before = rows(urls["pre"], "uiSchemas", "x-uid", order="x-uid")
    workloads = apps(cluster, DOWN)
    outcome = run(cluster, workloads)
    status = outcome.status
    assert status["phase"] == "RolledBack", status
    assert conditions(status)["Ready"] == ("False", ApplicationReason.APPLICATION_UNHEALTHY)
    assert conditions(status)[ConditionType.APPLICATION_HEALTHY][0] == "False"
    assert "HTTP 503" in status["message"]
    sets = [c for c in workloads.steps() if c[0] == "set_replicas"]
    assert sets == [("set_replicas", WEB, n) for n in (0, 3, 0, 3)]
    assert workloads.replicas[WEB] == 3 and status["application"]["quiesced"] is False
    assert rows(urls["pre"], "uiSchemas", "x-uid", order="x-uid") == before
    assert rows(urls["pre"], "ferry_migrations", "result") == [("rolled-back",)]
    assert ("Warning", ApplicationReason.APPLICATION_UNHEALTHY) in [
        (e.type, e.reason) for e in outcome.events
    ]


def test_pods_left_after_the_timeout_resume_and_write_nothing(
    cluster: FakeCluster, urls: dict[str, str]
) -> None:
    before = dump(urls["pre"])
    workloads = apps(cluster, lingering=10_000)
    status = run(cluster, workloads).status
    assert status["phase"] == "Failed", status
    assert conditions(status)["Ready"] == ("False", ApplicationReason.QUIESCE_TIMED_OUT)
    assert workloads.replicas[WEB] == 3 and status["application"]["quiesced"] is False
    assert dump(urls["pre"]) == before


def test_a_missing_workload_is_waited_for_and_nothing_is_written(
    cluster: FakeCluster, urls: dict[str, str]
) -> None:
    before = dump(urls["pre"])
    workloads = FakeWorkloads({})
    outcome = run(cluster, workloads)
    assert outcome.retry_after is not None
    assert conditions(outcome.status)["Ready"] == ("False", ApplicationReason.WORKLOAD_NOT_FOUND)
    assert not [c for c in workloads.calls if c[0] == "set_replicas"]
    assert dump(urls["pre"]) == before


def test_restart_while_quiesced_keeps_the_recorded_count(
    cluster: FakeCluster, urls: dict[str, str]
) -> None:
    """The workload is at zero because of the crashed attempt: 3, not 0, comes back."""
    cluster.patch_status(
        "Migration",
        "ns",
        "release",
        {"phase": "Applying", "application": {"workload": WEB, "replicas": 3, "quiesced": True}},
    )
    workloads = apps(cluster)
    workloads.replicas[WEB] = 0
    status = run(cluster, workloads).status
    assert status["phase"] == "Succeeded", status
    assert ("set_replicas", WEB, 3) in workloads.calls
    assert workloads.replicas[WEB] == 3
    assert rows(urls["pre"], "ferry_migrations", "result") == [("succeeded",)]


def test_restart_after_the_commit_does_not_apply_again(
    cluster: FakeCluster, urls: dict[str, str]
) -> None:
    body = cluster.get("Migration", "ns", "release")
    assert body is not None
    applied = migrate(
        MigrationRequest(urls["dev"], urls["pre"], migration_id=ledger_id(body["metadata"]))
    )
    record = {"id": applied.id, "status": "succeeded", "backupId": None, "message": ""}
    cluster.patch_status(
        "Migration",
        "ns",
        "release",
        {
            "phase": "CheckingHealth",
            "application": {"workload": WEB, "replicas": 2, "quiesced": False, "result": record},
        },
    )
    workloads = apps(cluster)
    status = run(cluster, workloads).status
    assert status["phase"] == "Succeeded" and status["migrationId"] == applied.id, status
    assert workloads.steps() == [("health", URL)]  # resumed already: only the health check
    assert rows(urls["pre"], "ferry_migrations", "result") == [("succeeded",)]


def test_restart_after_the_rollback_committed_does_not_roll_back_again(
    cluster: FakeCluster,
) -> None:
    workloads = apps(cluster, DOWN)
    first = run(cluster, workloads).status
    assert first["phase"] == "RolledBack"
    # As if the operator died after the rollback committed, before it resumed.
    application = {**first["application"], "quiesced": True}
    cluster.patch_status(
        "Migration", "ns", "release", {"phase": "RollingBack", "application": application}
    )
    workloads.replicas[WEB] = 0
    again = run(cluster, workloads).status
    assert again["phase"] == "RolledBack", again
    assert workloads.replicas[WEB] == 3


def test_awaiting_approval_never_quiesces(cluster: FakeCluster) -> None:
    cluster.patch("Migration", "ns", "release", {"spec": {"approval": {"required": True}}})
    workloads = apps(cluster)
    status = run(cluster, workloads).status
    assert status["phase"] == "AwaitingApproval"
    assert workloads.calls == []


def test_an_unexpected_error_while_quiesced_resumes_before_it_propagates(
    cluster: FakeCluster,
) -> None:
    def crash(step: str) -> None:
        if step.startswith("rows:"):
            raise RuntimeError("a bug")

    workloads = apps(cluster)
    body = cluster.get("Migration", "ns", "release")
    assert body is not None
    with pytest.raises(RuntimeError):
        reconcile_migration(
            body, cluster, now=NOW, on_phase=lambda _: None, fault=crash, workloads=workloads
        )
    assert workloads.replicas[WEB] == 3
    assert state(cluster)["quiesced"] is False


def test_a_failed_apply_resumes_and_skips_the_health_check(cluster: FakeCluster) -> None:
    def fail(step: str) -> None:
        if step == "verify":
            raise PermanentError("injected")

    workloads = apps(cluster)
    body = cluster.get("Migration", "ns", "release")
    assert body is not None
    outcome = reconcile_migration(
        body, cluster, now=NOW, on_phase=lambda _: None, fault=fail, workloads=workloads
    )
    assert outcome.status["phase"] == "RolledBack"
    assert workloads.steps() == [("set_replicas", WEB, 0), ("set_replicas", WEB, 3)]


def test_a_resume_the_api_refuses_is_retried_with_the_record_kept(
    cluster: FakeCluster,
) -> None:
    """A plan that changes after the quiesce makes the flow wait; the resume it then
    owes fails: the outcome waits in Resuming and the status still says quiesced."""
    cluster.patch_status(
        "Migration",
        "ns",
        "release",
        {"application": {"workload": WEB, "replicas": 3, "quiesced": True}},
    )
    cluster.patch("Migration", "ns", "release", {"spec": {"approval": {"required": True}}})
    workloads = apps(cluster)
    workloads.replicas[WEB] = 0
    workloads.refuse.add("set_replicas")
    outcome = run(cluster, workloads)
    assert outcome.status["phase"] == "Resuming" and outcome.retry_after is not None
    assert state(cluster)["quiesced"] is True
    workloads.refuse.clear()
    outcome = run(cluster, workloads)
    assert workloads.replicas[WEB] == 3


def test_release_resumes_from_the_status_alone() -> None:
    held = {
        "metadata": {"namespace": "ns"},
        "status": {"application": {"workload": WEB, "replicas": 4, "quiesced": True}},
    }
    workloads = FakeWorkloads({WEB: 0})
    assert holds_application(held)
    assert release(held, workloads) == "Deployment/web back at 4 replicas"
    assert workloads.replicas[WEB] == 4
    let_go = {**held, "status": {"application": {"workload": WEB, "replicas": 4}}}
    assert not holds_application(let_go) and release(let_go, workloads) is None
    odd = {**held, "status": {"application": {"workload": "Pod/x", "quiesced": True}}}
    assert release(odd, workloads) is None
    assert release(held, FakeWorkloads({})) is None  # the workload is gone


@pytest.mark.parametrize(
    ("kind", "running", "final"),
    [(MigrationPhase, "CheckingHealth", "Succeeded"), (RestorePhase, "CheckingHealth", "Reverted")],
)
def test_the_finalizer_stays_from_the_application_record_to_a_final_phase(
    kind: type[MigrationPhase] | type[RestorePhase], running: str, final: str
) -> None:
    """Not only while quiesced: Kopf must not add or remove its finalizer while the
    flow still runs (a restarted Kopf could then leave the object unprocessed)."""
    record = {"workload": WEB, "replicas": 3, "quiesced": False}

    def body(phase: str | None, application: dict[str, Any] | None) -> dict[str, Any]:
        status: dict[str, Any] = {"phase": phase} if phase else {}
        return {"status": {**status, "application": application} if application else status}

    assert not keeps_finalizer(body(None, None), kind.is_finished)  # no application
    assert not keeps_finalizer(body("Applying", None), kind.is_finished)
    assert keeps_finalizer(body(running, record), kind.is_finished)  # resumed, not done
    assert not keeps_finalizer(body(final, record), kind.is_finished)
    held = {**record, "quiesced": True}
    assert keeps_finalizer(body(final, held), kind.is_finished)  # still holds it at zero
    # The flow added the finalizer, its status is not there yet (Kopf's stale body).
    charged = {**body("Applying", None), "metadata": {"finalizers": [FINALIZER]}}
    assert keeps_finalizer(charged, kind.is_finished)
    assert not keeps_finalizer({**charged, "status": {"phase": final}}, kind.is_finished)


def test_a_restore_quiesces_writes_resumes_and_reports_an_unhealthy_app(
    cluster: FakeCluster,
) -> None:
    workloads = apps(cluster)
    assert run(cluster, workloads).status["phase"] == "Succeeded"
    cluster.add(
        {
            "kind": "Restore",
            "metadata": {"name": "undo", "namespace": "ns", "uid": "undo-uid", "generation": 1},
            "spec": {"migration": "release"},
        }
    )
    restoring = FakeWorkloads(
        {WEB: 3}, health=[DOWN], witness=lambda: state(cluster, "Restore", "undo")
    )
    body = cluster.get("Restore", "ns", "undo")
    assert body is not None
    outcome = reconcile_restore(
        body, cluster, now=NOW, workloads=restoring, lifecycle_options=Clock().options()
    )
    assert outcome.status["phase"] == "Completed", outcome.status
    assert restoring.steps()[:2] == [("set_replicas", WEB, 0), ("set_replicas", WEB, 3)]
    assert restoring.seen[restoring.calls.index(("set_replicas", WEB, 0))]["replicas"] == 3
    assert conditions(outcome.status)[ConditionType.APPLICATION_HEALTHY][0] == "False"
    assert ("Warning", ApplicationReason.APPLICATION_UNHEALTHY) in [
        (e.type, e.reason) for e in outcome.events
    ]
    assert restoring.replicas[WEB] == 3


@pytest.mark.parametrize(
    ("spec", "phase", "note"),
    [
        ({}, "Failed", "refused: pre declares no application"),
        ({"allowRunningApplication": True}, "Succeeded", "restart NocoBase afterwards"),
        ({"profile": "generic"}, "Succeeded", None),
    ],
)
def test_a_nocobase_target_without_application_is_refused_and_the_plan_says_why(
    urls: dict[str, str], spec: dict[str, Any], phase: str, note: str | None
) -> None:
    cluster = FakeCluster(env("dev", urls["dev"]), env("pre", urls["pre"], **spec), migration())
    before = dump(urls["pre"])
    status = run(cluster, FakeWorkloads({})).status
    assert status["phase"] == phase, status
    notes = status["plan"]["notes"]
    if note is None:
        assert not any("application" in n for n in notes), notes
        return
    assert any(note in n for n in notes), notes
    if phase == "Failed":
        assert conditions(status)["Ready"] == ("False", ApplicationReason.RUNNING_APPLICATION)
        assert "spec.allowRunningApplication: true" in status["message"]
        assert dump(urls["pre"]) == before


def test_the_plan_of_a_declared_application_says_it_is_quiesced(cluster: FakeCluster) -> None:
    status = run(cluster, apps(cluster)).status
    assert any("Deployment/web of pre is scaled to zero" in n for n in status["plan"]["notes"])


@pytest.mark.parametrize("change", ["environment-not-ready", "application-removed"])
def test_a_workload_held_by_a_crashed_call_is_resumed_even_before_the_quiesce_step(
    cluster: FakeCluster, change: str
) -> None:
    """The restarted call waits (its Environment is not Ready) or finds no application
    declared any more: the record alone brings the workload back."""
    held = {"workload": WEB, "replicas": 3, "quiesced": True}
    cluster.patch_status("Migration", "ns", "release", {"phase": "Applying", "application": held})
    if change == "environment-not-ready":
        cluster.patch_status(
            "Environment",
            "ns",
            "pre",
            {"conditions": [{"type": "Ready", "status": "False", "reason": "Unreachable"}]},
        )
    else:
        cluster.patch("Environment", "ns", "pre", {"spec": {"application": None}})
        cluster.patch("Environment", "ns", "pre", {"spec": {"allowRunningApplication": True}})
    workloads = apps(cluster)
    workloads.replicas[WEB] = 0
    outcome = run(cluster, workloads)
    assert workloads.replicas[WEB] == 3
    assert outcome.status["application"]["quiesced"] is False
    assert conditions(outcome.status)[ConditionType.APPLICATION_QUIESCED] == ("False", "Resumed")
    if change == "environment-not-ready":
        assert outcome.retry_after is not None  # and it waits, as before
    else:
        assert outcome.status["phase"] == "Succeeded"


def test_an_unhealthy_app_that_edited_what_the_migration_wrote_is_not_rolled_back(
    cluster: FakeCluster, urls: dict[str, str]
) -> None:
    """The scoped rollback refuses to discard later edits without ``force``; the
    migration stays applied, says so with a warning, and the app runs again."""

    def edit_a_promoted_page() -> None:
        engine = sa.create_engine(urls["pre"])
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE \"uiSchemas\" SET name = 'edited' WHERE \"x-uid\" = 'page-new-0'")
            )
        engine.dispose()

    workloads = apps(cluster, DOWN)
    workloads.on_health = edit_a_promoted_page
    status = run(cluster, workloads).status
    assert status["phase"] == "Succeeded", status
    assert conditions(status)["Ready"][1] == "AppliedWithWarnings"
    assert "the rollback was refused" in status["warnings"][0]
    assert "unhealthy" in status["warnings"][0]
    assert workloads.replicas[WEB] == 3 and status["application"]["quiesced"] is False
    assert rows(urls["pre"], "ferry_migrations", "result") == [("succeeded",)]
