"""A Job-mode Backup ends as the store says for the ID the operator chose.

The operator chooses the backup's ID and records it in ``status.job.backupId`` before
the Job exists; its pods write that ID (``ferry backup create --id``), one pod at a
time; when the Job ends, however it ends (succeeded, failed, deleted, its pods' results
gone), the store is asked for that ID: a complete backup there is the Backup's, nothing
there fails it with the reason. Fake Jobs API, real CLI, real SQLite and store.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from controller.backups.store import FilesystemStore, _FsWriter
from controller.commands.backup import create_backup
from controller.errors import TemporaryError
from controller.flows.backup import reconcile_backup
from controller.flows.backup_job import chosen_id
from controller.k8s.jobs import JobSettings
from tests.unit.fake_jobs import FakeJobs
from tests.unit.test_jobs import JOB, SETTINGS, backup, environment, jobs, ready, run, setup

__all__ = ["jobs"]  # the fixture, shared with tests/unit/test_jobs.py

NO_RETRY = {**JOB, "backoffLimit": 0}
LATER = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def manifests(store: Path) -> list[str]:
    return sorted(p.parent.name for p in store.rglob("manifest.json"))


def last_result(jobs: FakeJobs) -> dict[str, Any]:
    (pods,) = [p for p in jobs.pods.values() if p]
    message = pods[-1]["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
    return dict(json.loads(message))


def test_a_pod_whose_result_is_gone_completes_the_backup_from_the_store(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last pod published, was stopped, and is gone with its termination message
    before the operator looked (the Job controller drops its tracking finalizer first):
    the store still holds the chosen ID, so the Backup is Completed."""
    cluster = setup(jobs, environment(url, store, NO_RETRY), backup())
    chosen = run(cluster, jobs).status["job"]["backupId"]
    job = jobs.only()
    jobs.run_pod(job, monkeypatch, killed=signal.SIGTERM)
    jobs.pods[("ns", job["metadata"]["name"])].clear()  # the pod and its message: gone
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed" and ready(done) == ("True", "Completed")
    assert done.status["id"] == chosen and manifests(store) == [chosen]
    assert done.status["job"]["phase"] == "Failed" and done.status["rows"] > 0
    stored = json.loads(next(store.rglob("manifest.json")).read_text())
    assert done.status["tables"] == len(stored["members"])


