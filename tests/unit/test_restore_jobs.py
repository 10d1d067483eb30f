"""Restores in Job mode (``spec.execution.mode: Job``), against the fake Jobs API whose
pods run the real CLI (``ferry restore``) on real SQLite databases and a real store.

A Job-mode Restore ends exactly as an in-process one: the same phase, reason, restored
rows and safety backup; the operator itself writes nothing into the target; the target's
application stays at zero across reconciles while the Job runs and is resumed whatever
way the Restore ends (also when it is deleted meanwhile, once the Job's pod stopped); a
pod that dies is replaced up to ``backoffLimit`` and then fails the Restore truthfully;
the namespace's Job limit queues it without stopping the application.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import sqlalchemy as sa

from controller.backups.fileroots import DirectoryRoot
from controller.backups.store import open_store
from controller.commands import backup as backup_commands
from controller.commands.backup import create_backup
from controller.errors import PermanentError
from controller.flows.application import release
from controller.flows.outcome import Outcome
from controller.flows.restore import reconcile_restore
from controller.flows.restore_job import stop_job
from controller.k8s.jobs import JobSettings
from controller.k8s.workloads import Health
from tests.fixtures import nocobase_shape as shape
from tests.unit.fake_cluster import FakeCluster
from tests.unit.fake_jobs import FakeJobs, assert_started, secret_free, unanswered_url
from tests.unit.fake_workloads import Clock, FakeWorkloads
from tests.unit.flow_support import conditions
from tests.unit.test_jobs import JOB, SETTINGS
from tests.unit.test_jobs import environment as backup_environment

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
WEB = "Deployment/web"
APP = {
    "workload": {"kind": "Deployment", "name": "web"},
    "quiesce": {"timeoutSeconds": 30},
    "health": {"url": "http://web.ns.svc/health", "timeoutSeconds": 20},
}
TABLE = "collections"  # a table of the NocoBase shape: the test deletes its rows


def environment(
    url: str, store: Path, execution: dict[str, Any] | None = JOB, **spec: Any
) -> dict[str, Any]:
    """``test_jobs``' Environment (prod on SQLite, a filesystem store), with ``spec``."""
    env = backup_environment(url, store, execution)
    env["spec"].update(spec)
    return env


def restore(backup_id: str, name: str = "r", **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Restore",
        "metadata": {"name": name, "generation": 1, "creationTimestamp": "2026-11-30T11:00:00Z"},
        "spec": {"backup": backup_id, "environment": "prod", **spec},
    }


@pytest.fixture
def jobs(tmp_path: Path) -> FakeJobs:
    (tmp_path / "results").mkdir()
    return FakeJobs(FakeCluster(), tmp_path / "results")


@pytest.fixture
def backup_id(url: str, store: Path) -> str:
    """A backup of prod; afterwards prod loses every row of TABLE (what a restore of
    the backup puts back)."""
    manifest, _ = create_backup(url, open_store(str(store)), environment="prod")
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {TABLE}"))
    engine.dispose()
    return manifest.id


def count(url: str, table: str = TABLE) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
    engine.dispose()
    return n


def setup(jobs: FakeJobs, *objects: dict[str, Any], secrets: Any = None) -> FakeCluster:
    cluster = FakeCluster(*objects, secrets=secrets)
    jobs.cluster = cluster
    return cluster


def run(
    cluster: FakeCluster,
    jobs: FakeJobs | None,
    name: str = "r",
    workloads: FakeWorkloads | None = None,
    settings: JobSettings = SETTINGS,
) -> Outcome:
    body = cluster.get("Restore", "ns", name)
    assert body is not None
    outcome = reconcile_restore(
        body,
        cluster,
        now=NOW,
        jobs=jobs,
        settings=settings,
        workloads=workloads,
        lifecycle_options=Clock().options(),
    )
    cluster.patch_status("Restore", "ns", name, outcome.status)
    return outcome


def ready(outcome: Outcome) -> tuple[str, str]:
    return conditions(outcome)["Ready"][:2]


