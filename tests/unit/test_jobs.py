"""Backups in Job mode (``spec.execution.mode: Job``), against a fake Jobs API whose pods
run the real CLI on a real SQLite database and a real store.

A Job-mode Backup ends exactly as an in-process one: the same phase, reason and stored
archive; a pod that dies is replaced up to ``backoffLimit`` and then fails the Backup
with the in-process failure reason; a restarted operator adopts its Job; the namespace's
limit of Jobs queues the rest in creation order; nothing secret reaches the Job's spec.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from controller.backups.store import _FsWriter
from controller.flows.backup import reconcile_backup
from controller.flows.jobs import job_name
from controller.flows.outcome import Outcome
from controller.k8s.jobs import JobSettings
from tests.unit.fake_cluster import FakeCluster
from tests.unit.fake_jobs import FakeJobs, secret_free
from tests.unit.flow_support import conditions

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "Connected"}]}
SETTINGS = JobSettings(image="ferry:test", per_namespace=2)
KEY = "c3RvcmUta2V5LXZhbHVlLTMyLWJ5dGVzLWxvbmctb2s="  # a store keyring: 32 bytes, base64
JOB = {"mode": "Job", "storeVolumeClaim": "backups", "backoffLimit": 1}


def environment(url: str, store: Path, execution: dict[str, Any] | None = JOB) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "stage": "production",
        "database": {"dialect": "sqlite", "url": url},
        "backups": {"store": {"path": str(store)}},
    }
    if execution is not None:
        spec["execution"] = execution
    return {"kind": "Environment", "metadata": {"name": "prod"}, "spec": spec, "status": READY}


def backup(name: str = "b", created: str = "2026-11-30T11:00:00Z", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Backup",
        "metadata": {"name": name, "generation": 1, "creationTimestamp": created},
        "spec": {"environment": "prod", **spec},
    }


@pytest.fixture
def jobs(tmp_path: Path) -> FakeJobs:
    return FakeJobs(FakeCluster(), tmp_path / "results")


def run(
    cluster: FakeCluster, jobs: FakeJobs | None, name: str = "b", settings: JobSettings = SETTINGS
) -> Outcome:
    body = cluster.get("Backup", "ns", name)
    assert body is not None
    outcome = reconcile_backup(body, cluster, now=NOW, jobs=jobs, settings=settings)
    cluster.patch_status("Backup", "ns", name, outcome.status)
    return outcome


def setup(jobs: FakeJobs, *objects: dict[str, Any], secrets: Any = None) -> FakeCluster:
    cluster = FakeCluster(*objects, secrets=secrets)
    jobs.cluster = cluster
    jobs.result_dir.mkdir(exist_ok=True)
    return cluster


def ready(outcome: Outcome) -> tuple[str, str]:
    return conditions(outcome)["Ready"][:2]


def test_a_job_backup_completes_like_an_in_process_one(
    url: str, store: Path, jobs: FakeJobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = setup(jobs, environment(url, store), backup(reason="scheduled"))
    first = run(cluster, jobs)
    job = jobs.only()
    name = job["metadata"]["name"]
    assert name == job_name("Backup", "b", "uid-Backup-b")
    assert first.status["phase"] == "Running" and ready(first) == ("False", "JobRunning")
    chosen = first.status["job"]["backupId"]
    assert first.status["job"] == {
        "name": name,
        "phase": "Running",
        "attempts": 1,
        "backupId": chosen,
    }
    assert first.retry_after == 5.0
    # The operator chose the ID and recorded it before the Job existed; the pod writes it.
    assert jobs.status_at_create[name]["job"] == {"backupId": chosen}
    assert job["spec"]["template"]["spec"]["containers"][0]["args"][6:8] == ["--id", chosen]
    assert job["spec"]["podReplacementPolicy"] == "Failed"  # one pod at a time
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Backup", "b", "uid-Backup-b")
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "ferry:test" and container["args"][:2] == ["backup", "create"]
    assert container["terminationMessagePolicy"] == "File"
    assert pod["automountServiceAccountToken"] is False
    assert {"name": "store", "persistentVolumeClaim": {"claimName": "backups"}} in pod["volumes"]
    assert job["spec"]["backoffLimit"] == 1 and job["spec"]["activeDeadlineSeconds"] == 3600
    assert list(store.rglob("*.json")) == []  # the operator itself wrote nothing

    jobs.run_pod(job, monkeypatch)
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed" and ready(done) == ("True", "Completed")
    assert done.status["job"] == {
        "name": name,
        "phase": "Succeeded",
        "attempts": 1,
        "backupId": chosen,
    }
    manifest = json.loads(next(store.rglob("manifest.json")).read_text())
    assert manifest["id"] == done.status["id"] == chosen and manifest["reason"] == "scheduled"

    # The same Backup in process: the same status, but for the ID, times and the Job.
    inproc = setup(jobs, environment(url, tmp_path / "store2", None), backup())
    (tmp_path / "store2").mkdir()
    same = run(inproc, None)
    varying = {"id", "location", "checksum", "startTime", "completionTime", "message", "job"}
    varying |= {"progress"}  # its time of update
    assert {k: v for k, v in done.status.items() if k not in varying | {"conditions"}} == {
        k: v for k, v in same.status.items() if k not in varying | {"conditions"}
    }
    assert ready(same) == ready(done)
    assert done.status["tables"] > 0 and done.status["rows"] == same.status["rows"]


def test_a_job_backup_copies_the_files_from_their_claim_as_in_process(
    url: str, store: Path, jobs: FakeJobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "storage"
    (root / "uploads").mkdir(parents=True)
    (root / "uploads" / "logo.png").write_bytes(b"\x89PNG logo")
    (root / "uploads" / "draft.tmp").write_bytes(b"excluded")
    files = {"path": str(root), "exclude": ["*.tmp"]}
    env = environment(url, store, {**JOB, "filesVolumeClaim": "uploads"})
    env["spec"]["files"] = files
    cluster = setup(jobs, env, backup())
    run(cluster, jobs)
    job = jobs.only()
    pod = job["spec"]["template"]["spec"]
    claim = {"claimName": "uploads", "readOnly": True}
    assert {"name": "files", "persistentVolumeClaim": claim} in pod["volumes"]
    mount = {"name": "files", "mountPath": str(root), "readOnly": True}
    assert mount in pod["containers"][0]["volumeMounts"]
    assert pod["containers"][0]["args"][-3:] == ["--files", str(root), "--files-exclude=*.tmp"]
    jobs.run_pod(job, monkeypatch)
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed", done.status
    assert done.status["files"]["count"] == 1

    # The same Backup in process: the same files in the same words.
    other = tmp_path / "store2"
    other.mkdir()
    inproc_env = environment(url, other, None)
    inproc_env["spec"]["files"] = files
    same = run(setup(jobs, inproc_env, backup()), None)
    assert same.status["files"] == done.status["files"]


def test_a_restarted_operator_adopts_the_running_job(url: str, store: Path, jobs: FakeJobs) -> None:
    cluster = setup(jobs, environment(url, store), backup())
    run(cluster, jobs)
    run(cluster, jobs)
    # A new operator process: the Backup's status may even have lost the Job's name.
    cluster.patch_status("Backup", "ns", "b", {"job": None})
    again = run(cluster, jobs)
    assert [c for c in jobs.calls if c[0] == "create"] == [
        ("create", jobs.only()["metadata"]["name"])
    ]
    assert again.status["job"]["name"] == jobs.only()["metadata"]["name"]


def test_a_pod_that_dies_is_replaced_then_fails_the_backup_as_in_process(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = setup(jobs, environment(url, store), backup())
    run(cluster, jobs)
    job = jobs.only()
    ns, name = "ns", job["metadata"]["name"]
    jobs.end_pod(ns, name, 137, "OOMKilled", "")  # killed: no result written
    replaced = run(cluster, jobs)
    assert replaced.status["phase"] == "Running"
    assert replaced.status["job"]["attempts"] == 2
    jobs.end_pod(ns, name, 143, "Error", "")  # deleted: SIGTERM, no result either
    failed = run(cluster, jobs)
    assert failed.status["phase"] == "Failed" and ready(failed) == ("False", "BackupFailed")
    assert "BackoffLimitExceeded" in failed.status["message"]
    assert "Error (exit 143)" in failed.status["message"]
    assert failed.status["job"]["phase"] == "Failed" and failed.retry_after is None
    assert list(store.rglob("manifest.json")) == []


def test_a_sigterm_once_the_backup_is_written_is_held_back_and_the_backup_completes(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The pod is deleted as its backup is published: the CLI finishes (exit 0, the
    result written) instead of ending as stopped beside a complete, unnamed backup."""
    cluster = setup(jobs, environment(url, store), backup())
    run(cluster, jobs)
    publish = _FsWriter.publish

    def deleted_while_publishing(self: _FsWriter, manifest: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)  # the kubelet stops the container now
        return publish(self, manifest)

    monkeypatch.setattr(_FsWriter, "publish", deleted_while_publishing)
    jobs.run_pod(jobs.only(), monkeypatch)
    assert "signal 15 held back: the backup was already published" in capsys.readouterr().err
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed", done.status
    assert [p.parent.name for p in store.rglob("manifest.json")] == [done.status["id"]]