def test_a_job_that_succeeded_without_the_backup_in_the_store_fails(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A result that says "completed" is not the truth: the store is. A pod that claims
    a backup the store does not hold fails the Backup, naming the ID."""
    cluster = setup(jobs, environment(url, store), backup())
    chosen = run(cluster, jobs).status["job"]["backupId"]
    job = jobs.only()
    claim = json.dumps({"outcome": "completed", "id": chosen, "rows": 1})
    jobs.end_pod("ns", job["metadata"]["name"], 0, "Completed", claim)
    failed = run(cluster, jobs)
    assert failed.status["phase"] == "Failed" and ready(failed) == ("False", "BackupFailed")
    assert f"succeeded, but the store holds no backup {chosen}" in failed.status["message"]
    assert "id" not in failed.status and manifests(store) == []


def test_a_pod_deleted_before_it_published_fails_the_backup_saying_so(
    url: str, store: Path, jobs: FakeJobs
) -> None:
    cluster = setup(jobs, environment(url, store, NO_RETRY), backup())
    chosen = run(cluster, jobs).status["job"]["backupId"]
    jobs.end_pod("ns", jobs.only()["metadata"]["name"], 143, "Error", "")
    failed = run(cluster, jobs)
    assert failed.status["phase"] == "Failed" and ready(failed) == ("False", "BackupFailed")
    assert f"the store holds no backup {chosen}" in failed.status["message"]
    assert "Error (exit 143)" in failed.status["message"] and manifests(store) == []


def test_a_deleted_job_ends_the_backup_as_the_store_says(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its Job deleted under it, a Backup waits until the Job's pods have stopped, then
    asks the store; it starts no second Job (that pod may have published)."""
    bodies = [backup("kept"), backup("lost", created="2026-11-30T11:00:01Z")]
    cluster = setup(jobs, environment(url, store), *bodies)
    run(cluster, jobs, "kept")
    kept_job = jobs.only()
    key = ("ns", kept_job["metadata"]["name"])
    jobs.run_pod(kept_job, monkeypatch)  # published; the Job deleted before it is seen
    del jobs.jobs[key]
    done = run(cluster, jobs, "kept")
    assert done.status["phase"] == "Completed", done.status
    assert manifests(store) == [done.status["id"]]

    chosen = run(cluster, jobs, "lost").status["job"]["backupId"]
    lost_job = jobs.only()
    key = ("ns", lost_job["metadata"]["name"])
    del jobs.jobs[key]  # deleted; its pod still runs (background propagation)
    running = {"containerStatuses": [{"state": {"running": {}}}], "phase": "Running"}
    jobs.pods[key] = [{"metadata": {"name": "lost-pod", "deletionTimestamp": "t"},
                       "status": running}]  # fmt: skip
    waiting = run(cluster, jobs, "lost")
    assert waiting.status["phase"] == "Running" and ready(waiting)[1] == "JobRunning"
    assert "waiting for its pod lost-pod to stop" in waiting.status["message"]
    jobs.pods[key][0]["status"] = {"phase": "Failed"}
    failed = run(cluster, jobs, "lost")
    assert failed.status["phase"] == "Failed" and ready(failed) == ("False", "BackupFailed")
    assert "deleted before it ended" in failed.status["message"]
    assert f"the store holds no backup {chosen}" in failed.status["message"]
    assert [c[0] for c in jobs.calls].count("create") == 2  # no second Job for either


def test_the_chosen_id_survives_a_crash_and_a_lost_status(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = setup(jobs, environment(url, store), backup())
    create = jobs.create_job

    def crash(namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        raise TemporaryError("Kubernetes API: creating Job: 503", delay=5)

    monkeypatch.setattr(jobs, "create_job", crash)  # the operator dies before the Job
    run(cluster, jobs)
    recorded = (cluster.get("Backup", "ns", "b") or {})["status"]["job"]["backupId"]
    monkeypatch.setattr(jobs, "create_job", create)
    cluster.patch_status("Backup", "ns", "b", {"job": None})  # even the record lost
    first = run(cluster, jobs)
    args = jobs.only()["spec"]["template"]["spec"]["containers"][0]["args"]
    assert first.status["job"]["backupId"] == recorded == args[args.index("--id") + 1]
    body = cluster.get("Backup", "ns", "b") or {}
    assert chosen_id(body, LATER) == recorded
    # Another Backup of the same name (a new UID) gets another ID.
    other = {**body, "metadata": {**body["metadata"], "uid": "another"}, "status": {}}
    assert chosen_id(other, LATER) != recorded


def test_a_replacement_pod_removes_the_partial_its_stopped_predecessor_left(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first pod is killed outright mid-write (its partial backup stays, its owner
    alive as far as this host can tell): the second pod, same ID, starts clean."""
    cluster = setup(jobs, environment(url, store), backup())
    chosen = run(cluster, jobs).status["job"]["backupId"]
    job = jobs.only()
    with monkeypatch.context() as killed:
        killed.setattr(_FsWriter, "abort", lambda self: None)  # SIGKILL: no cleanup

        def dies(self: _FsWriter, key: str) -> None:
            raise KeyboardInterrupt

        killed.setattr(_FsWriter, "member_done", dies)
        jobs.run_pod(job, monkeypatch, killed=signal.SIGKILL)
    (partial,) = store.rglob(".partial-*")
    assert partial.name.startswith(f".partial-{chosen}+")
    jobs.run_pod(job, monkeypatch)
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed" and done.status["id"] == chosen
    assert list(store.rglob(".partial-*")) == [] and manifests(store) == [chosen]


def test_a_replacement_pod_never_writes_over_the_published_backup(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first pod published and was killed before it could exit 0: the second pod,
    same ID, is refused (``BackupExists``, exit 2) and the backup stays as it was."""
    cluster = setup(jobs, environment(url, store), backup())
    chosen = run(cluster, jobs).status["job"]["backupId"]
    job = jobs.only()
    jobs.run_pod(job, monkeypatch, killed=signal.SIGKILL)
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    jobs.run_pod(job, monkeypatch)
    result = last_result(jobs)
    assert (result["exitCode"], result["reason"]) == (2, "BackupExists")
    assert f"backup {chosen} already exists" in result["message"]
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    done = run(cluster, jobs)  # the Job failed (no retry left); the store holds it
    assert done.status["phase"] == "Completed" and done.status["id"] == chosen


def test_a_job_an_older_operator_started_ends_with_the_backup_its_pod_named(
    url: str, store: Path, jobs: FakeJobs
) -> None:
    """Adopted after an upgrade, a Job started without ``--id`` wrote an ID of its own:
    the store is asked for the one its result names too."""
    cluster = setup(jobs, environment(url, store), backup())
    run(cluster, jobs)
    own, _ = create_backup(url, FilesystemStore(store), environment="prod")
    result = json.dumps({"outcome": "completed", "id": own.id, "rows": own.rows})
    jobs.end_pod("ns", jobs.only()["metadata"]["name"], 0, "Completed", result)
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed" and done.status["id"] == own.id


def test_an_operator_that_dies_after_deleting_a_job_to_retry_starts_another(
    store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit 75 (the database did not answer): the operator deletes the Job to start a
    new one later. It says so in status before the deletion, so an operator that died in
    between does not take the missing Job for one deleted under it."""
    env = environment(url_of_nothing(), store)
    env["spec"]["database"]["dialect"] = "postgresql"
    cluster = setup(jobs, env, backup())
    run(cluster, jobs)
    job = jobs.only()
    jobs.run_pod(job, monkeypatch)
    jobs.run_pod(job, monkeypatch)  # exit 75 twice: the Job failed
    body = cluster.get("Backup", "ns", "b") or {}
    reconcile_backup(body, cluster, now=LATER, jobs=jobs, settings=SETTINGS)  # then died
    assert jobs.jobs == {}
    again = run(cluster, jobs)
    assert again.status["phase"] == "Running" and len(jobs.jobs) == 1, again.status
    assert again.status["job"]["backupId"] == body["status"]["job"]["backupId"]


def url_of_nothing() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"postgresql+psycopg://app@127.0.0.1:{port}/app"  # nobody listens: Unreachable


def test_workers_side_by_side_never_take_one_free_slot_twice(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The operator's workers reconcile Backups at once: two that counted the same free
    slot (a slow API between the count and the create) must not both start a Job."""
    bodies = [backup(f"b{i}", created=f"2026-11-30T11:00:0{i}Z") for i in range(3)]
    cluster = setup(jobs, environment(url, store), *bodies)
    listed = jobs.list_jobs

    def slow_list(namespace: str, label_selector: str) -> list[dict[str, Any]]:
        found = listed(namespace, label_selector)
        time.sleep(0.2)  # the others count the same Jobs meanwhile
        return found

    monkeypatch.setattr(jobs, "list_jobs", slow_list)
    one_slot = JobSettings(image="ferry:test", per_namespace=1)
    workers = [
        threading.Thread(
            target=reconcile_backup,
            args=(cluster.get("Backup", "ns", b["metadata"]["name"]), cluster),
            kwargs={"now": LATER, "jobs": jobs, "settings": one_slot},
        )
        for b in bodies
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert len(jobs.jobs) == 1, list(jobs.jobs)
