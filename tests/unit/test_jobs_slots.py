"""One slot discipline for every kind of Job (``flows.jobs.take_slot``), against the
fake Jobs API whose pods run the real CLI on real SQLite databases and a real store.

A Restore's or Migration's Job is created suspended under the slots' lock (it holds
its slot but starts no pod), the application is quiesced outside the lock, then the Job
is let go. So nothing that reconciles while an application quiesces can take the slot
meanwhile; an operator that dies between any two steps resumes from the suspended Job;
a quiesce that fails gives the slot back; a suspended Job whose owner is gone holds none.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.flows.application import release
from controller.flows.jobs import job_name
from controller.flows.restore_job import stop_job
from controller.k8s.jobs import JobSettings, is_active, is_suspended
from controller.k8s.workloads import Scale
from tests.unit.fake_cluster import FakeCluster
from tests.unit.fake_jobs import FakeJobs
from tests.unit.fake_workloads import FakeWorkloads
from tests.unit.flow_support import conditions
from tests.unit.test_jobs import backup
from tests.unit.test_jobs import run as run_backup
from tests.unit.test_restore_jobs import (  # noqa: F401
    APP,
    WEB,
    backup_id,
    environment,
    jobs,
    restore,
    run,
    setup,
)

ONE = JobSettings(image="ferry:test", per_namespace=1)


class Crash(BaseException):
    """The operator's process dies here (SIGKILL): nothing after it runs."""


class Stepped(FakeWorkloads):
    """Workloads whose first look at the scale runs ``during`` first (another worker's
    reconcile, or the operator's death); once the operator died, every call it would
    still make dies with it (nothing of it runs on, not even a resume on the way out)."""

    def __init__(self, replicas: dict[str, int], **kwargs: Any) -> None:
        super().__init__(replicas, **kwargs)
        self.during: Callable[[], None] | None = None
        self.dead = False

    def _record(self, *call: Any) -> None:
        if self.dead:
            raise Crash
        super()._record(*call)

    def scale(self, kind: str, namespace: str, name: str) -> Scale | None:
        during, self.during = self.during, None
        if during is not None:
            during()
        return super().scale(kind, namespace, name)


@pytest.fixture
def app_restore(url: str, store: Path, backup_id: str, jobs: FakeJobs) -> FakeCluster:  # noqa: F811
    """Restore ``r`` of the backup into prod, whose application (``APP``) runs."""
    return setup(jobs, environment(url, store, application=APP), restore(backup_id))