def started_with_app(
    jobs: FakeJobs, url: str, store: Path, backup_id: str
) -> tuple[FakeCluster, FakeWorkloads, str]:
    """A Restore into prod, whose application runs two replicas, with its Job started:
    the cluster, the workloads and the Job's name."""
    cluster = setup(jobs, environment(url, store, application=APP), restore(backup_id))
    apps = FakeWorkloads({WEB: 2})
    run(cluster, jobs, workloads=apps)
    return cluster, apps, jobs.only()["metadata"]["name"]


def test_a_job_restore_completes_like_an_in_process_one(
    url: str, store: Path, backup_id: str, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    cluster = setup(jobs, environment(url, store), restore(backup_id))
    first = run(cluster, jobs)
    job = assert_started(jobs, first, "Restore", "r")
    name = job["metadata"]["name"]
    assert first.status["phase"] == "Restoring"
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["args"][:5] == ["restore", "--store", str(store), "--backup", backup_id]
    assert pod["automountServiceAccountToken"] is False  # the restore needs no API access
    assert count(url) == 0  # the operator itself wrote nothing

    jobs.run_pod(job, monkeypatch)
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed" and ready(done) == ("True", "Restored")
    assert done.status["job"] == {"name": name, "phase": "Succeeded", "attempts": 1}
    assert count(url) > 0
    safety = open_store(str(store)).manifest(done.status["safetyBackup"]["id"])
    assert safety.reason == "pre-restore" and safety.environment == "prod"

    # The same Restore in process, of the same backup into the same emptied table.
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text(f"DELETE FROM {TABLE}"))
    inproc = setup(jobs, environment(url, store, None), restore(backup_id))
    same = run(inproc, None)
    varying = {"safetyBackup", "startTime", "completionTime", "job", "conditions", "progress"}
    assert {k: v for k, v in done.status.items() if k not in varying} == {
        k: v for k, v in same.status.items() if k not in varying
    }
    assert ready(same) == ready(done)
    assert {k: v for k, v in done.status["progress"].items() if k != "updated"} == {
        k: v for k, v in same.status["progress"].items() if k != "updated"
    }