def test_a_pod_killed_after_it_wrote_its_result_completes_the_backup(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed between its result and its exit, the pod fails the Job (no retry left),
    but the backup it published is complete: the Backup says so, as the store does."""
    no_retry = {**JOB, "backoffLimit": 0}
    cluster = setup(jobs, environment(url, store, no_retry), backup())
    run(cluster, jobs)
    jobs.run_pod(jobs.only(), monkeypatch, killed=signal.SIGKILL)
    assert jobs.only()["status"]["conditions"][0]["type"] == "Failed"
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed" and ready(done)[0] == "True", done.status
    assert [p.parent.name for p in store.rglob("manifest.json")] == [done.status["id"]]


def test_a_failing_job_whose_pod_still_stops_is_not_failed_yet(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kubernetes marks a Job ``FailureTarget`` when its last pod is deleted, and
    ``Failed`` only once that pod has stopped: a pod deleted as it finished publishes its
    backup in between, so the Backup waits for the pod instead of failing beside it."""
    no_retry = {**JOB, "backoffLimit": 0}
    cluster = setup(jobs, environment(url, store, no_retry), backup())
    run(cluster, jobs)
    job = jobs.only()
    target = {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded"}
    job["status"] = {"active": 1, "conditions": [target]}  # the pod deleted, still stopping
    waiting = run(cluster, jobs)
    assert waiting.status["phase"] == "Running" and ready(waiting)[1] == "JobRunning"
    assert waiting.retry_after is not None
    jobs.run_pod(job, monkeypatch, killed=signal.SIGTERM)  # it finished anyway
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed", done.status
    assert [p.parent.name for p in store.rglob("manifest.json")] == [done.status["id"]]


def test_a_pod_that_dies_once_and_then_succeeds_completes(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = setup(jobs, environment(url, store), backup())
    run(cluster, jobs)
    job = jobs.only()
    jobs.end_pod("ns", job["metadata"]["name"], 137, "OOMKilled", "")
    jobs.run_pod(job, monkeypatch)
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed" and done.status["job"]["attempts"] == 2


def test_an_invalid_selection_fails_with_the_in_process_reason(
    url: str, store: Path, jobs: FakeJobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = setup(jobs, environment(url, store), backup(tables=["no_such_table"]))
    run(cluster, jobs)
    jobs.run_pod(jobs.only(), monkeypatch)  # exit 2: the Job controller retries it too
    jobs.run_pod(jobs.only(), monkeypatch)
    failed = run(cluster, jobs)
    inproc = setup(jobs, environment(url, store, None), backup(tables=["no_such_table"]))
    same = run(inproc, None)
    assert failed.status["phase"] == same.status["phase"] == "Failed"
    assert ready(failed) == ready(same) == ("False", "InvalidSelection")
    assert same.status["message"] in failed.status["message"]


def test_a_temporary_failure_waits_and_runs_a_new_job(
    tmp_path: Path, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = f"postgresql+psycopg://app@127.0.0.1:{port}/app"  # nobody listens: Unreachable
    env = environment(closed, store)
    env["spec"]["database"]["dialect"] = "postgresql"
    cluster = setup(jobs, env, backup())
    run(cluster, jobs)
    jobs.run_pod(jobs.only(), monkeypatch)
    result = json.loads(
        jobs.pods[("ns", jobs.only()["metadata"]["name"])][0]["status"]["containerStatuses"][0][
            "state"
        ]["terminated"]["message"]
    )
    if result["exitCode"] != 75:
        pytest.fail(f"expected a temporary failure from a closed port: {result}")
    jobs.run_pod(jobs.only(), monkeypatch)
    waiting = run(cluster, jobs)
    assert waiting.status["phase"] == "Pending" and ready(waiting) == ("False", "Unreachable")
    assert jobs.jobs == {} and ("delete", job_name("Backup", "b", "uid-Backup-b")) in jobs.calls
    again = run(cluster, jobs)
    assert again.status["phase"] == "Running" and len(jobs.jobs) == 1


def test_the_namespace_limit_queues_backups_in_creation_order(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = ["b0", "b1", "b2", "b3"]
    bodies = [backup(n, created=f"2026-11-30T11:00:0{i}Z") for i, n in enumerate(names)]
    cluster = setup(jobs, environment(url, store), *bodies)
    # b3 reconciles first, then b2: the limit is two.
    assert run(cluster, jobs, "b3").status["phase"] == "Running"
    assert run(cluster, jobs, "b2").status["phase"] == "Running"
    queued = run(cluster, jobs, "b1")
    assert ready(queued) == ("False", "JobQueued") and queued.retry_after == 10.0
    assert "runs 2 Ferry Job(s), its limit is 2" in queued.status["message"]
    assert ready(run(cluster, jobs, "b0")) == ("False", "JobQueued")
    assert len(jobs.jobs) == 2
    jobs.run_pod(jobs.get_job("ns", job_name("Backup", "b3", "uid-Backup-b3")) or {}, monkeypatch)
    # One slot is free: b1 is queued, but b0 was created before it and goes first.
    assert ready(run(cluster, jobs, "b1")) == ("False", "JobQueued")
    assert run(cluster, jobs, "b0").status["phase"] == "Running"
    assert len([j for j in jobs.jobs if j[1].startswith("ferry-backup-b0")]) == 1


def test_secrets_reach_the_job_only_as_references(store: Path, jobs: FakeJobs) -> None:
    secrets = {
        "db": {"password": "hunter2-db-pass"},
        "store-key": {"key": KEY},
    }
    env = environment("sqlite:///unused", store)
    env["spec"]["database"] = {
        "dialect": "postgresql",
        "host": "pg.db.svc",
        "port": 5432,
        "name": "app",
        "user": "ferry",
        "passwordFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
    }
    env["spec"]["backups"]["store"]["keyFrom"] = {
        "secretKeyRef": {"name": "store-key", "key": "key"}
    }
    cluster = setup(jobs, env, backup(), secrets=secrets)
    run(cluster, jobs)
    job = jobs.only()
    assert secret_free(job, secrets) == []
    container = job["spec"]["template"]["spec"]["containers"][0]
    env_vars = {v["name"]: v for v in container["env"]}
    assert env_vars["FERRY_DATABASE_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "db",
        "key": "password",
    }
    assert (
        env_vars["FERRY_DATABASE_URL"]["value"] == "postgresql+psycopg://ferry@pg.db.svc:5432/app"
    )
    assert env_vars["FERRY_STORE_KEY_FILE"]["value"] == "/var/run/ferry/store-key/keyring"
    assert jobs.container_env(job)["FERRY_DATABASE_PASSWORD"] == "hunter2-db-pass"


@pytest.mark.parametrize(
    ("database", "execution", "settings", "fragment"),
    [
        pytest.param(
            {"dialect": "postgresql", "url": "postgresql://u:s3cret-pw@db/app"},
            JOB,
            SETTINGS,
            "holds a password",
            id="literal-password",
        ),
        pytest.param(None, {"mode": "Job"}, SETTINGS, "storeVolumeClaim", id="no-claim"),
        pytest.param(None, JOB, JobSettings(image=None), "no job image", id="no-image"),
        pytest.param({"files": True}, JOB, SETTINGS, "filesVolumeClaim", id="files-no-claim"),
        pytest.param(
            {"files": "s3"}, {**JOB, "filesVolumeClaim": "x"}, SETTINGS, "S3 prefix", id="s3-files"
        ),
    ],
)
def test_what_job_mode_cannot_carry_fails_at_once(
    url: str,
    store: Path,
    jobs: FakeJobs,
    database: dict[str, Any] | None,
    execution: dict[str, Any],
    settings: JobSettings,
    fragment: str,
    tmp_path: Path,
) -> None:
    env = environment(url, store, execution)
    if database == {"files": True}:  # a directory, but no claim that holds it
        env["spec"]["files"] = {"path": str(tmp_path / "uploads")}
    elif database == {"files": "s3"}:  # no claim can hold an S3 prefix
        env["spec"]["files"] = {"s3": {"bucket": "uploads"}}
    elif database is not None:
        env["spec"]["database"] = database
    cluster = setup(jobs, env, backup())
    failed = run(cluster, jobs, settings=settings)
    assert failed.status["phase"] == "Failed" and ready(failed) == ("False", "JobUnavailable")
    assert fragment in failed.status["message"] and "s3cret-pw" not in repr(failed)
    assert jobs.jobs == {}


def test_a_backup_overrides_the_environments_mode_key_by_key(
    url: str, store: Path, jobs: FakeJobs
) -> None:
    cluster = setup(
        jobs,
        environment(url, store),
        backup("inproc", execution={"mode": "InProcess"}),
        backup("longer", execution={"activeDeadlineSeconds": 60}),
    )
    assert run(cluster, jobs, "inproc").status["phase"] == "Completed" and jobs.jobs == {}
    assert run(cluster, jobs, "longer").status["phase"] == "Running"
    only = jobs.only()
    assert only["spec"]["activeDeadlineSeconds"] == 60
    assert only["spec"]["template"]["spec"]["volumes"][1]["persistentVolumeClaim"] == {
        "claimName": "backups"
    }


def test_an_unanswering_jobs_api_is_waited_for(url: str, store: Path, jobs: FakeJobs) -> None:
    cluster = setup(jobs, environment(url, store), backup())
    jobs.unanswered = True
    waiting = run(cluster, jobs)
    assert waiting.status["phase"] == "Pending" and ready(waiting) == ("False", "Unreachable")
    assert waiting.retry_after == 5.0


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])  # the chart's supported range
def test_the_job_manifest_passes_the_kubernetes_schema_strictly(
    url: str, store: Path, jobs: FakeJobs, version: str
) -> None:
    execution = {
        **JOB,
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "serviceAccountName": "backups",
    }
    env = environment(url, store, execution)
    env["spec"]["backups"]["store"]["keyFrom"] = {"secretKeyRef": {"name": "k", "key": "key"}}
    cluster = setup(jobs, env, backup(tables=["users", "roles"]), secrets={"k": {"key": KEY}})
    run(cluster, jobs)
    job = jobs.only()
    job["metadata"].pop("namespace")
    kubernetes_validate.validate(job, version, strict=True)  # raises on any unknown field
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "250m", "memory": "256Mi"},
        "limits": {"memory": "1Gi"},
    }
    assert container["args"][-2:] == ["--tables", "users,roles"]
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "backups"


def test_a_deleted_pod_counts_as_an_attempt_once_it_left_the_pod_list(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = setup(jobs, environment(url, store), backup())
    run(cluster, jobs)
    job = jobs.only()
    key = ("ns", job["metadata"]["name"])
    jobs.end_pod(*key, 143, "Error", "")
    jobs.pods[key].clear()  # a deleted pod is gone from the list; the Job still counts it
    jobs.run_pod(job, monkeypatch)
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed" and done.status["job"]["attempts"] == 2