def completes(
    cluster: FakeCluster, api: FakeJobs, apps: FakeWorkloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Job's pod runs; then the Restore is Completed, its application back at 2."""
    api.run_pod(api.only(), monkeypatch)
    done = run(cluster, api, workloads=apps)
    assert done.status["phase"] == "Completed" and apps.replicas[WEB] == 2


def holding(api: FakeJobs) -> list[str]:
    return [name for (_, name), job in api.jobs.items() if is_active(job)]


def running(api: FakeJobs) -> list[str]:
    return [n for (_, n), j in api.jobs.items() if is_active(j) and not is_suspended(j)]


def dies(apps: Stepped) -> Callable[[], None]:
    def crash() -> None:
        apps.dead = True
        raise Crash

    return crash


def unsuspend_only_at_zero(api: FakeJobs, apps: FakeWorkloads) -> None:
    """Every Job is let go only while the application is at zero."""
    let_go = api.unsuspend_job

    def checked(namespace: str, name: str) -> dict[str, Any] | None:
        assert apps.replicas[WEB] == 0, f"{name} let go while {WEB} runs"
        return let_go(namespace, name)

    api.unsuspend_job = checked  # type: ignore[method-assign]


def test_a_job_reconciled_while_a_restore_quiesces_waits_for_the_slot(
    app_restore: FakeCluster,
    jobs: FakeJobs,  # noqa: F811
) -> None:
    cluster = app_restore
    cluster.add(backup("b", "2026-11-30T11:30:00Z"))
    apps = Stepped({WEB: 2})
    seen: list[list[str]] = []

    def backup_meanwhile() -> None:  # another worker, while the Restore quiesces
        outcome = run_backup(cluster, jobs, "b", settings=ONE)
        seen.append(holding(jobs))
        assert conditions(outcome)["Ready"][:2] == ("False", "JobQueued"), outcome.status

    apps.during = backup_meanwhile
    first = run(cluster, jobs, workloads=apps, settings=ONE)
    assert first.status["phase"] == "Restoring", first.status
    restore_job = job_name("Restore", "r", "uid-Restore-r")
    assert seen == [[restore_job]]  # the Restore's suspended Job held the slot meanwhile
    assert holding(jobs) == running(jobs) == [restore_job] and apps.replicas[WEB] == 0
    assert [c[0] for c in jobs.calls] == ["create", "unsuspend"]


def test_a_crash_between_the_suspended_job_and_the_quiesce_resumes(
    app_restore: FakeCluster,
    jobs: FakeJobs,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = app_restore
    apps = Stepped({WEB: 2})
    apps.during = dies(apps)
    with pytest.raises(Crash):
        run(cluster, jobs, workloads=apps)
    assert running(jobs) == [] and len(holding(jobs)) == 1 and apps.replicas[WEB] == 2

    restarted = FakeWorkloads({WEB: 2})  # a new operator process
    unsuspend_only_at_zero(jobs, restarted)
    again = run(cluster, jobs, workloads=restarted)
    assert again.status["phase"] == "Restoring", again.status
    assert running(jobs) == holding(jobs) and len(running(jobs)) == 1
    assert [c[0] for c in jobs.calls] == ["create", "unsuspend"]  # the same Job, let go
    completes(cluster, jobs, restarted, monkeypatch)


def test_a_crash_between_the_quiesce_and_the_start_resumes_with_the_recorded_count(
    app_restore: FakeCluster,
    jobs: FakeJobs,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cluster = app_restore
    apps = Stepped({WEB: 2})
    let_go = jobs.unsuspend_job
    # The process is gone before it lets the Job go: nothing resumes the application.
    jobs.unsuspend_job = lambda ns, n: dies(apps)()  # type: ignore[assignment,method-assign]
    with pytest.raises(Crash):
        run(cluster, jobs, workloads=apps)
    body = cluster.get("Restore", "ns", "r") or {}
    assert apps.replicas[WEB] == 0 and running(jobs) == [] and len(holding(jobs)) == 1
    assert body["status"]["application"] == {"workload": WEB, "replicas": 2, "quiesced": True}

    jobs.unsuspend_job = let_go  # type: ignore[method-assign]
    restarted = FakeWorkloads(dict(apps.replicas))
    again = run(cluster, jobs, workloads=restarted)
    assert again.status["phase"] == "Restoring" and len(running(jobs)) == 1
    assert again.status["application"]["replicas"] == 2  # not the 0 it found
    completes(cluster, jobs, restarted, monkeypatch)


def test_a_restore_deleted_while_its_job_is_suspended_removes_it_and_resumes(
    app_restore: FakeCluster,
    jobs: FakeJobs,  # noqa: F811
) -> None:
    cluster = app_restore
    apps = Stepped({WEB: 2})
    let_go = jobs.unsuspend_job
    jobs.unsuspend_job = lambda ns, n: dies(apps)()  # type: ignore[assignment,method-assign]
    with pytest.raises(Crash):
        run(cluster, jobs, workloads=apps)
    jobs.unsuspend_job = let_go  # type: ignore[method-assign]
    body = cluster.get("Restore", "ns", "r") or {}
    assert body["status"]["job"]["phase"] == "Pending" and len(holding(jobs)) == 1
    assert stop_job(body, jobs) is None  # no pod ever ran: nothing to wait for
    assert jobs.jobs == {} and [c[0] for c in jobs.calls] == ["create", "delete"]
    assert release(body, FakeWorkloads(dict(apps.replicas))) == f"{WEB} back at 2 replicas"


def test_a_quiesce_that_fails_gives_the_slot_back(
    app_restore: FakeCluster,
    jobs: FakeJobs,  # noqa: F811
) -> None:
    cluster = app_restore
    apps = FakeWorkloads({WEB: 2}, lingering=10**6)  # a pod that never goes away
    failed = run(cluster, jobs, workloads=apps)
    assert failed.status["phase"] == "Failed", failed.status
    assert conditions(failed)["Ready"][1] == "QuiesceTimedOut"
    assert jobs.jobs == {} and apps.replicas[WEB] == 2
    assert [c[0] for c in jobs.calls] == ["create", "delete"]  # never let go


def orphan(api: FakeJobs, owner: str, uid: str) -> str:
    """A suspended Job of Restore ``owner`` (``uid``), as a crash may leave one."""
    name = job_name("Restore", owner, uid)
    ref = {"kind": "Restore", "name": owner, "uid": uid}
    labels = {"app.kubernetes.io/managed-by": "ferry"}
    body = {"metadata": {"name": name, "labels": labels, "ownerReferences": [ref]}}
    api.create_job("ns", {**body, "spec": {"suspend": True}})
    return name


def test_a_suspended_job_holds_a_slot_only_while_its_owner_exists(
    url: str,
    store: Path,
    jobs: FakeJobs,  # noqa: F811
) -> None:
    cluster = setup(jobs, environment(url, store), backup("b"))
    cluster.add(restore("x", name="alive"))
    alive = orphan(jobs, "alive", "uid-Restore-alive")
    queued = run_backup(cluster, jobs, "b", settings=ONE)  # the living owner's slot
    assert conditions(queued)["Ready"][:2] == ("False", "JobQueued") and holding(jobs) == [alive]

    gone = orphan(jobs, "gone", "uid-gone")  # its Restore was deleted
    renamed = orphan(jobs, "alive", "uid-of-an-older-alive")  # same name, another object
    cluster.add({**restore("x", name="ended"), "status": {"phase": "Failed"}})
    ended = orphan(jobs, "ended", "uid-Restore-ended")  # its Restore ended without it
    jobs.delete_job("ns", alive)
    started = run_backup(cluster, jobs, "b", settings=ONE)
    assert started.status["job"]["phase"] == "Running", started.status
    assert {("delete", n) for n in (gone, renamed, ended)} <= set(jobs.calls)
    assert holding(jobs) == [job_name("Backup", "b", "uid-Backup-b")]