def test_the_application_stays_quiesced_across_reconciles_while_the_job_runs(
    url: str, store: Path, backup_id: str, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = setup(jobs, environment(url, store, application=APP), restore(backup_id))
    apps = FakeWorkloads({WEB: 3})
    first = run(cluster, jobs, workloads=apps)
    assert apps.replicas[WEB] == 0 and first.status["application"]["quiesced"] is True
    assert "--quiesced" in jobs.only()["spec"]["template"]["spec"]["containers"][0]["args"]
    body = cluster.get("Restore", "ns", "r") or {}
    assert "ferry.dev/finalizer" in body["metadata"]["finalizers"]
    again = run(cluster, jobs, workloads=apps)
    assert again.status["phase"] == "Restoring" and apps.replicas[WEB] == 0
    assert again.status["application"] == {"workload": WEB, "replicas": 3, "quiesced": True}
    apps.replicas[WEB] = 3  # a GitOps tool's self-heal scales it up while the Job writes
    held = run(cluster, jobs, workloads=apps)
    assert apps.replicas[WEB] == 0 and held.status["application"]["replicas"] == 3
    assert [c for c in apps.steps() if c[2] != 0] == []  # never resumed meanwhile

    jobs.run_pod(jobs.only(), monkeypatch)
    done = run(cluster, jobs, workloads=apps)
    assert done.status["phase"] == "Completed", done.status
    assert apps.replicas[WEB] == 3 and done.status["application"]["quiesced"] is False
    assert conditions(done)["ApplicationHealthy"][:2] == ("True", "Healthy")
    safety = open_store(str(store)).manifest(done.status["safetyBackup"]["id"])
    assert safety.reason == "pre-restore"


def test_a_pod_that_dies_is_replaced_and_the_restore_completes_once(
    url: str, store: Path, backup_id: str, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, apps, name = started_with_app(jobs, url, store, backup_id)
    job = jobs.only()
    jobs.end_pod("ns", name, 143, "Error", "")  # deleted: no result
    replaced = run(cluster, jobs, workloads=apps)
    assert replaced.status["phase"] == "Restoring" and replaced.status["job"]["attempts"] == 2
    assert apps.replicas[WEB] == 0
    jobs.run_pod(job, monkeypatch)
    done = run(cluster, jobs, workloads=apps)
    assert done.status["phase"] == "Completed" and done.status["job"]["attempts"] == 2
    assert count(url) > 0 and apps.replicas[WEB] == 2
    assert run(cluster, jobs, workloads=apps).status == {}  # finished: left alone
    assert [c for c in jobs.calls if c[0] == "create"] == [("create", job["metadata"]["name"])]


def test_pods_that_die_past_the_backoff_limit_fail_the_restore_truthfully(
    url: str, store: Path, backup_id: str, jobs: FakeJobs
) -> None:
    cluster, apps, name = started_with_app(jobs, url, store, backup_id)
    jobs.end_pod("ns", name, 137, "OOMKilled", "")
    jobs.end_pod("ns", name, 143, "Error", "")
    failed = run(cluster, jobs, workloads=apps)
    assert failed.status["phase"] == "Failed" and ready(failed) == ("False", "RestoreFailed")
    message = failed.status["message"]
    assert "BackoffLimitExceeded" in message and "Error (exit 143)" in message
    assert "whether its transaction committed is not known" in message
    assert failed.status["job"]["phase"] == "Failed" and failed.retry_after is None
    assert apps.replicas[WEB] == 2 and failed.status["application"]["quiesced"] is False


def test_a_refused_restore_fails_with_the_in_process_reason_and_message(
    url: str, store: Path, jobs: FakeJobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A backup of another database into a non-empty one: the CLI's check refuses it
    (exit 2), and the Restore says what the in-process check says, problems included."""
    other = f"sqlite:///{tmp_path}/other.db"
    shape.build(other, app="other")
    foreign, _ = create_backup(other, open_store(str(store)), environment="other")
    cluster = setup(jobs, environment(url, store), restore(foreign.id))
    run(cluster, jobs)
    jobs.run_pod(jobs.only(), monkeypatch)  # exit 2: the Job controller retries it too
    jobs.run_pod(jobs.only(), monkeypatch)
    failed = run(cluster, jobs)
    inproc = setup(jobs, environment(url, store, None), restore(foreign.id))
    same = run(inproc, None)
    assert same.status["phase"] == "Failed", same.status
    assert failed.status["phase"] == "Failed"
    assert ready(failed) == ready(same) and ready(same)[1] not in ("RestoreFailed", "Refused")
    assert failed.status["message"] == same.status["message"]


def test_a_temporary_failure_waits_resumes_the_app_and_runs_a_new_job(
    store: Path, backup_id: str, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(unanswered_url(), store, application=APP)
    env["spec"]["database"]["dialect"] = "postgresql"
    cluster = setup(jobs, env, restore(backup_id))
    apps = FakeWorkloads({WEB: 2})
    run(cluster, jobs, workloads=apps)
    jobs.run_pod(jobs.only(), monkeypatch)
    jobs.run_pod(jobs.only(), monkeypatch)
    waiting = run(cluster, jobs, workloads=apps)
    assert waiting.status["phase"] == "Pending" and ready(waiting)[1] == "Unreachable"
    assert waiting.retry_after is not None and jobs.jobs == {}
    assert apps.replicas[WEB] == 2  # as in process: resumed while it waits
    again = run(cluster, jobs, workloads=apps)
    assert again.status["phase"] == "Restoring" and len(jobs.jobs) == 1
    assert apps.replicas[WEB] == 0


def test_a_restore_deleted_while_its_job_runs_resumes_once_the_pod_stopped(
    url: str, store: Path, backup_id: str, jobs: FakeJobs
) -> None:
    cluster, apps, name = started_with_app(jobs, url, store, backup_id)
    body = cluster.get("Restore", "ns", "r") or {}
    running = {"metadata": {"name": f"{name}-0"}, "status": {"phase": "Running"}}
    jobs.pods[("ns", name)].append(running)
    kept = dict(jobs.pods)
    jobs.delete_job = lambda ns, n: jobs.calls.append(("delete", n))  # type: ignore[method-assign]
    waiting = stop_job(body, jobs)
    assert waiting is not None and f"{name}-0" in waiting
    assert ("delete", name) in jobs.calls and apps.replicas[WEB] == 0
    running["status"] = {"phase": "Failed"}  # the pod stopped
    jobs.pods = kept
    assert stop_job(body, jobs) is None
    assert release(body, apps) == f"{WEB} back at 2 replicas" and apps.replicas[WEB] == 2


def test_the_namespace_limit_queues_a_restore_without_quiescing(
    url: str, store: Path, backup_id: str, jobs: FakeJobs
) -> None:
    busy = [
        {"metadata": {"name": f"other-{i}", "labels": {"app.kubernetes.io/managed-by": "ferry"}}}
        for i in range(2)
    ]
    cluster = setup(jobs, environment(url, store, application=APP), restore(backup_id))
    for job in busy:
        jobs.create_job("ns", job)
    apps = FakeWorkloads({WEB: 2})
    queued = run(cluster, jobs, workloads=apps)
    assert queued.status["phase"] == "Queued" and ready(queued) == ("False", "JobQueued")
    assert "its limit is 2" in queued.status["message"] and queued.retry_after == 10.0
    assert apps.replicas[WEB] == 2 and apps.steps() == []
    jobs.delete_job("ns", "other-0")
    assert run(cluster, jobs, workloads=apps).status["phase"] == "Restoring"
    assert apps.replicas[WEB] == 0


def test_a_sigterm_once_the_restore_committed_is_held_back_and_it_completes(
    url: str, store: Path, backup_id: str, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    cluster = setup(jobs, environment(url, store), restore(backup_id))
    run(cluster, jobs)
    result = backup_commands.RestoreResult

    def stopped_after_the_commit(*args: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)  # the kubelet stops the container now
        return result(*args)

    monkeypatch.setattr(backup_commands, "RestoreResult", stopped_after_the_commit)
    jobs.run_pod(jobs.only(), monkeypatch)
    assert "signal 15 held back: the restore was already committed" in capsys.readouterr().err
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed" and done.status["job"]["attempts"] == 1


def test_a_sigterm_before_the_commit_leaves_the_target_as_it_was(
    url: str, store: Path, backup_id: str, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped while it writes, the pod's transaction rolls back: a rerun starts from
    the target as it was, which is why the Job may replace the pod."""
    cluster = setup(jobs, environment(url, store), restore(backup_id))
    run(cluster, jobs)
    apply = backup_commands._apply_restore

    def stopped_while_writing(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        return apply(*args, **kwargs)

    with monkeypatch.context() as patched:
        patched.setattr(backup_commands, "_apply_restore", stopped_while_writing)
        with pytest.raises(SystemExit) as stopped:
            jobs.run_pod(jobs.only(), monkeypatch)
    assert stopped.value.code == 143 and count(url) == 0
    jobs.end_pod("ns", jobs.only()["metadata"]["name"], 143, "Error", "")
    jobs.run_pod(jobs.only(), monkeypatch)
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed" and count(url) > 0


@pytest.mark.parametrize(
    ("database", "settings", "fragment"),
    [
        pytest.param(
            {"dialect": "postgresql", "url": "postgresql://u:s3cret-pw@db/app"},
            SETTINGS,
            "holds a password",
            id="literal-password",
        ),
        pytest.param(None, JobSettings(image=None), "no job image", id="no-image"),
    ],
)
def test_what_job_mode_cannot_carry_fails_at_once_without_quiescing(
    url: str, store: Path, backup_id: str, jobs: FakeJobs,
    database: dict[str, Any] | None, settings: JobSettings, fragment: str,
) -> None:  # fmt: skip
    env = environment(url, store, application=APP)
    if database is not None:
        env["spec"]["database"] = database
    cluster = setup(jobs, env, restore(backup_id))
    apps = FakeWorkloads({WEB: 2})
    failed = run(cluster, jobs, workloads=apps, settings=settings)
    assert failed.status["phase"] == "Failed" and ready(failed) == ("False", "JobUnavailable")
    assert fragment in failed.status["message"] and "s3cret-pw" not in repr(failed)
    assert jobs.jobs == {} and apps.replicas[WEB] == 2 and apps.steps() == []


def test_a_restore_overrides_the_environments_mode_key_by_key(
    url: str, store: Path, backup_id: str, jobs: FakeJobs
) -> None:
    cluster = setup(
        jobs,
        environment(url, store),
        restore(backup_id, "inproc", execution={"mode": "InProcess"}),
        restore(backup_id, "longer", execution={"activeDeadlineSeconds": 60}),
    )
    assert run(cluster, jobs, "inproc").status["phase"] == "Completed" and jobs.jobs == {}
    assert run(cluster, jobs, "longer").status["phase"] == "Restoring"
    assert jobs.only()["spec"]["activeDeadlineSeconds"] == 60


def test_secrets_reach_the_restore_job_only_as_references(
    store: Path, backup_id: str, jobs: FakeJobs
) -> None:
    url = "postgresql+psycopg://ferry:hunter2-db-pass@pg.db.svc:5432/app"
    secrets = {"db-url": {"url": url}}
    env = environment("sqlite:///unused", store)
    env["spec"]["database"] = {
        "dialect": "postgresql",
        "urlFrom": {"secretKeyRef": {"name": "db-url", "key": "url"}},
    }
    cluster = setup(jobs, env, restore(backup_id), secrets=secrets)
    run(cluster, jobs)
    job = jobs.only()
    assert secret_free(job, secrets) == []
    assert jobs.container_env(job)["FERRY_DATABASE_URL"] == url


@pytest.mark.parametrize("version", ["1.29.0", "1.37.0"])  # the chart's supported range
def test_the_restore_job_manifest_passes_the_kubernetes_schema_strictly(
    url: str, store: Path, backup_id: str, jobs: FakeJobs, version: str
) -> None:
    execution = {**JOB, "resources": {"limits": {"memory": "1Gi"}}}
    cluster = setup(
        jobs,
        environment(url, store, execution, application=APP),
        restore(backup_id, tables=["collections", "ui*"], force=True),
    )
    run(cluster, jobs, workloads=FakeWorkloads({WEB: 1}))
    job = jobs.only()
    job["metadata"].pop("namespace")
    kubernetes_validate.validate(job, version, strict=True)
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-3:] == ["--tables=collections,ui*", "--force", "--quiesced"]


def test_an_unhealthy_application_after_a_job_restore_is_said_not_undone(
    url: str, store: Path, backup_id: str, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = setup(jobs, environment(url, store, application=APP), restore(backup_id))
    apps = FakeWorkloads({WEB: 1}, health=[Health(False, "HTTP 503")])
    run(cluster, jobs, workloads=apps)
    jobs.run_pod(jobs.only(), monkeypatch)
    done = run(cluster, jobs, workloads=apps)
    assert done.status["phase"] == "Completed" and apps.replicas[WEB] == 1
    assert conditions(done)["ApplicationHealthy"][:2] == ("False", "ApplicationUnhealthy")
    assert count(url) > 0


def files_backup(url: str, store: Path, root: Path) -> str:
    """A backup of prod with its files below ``root``; afterwards one file is edited,
    one added and one excluded file changed (the restore must not touch that one)."""
    (root / "uploads").mkdir(parents=True)
    (root / "uploads" / "logo.png").write_bytes(b"\x89PNG" + bytes(range(256)))
    (root / "uploads" / "draft.tmp").write_bytes(b"excluded")
    manifest, _ = create_backup(
        url, open_store(str(store)), environment="prod", files=DirectoryRoot(root, ("*.tmp",))
    )
    (root / "uploads" / "logo.png").write_bytes(b"edited since")
    (root / "uploads" / "new.txt").write_bytes(b"uploaded since")
    (root / "uploads" / "draft.tmp").write_bytes(b"still excluded")
    return manifest.id


def test_a_job_restore_puts_the_files_back_on_their_claim_as_in_process(
    url: str, store: Path, jobs: FakeJobs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "storage"
    backup_id = files_backup(url, store, root)
    files = {"path": str(root), "exclude": ["*.tmp"]}
    execution = {**JOB, "filesVolumeClaim": "uploads"}
    cluster = setup(jobs, environment(url, store, execution, files=files), restore(backup_id))
    run(cluster, jobs)
    job = jobs.only()
    pod = job["spec"]["template"]["spec"]
    assert {"name": "files", "persistentVolumeClaim": {"claimName": "uploads"}} in pod["volumes"]
    assert {"name": "files", "mountPath": str(root)} in pod["containers"][0]["volumeMounts"]
    args = pod["containers"][0]["args"]
    assert args[-3:] == ["--files", str(root), "--files-exclude=*.tmp"]
    assert (root / "uploads" / "logo.png").read_bytes() == b"edited since"  # not yet
    jobs.run_pod(job, monkeypatch)
    done = run(cluster, jobs)
    assert done.status["phase"] == "Completed", done.status
    assert (root / "uploads" / "logo.png").read_bytes().startswith(b"\x89PNG")
    assert not (root / "uploads" / "new.txt").exists()  # moved aside
    assert (root / "uploads" / "draft.tmp").read_bytes() == b"still excluded"
    assert done.status["files"]["written"] == 1 and done.status["files"]["displaced"] == 2

    # In process, from the same state: the same status.files and the same message.
    (root / "uploads" / "logo.png").write_bytes(b"edited since")
    (root / "uploads" / "new.txt").write_bytes(b"uploaded since")
    inproc = setup(jobs, environment(url, store, None, files=files), restore(backup_id))
    same = run(inproc, None)
    moved = {"displacedTo"}  # its stamp: the time it ran
    assert {k: v for k, v in done.status["files"].items() if k not in moved} == {
        k: v for k, v in same.status["files"].items() if k not in moved
    }
    assert (
        same.status["message"].split(" moved aside")[0]
        == (done.status["message"].split(" moved aside")[0])
    )


@pytest.mark.parametrize(
    ("files", "execution", "fragment"),
    [
        ({"path": "/srv/storage"}, JOB, "filesVolumeClaim"),
        ({"s3": {"bucket": "uploads"}}, {**JOB, "filesVolumeClaim": "x"}, "S3 prefix"),
    ],
    ids=["no-claim", "s3-files"],
)
def test_files_a_job_cannot_reach_fail_the_restore_at_once(
    url: str, store: Path, jobs: FakeJobs, tmp_path: Path,
    files: dict[str, Any], execution: dict[str, Any], fragment: str,
) -> None:  # fmt: skip
    backup_id = files_backup(url, store, tmp_path / "storage")
    env = environment(url, store, execution, files=files, application=APP)
    cluster = setup(jobs, env, restore(backup_id))
    apps = FakeWorkloads({WEB: 2})
    failed = run(cluster, jobs, workloads=apps)
    assert failed.status["phase"] == "Failed" and ready(failed) == ("False", "JobUnavailable")
    assert fragment in failed.status["message"] and jobs.jobs == {} and apps.steps() == []


def test_a_write_that_fails_ends_reverted_as_in_process(
    url: str, store: Path, backup_id: str, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write fails inside the pod (its transaction rolled back): the CLI exits 1
    naming the error ``Reverted``, and the Restore ends ``Reverted`` as in process."""

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise PermanentError("disk full while writing collections")

    no_retry = {**JOB, "backoffLimit": 0}
    cluster = setup(jobs, environment(url, store, no_retry), restore(backup_id))
    run(cluster, jobs)
    with monkeypatch.context() as patched:
        patched.setattr(backup_commands, "_apply_restore", failing)
        jobs.run_pod(jobs.only(), monkeypatch)
        inproc = setup(jobs, environment(url, store, None), restore(backup_id))
        same = run(inproc, None)
    jobs.cluster = cluster
    reverted = run(cluster, jobs)
    assert same.status["phase"] == reverted.status["phase"] == "Reverted", reverted.status
    assert ready(reverted) == ready(same) == ("False", "RestoreFailed")
    assert reverted.status["message"] == same.status["message"]
    assert "the target is unchanged" in reverted.status["message"] and count(url) == 0
