"""Migrations in Job mode (``spec.execution.mode: Job``), against the fake Jobs API whose
pods run the real CLI (``ferry migrate``) on real SQLite databases and a real store.

The apply runs in the Job's pod, with the approved digest and the migration ID the
operator chose; planning, approval, quiesce, resume, health and the rollback of an
unhealthy result stay in the operator. The target's ledger row of that ID decides how
the Migration ends, whatever the pod said or whether it is still there; a pod that dies
before the commit is replaced, one that dies after it ends the Migration as the ledger
says, once.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import sqlalchemy as sa

from controller.backups.store import open_store
from controller.flows.migration import ledger_id, reconcile_migration
from controller.flows.migration_job import stop_migration_job, unrecorded_state
from controller.flows.outcome import Outcome
from controller.k8s.jobs import JobSettings
from controller.k8s.workloads import Health
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_refused
from tests.unit.fake_cluster import FakeCluster
from tests.unit.fake_jobs import (
    FakeJobs,
    assert_started,
    assert_stopped_before_resumed,
    secret_free,
)
from tests.unit.fake_workloads import Clock, FakeWorkloads
from tests.unit.flow_support import conditions
from tests.unit.test_jobs import SETTINGS

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.UTC)
READY = {"conditions": [{"type": "Ready", "status": "True", "reason": "Connected"}]}
JOB = {"mode": "Job", "storeVolumeClaim": "backups", "backoffLimit": 1}
WEB = "Deployment/web"
APP = {
    "workload": {"kind": "Deployment", "name": "web"},
    "quiesce": {"timeoutSeconds": 30},
    "health": {"url": "http://web.ns.svc/health", "timeoutSeconds": 20},
}
UID = "uid-Migration-release"
MIGRATION_ID = ledger_id({"namespace": "ns", "name": "release", "uid": UID})


def env(name: str, url: str, **spec: Any) -> dict[str, Any]:
    return {
        "kind": "Environment",
        "metadata": {"name": name},
        "spec": {"stage": "production", "database": {"dialect": "sqlite", "url": url}, **spec},
        "status": READY,
    }


def migration(**spec: Any) -> dict[str, Any]:
    return {
        "kind": "Migration",
        "metadata": {
            "name": "release",
            "generation": 1,
            "creationTimestamp": "2026-11-30T11:00:00Z",
        },
        "spec": {"source": {"environment": "dev"}, "target": "prod", **spec},
    }


VARS = {"HOOK_TOKEN": ("secret", "t"), "TICKET_WEBHOOK": ("plain", "u")}


def nocobase(path: Path, app: str) -> str:
    url = f"sqlite:///{path}/{app}.db"
    shape.build(url, app=app, variables=VARS)
    return url


@pytest.fixture
def dev(tmp_path: Path) -> str:
    url = nocobase(tmp_path, "dev")
    shape.builder_changes(url)
    return url


@pytest.fixture
def url(tmp_path: Path) -> str:
    """prod, with the variables dev's changes use."""
    return nocobase(tmp_path, "prod")


@pytest.fixture
def jobs(tmp_path: Path) -> FakeJobs:
    (tmp_path / "results").mkdir()
    return FakeJobs(FakeCluster(), tmp_path / "results")


def setup(
    jobs: FakeJobs,
    dev: str,
    url: str,
    store: Path,
    execution: dict[str, Any] | None = JOB,
    target: dict[str, Any] | None = None,
    **spec: Any,
) -> FakeCluster:
    prod_spec: dict[str, Any] = {
        "backups": {"store": {"path": str(store)}},
        **(target or {"allowRunningApplication": True}),
    }
    if execution is not None:
        prod_spec["execution"] = execution
    cluster = FakeCluster(env("dev", dev), env("prod", url, **prod_spec), migration(**spec))
    jobs.cluster = cluster
    return cluster


def run(
    cluster: FakeCluster,
    jobs: FakeJobs | None,
    workloads: FakeWorkloads | None = None,
    settings: JobSettings = SETTINGS,
) -> Outcome:
    body = cluster.get("Migration", "ns", "release")
    assert body is not None
    outcome = reconcile_migration(
        body,
        cluster,
        now=NOW,
        on_phase=lambda _: None,
        workloads=workloads,
        lifecycle_options=Clock().options(),
        jobs=jobs,
        settings=settings,
    )
    cluster.patch_status("Migration", "ns", "release", outcome.status)
    return outcome


def started(jobs: FakeJobs, dev: str, url: str, store: Path) -> tuple[FakeCluster, str]:
    """A Migration dev → prod in Job mode, its Job created: the cluster, the Job's name."""
    cluster = setup(jobs, dev, url, store)
    assert run(cluster, jobs).status["phase"] == "Applying"
    return cluster, jobs.only()["metadata"]["name"]


def ledger(url: str) -> list[tuple[str, str]]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        made = sa.inspect(conn).has_table("ferry_migrations")
        sql = "SELECT id, result FROM ferry_migrations"
        rows = conn.execute(sa.text(sql)).all() if made else []
    engine.dispose()
    return [(str(r[0]), str(r[1])) for r in rows]


def tickets(url: str) -> int:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        n = conn.execute(sa.text("SELECT count(*) FROM collections WHERE name = 'tickets'"))
        found = int(n.scalar_one())
    engine.dispose()
    return found


def args_of(job: dict[str, Any]) -> list[str]:
    return list(job["spec"]["template"]["spec"]["containers"][0]["args"])


def test_a_job_migration_succeeds_like_an_in_process_one(
    dev: str, url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    cluster = setup(jobs, dev, url, store)
    first = run(cluster, jobs)
    assert first.status["phase"] == "Applying", first.status["message"]
    job = assert_started(jobs, first, "Migration", "release")
    digest = first.status["planDigest"]
    assert first.status["phase"] == "Applying" and first.status["migrationId"] == MIGRATION_ID
    assert args_of(job)[:5] == ["migrate", "--id", MIGRATION_ID, "--approved-digest", digest]
    assert tickets(url) == 0 and ledger(url) == []  # the operator itself applied nothing
    again = run(cluster, jobs)  # a later reconcile follows the Job: no second one
    assert again.status["phase"] == "Applying" and len(jobs.jobs) == 1

    jobs.run_pod(job, monkeypatch)
    done = run(cluster, jobs)
    assert done.status["phase"] == "Succeeded", done.status
    assert conditions(done)["Ready"][:2] == ("True", "Applied")
    assert done.status["job"]["phase"] == "Succeeded"
    assert tickets(url) == 1 and ledger(url) == [(MIGRATION_ID, "succeeded")]
    backup = open_store(str(store)).manifest(done.status["backup"]["id"])
    assert backup.reason == "pre-migration" and backup.environment == "prod"

    # The same Migration in process, into a fresh copy of prod: the same status.
    (tmp_path / "fresh").mkdir()
    fresh = nocobase(tmp_path / "fresh", "prod")
    inproc = setup(jobs, dev, fresh, tmp_path / "store2", execution=None)
    same = run(inproc, None)
    varying = {"startTime", "completionTime", "job", "backup", "progress", "conditions"}
    final = (cluster.get("Migration", "ns", "release") or {})["status"]
    assert {k: v for k, v in final.items() if k not in varying} == {
        k: v for k, v in same.status.items() if k not in varying
    }
    assert {k: v for k, v in final["progress"].items() if k != "updated"} == {
        k: v for k, v in same.status["progress"].items() if k != "updated"
    }


def test_the_job_applies_only_the_approved_plan(
    dev: str, url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = setup(jobs, dev, url, store, approval={"required": True})
    waiting = run(cluster, jobs)
    assert waiting.status["phase"] == "AwaitingApproval" and jobs.jobs == {}
    digest = waiting.status["planDigest"]
    cluster.patch("Migration", "ns", "release", {"spec": {"approval": {"planDigest": digest}}})
    started = run(cluster, jobs)
    assert started.status["phase"] == "Applying", started.status["message"]
    job = jobs.only()
    assert started.status["approval"]["planDigest"] == digest
    assert args_of(job)[3:5] == ["--approved-digest", digest]
    # prod is edited after the approval, before the pod runs: the pod refuses the apply,
    # the Job fails at once (exit 2, podFailurePolicy) and the plan is approved anew.
    shape.builder_changes(url, seed=3, pages=1)
    jobs.run_pod(job, monkeypatch)
    assert jobs.only()["status"]["conditions"][0]["reason"] == "PodFailurePolicy"
    refused = run(cluster, jobs)
    assert refused.status["phase"] == "Planning"
    assert conditions(refused)["Ready"][:2] == ("False", "PlanChanged")
    assert jobs.jobs == {} and ledger(url) == []  # removed, so that a new one may run
    again = run(cluster, jobs)
    assert again.status["phase"] == "AwaitingApproval" and again.status["planDigest"] != digest


def test_a_failed_apply_ends_as_the_ledger_says_without_a_rerun(
    dev: str, url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, _ = started(jobs, dev, url, store)
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # the write fails in the pod, inside the apply
        conn.execute(
            sa.text(
                "CREATE TRIGGER boom BEFORE INSERT ON collections "
                "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
            )
        )
    engine.dispose()
    jobs.run_pod(jobs.only(), monkeypatch)
    job = jobs.only()
    assert job["status"]["failed"] == 1 and "conditions" in job["status"]  # no second pod
    done = run(cluster, jobs)
    assert done.status["phase"] == "RolledBack", done.status
    assert "disk full" in done.status["message"]
    assert ledger(url) == [(MIGRATION_ID, "rolled-back")] and tickets(url) == 0


def test_a_pod_deleted_before_the_commit_is_replaced_and_applies_once(
    dev: str, url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, name = started(jobs, dev, url, store)
    jobs.end_pod("ns", name, 128 + signal.SIGTERM, "Error", "")  # deleted, wrote nothing
    retried = run(cluster, jobs)
    assert retried.status["phase"] == "Applying" and ledger(url) == []
    assert retried.status["job"]["attempts"] == 2 and "pod 2 of 2" in retried.status["message"]
    jobs.run_pod(jobs.only(), monkeypatch)
    done = run(cluster, jobs)
    assert done.status["phase"] == "Succeeded" and done.status["job"]["attempts"] == 2
    assert ledger(url) == [(MIGRATION_ID, "succeeded")] and tickets(url) == 1


def test_a_pod_deleted_after_the_commit_ends_succeeded_once_without_a_rerun(
    dev: str, url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, name = started(jobs, dev, url, store)
    jobs.run_pod(jobs.only(), monkeypatch, killed=signal.SIGKILL)  # committed, then killed
    killed = jobs.pods[("ns", name)][-1]["status"]["containerStatuses"][0]["state"]
    killed["terminated"]["message"] = ""  # before it wrote its result
    assert jobs.only()["status"].get("conditions") is None  # the Job would start pod 2
    done = run(cluster, jobs)
    assert done.status["phase"] == "Succeeded", done.status
    assert done.status["message"] == "applied to prod"
    assert ("delete", name) in jobs.calls and jobs.jobs == {}  # no rerun: the ledger has it
    assert ledger(url) == [(MIGRATION_ID, "succeeded")] and tickets(url) == 1
    assert done.status["backup"]["id"]  # from the ledger row: the pod's message is gone


def test_a_rerun_after_the_commit_changes_nothing_and_succeeds_once(
    dev: str, url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster, name = started(jobs, dev, url, store)
    jobs.run_pod(jobs.only(), monkeypatch, killed=signal.SIGKILL)
    jobs.run_pod(jobs.only(), monkeypatch)  # the second pod ran before the operator looked
    last = jobs.pods[("ns", name)][-1]["status"]["containerStatuses"][0]["state"]
    result = json.loads(last["terminated"]["message"])
    assert result["status"] == "noop" and result["planned"] is False
    done = run(cluster, jobs)
    assert done.status["phase"] == "Succeeded" and done.status["message"] == "applied to prod"
    assert ledger(url) == [(MIGRATION_ID, "succeeded")] and tickets(url) == 1


def test_pods_that_die_past_the_backoff_limit_fail_it_saying_nothing_was_applied(
    dev: str, url: str, store: Path, jobs: FakeJobs
) -> None:
    cluster, name = started(jobs, dev, url, store)
    for _ in range(2):
        jobs.end_pod("ns", name, 137, "OOMKilled", "")
    done = run(cluster, jobs)
    assert done.status["phase"] == "Failed"
    assert conditions(done)["Ready"][:2] == ("False", "ApplyFailed")
    assert "BackoffLimitExceeded" in done.status["message"]
    assert f"records nothing for {MIGRATION_ID}: nothing was applied" in done.status["message"]
    assert ledger(url) == []


@pytest.mark.parametrize(
    ("url", "claims_nothing"),
    [
        ("sqlite:////tmp/prod.db", True),
        ("postgresql+psycopg://ferry:s3cret@db/prod", True),
        ("mysql+pymysql://ferry:s3cret@db/prod", False),
        ("mariadb+pymysql://ferry@db/prod", False),
    ],
)
def test_a_job_that_left_no_ledger_row_claims_nothing_applied_only_where_ddl_rolls_back(
    url: str, claims_nothing: bool
) -> None:
    state = unrecorded_state(url)
    assert (state == "nothing was applied") is claims_nothing
    assert "s3cret" not in state
    if not claims_nothing:
        assert "MySQL/MariaDB commits schema changes on its own" in state


def test_the_application_is_held_at_zero_while_the_job_runs_then_resumed(
    dev: str, url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = setup(jobs, dev, url, store, target={"application": APP})
    apps = FakeWorkloads({WEB: 3})
    first = run(cluster, jobs, apps)
    assert first.status["phase"] == "Applying", first.status["message"]
    assert apps.replicas[WEB] == 0 and first.status["application"]["quiesced"] is True
    assert "--quiesced" in args_of(jobs.only())
    body = cluster.get("Migration", "ns", "release") or {}
    assert "ferry.dev/finalizer" in body["metadata"]["finalizers"]
    apps.replicas[WEB] = 3  # a GitOps tool's self-heal scales it up while the Job writes
    held = run(cluster, jobs, apps)
    assert held.status["phase"] == "Applying" and apps.replicas[WEB] == 0
    assert [c for c in apps.steps() if c[2] != 0] == []  # never resumed meanwhile

    jobs.run_pod(jobs.only(), monkeypatch)
    done = run(cluster, jobs, apps)
    assert done.status["phase"] == "Succeeded", done.status
    assert apps.replicas[WEB] == 3 and done.status["application"]["quiesced"] is False
    assert conditions(done)["ApplicationHealthy"][:2] == ("True", "Healthy")


def test_an_unhealthy_result_of_a_job_is_rolled_back_in_the_operator(
    dev: str, url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = setup(jobs, dev, url, store, target={"application": APP})
    apps = FakeWorkloads({WEB: 2}, health=[Health(False, "HTTP 503")])
    run(cluster, jobs, apps)
    jobs.run_pod(jobs.only(), monkeypatch)
    done = run(cluster, jobs, apps)
    assert done.status["phase"] == "RolledBack", done.status
    assert conditions(done)["Ready"][:2] == ("False", "ApplicationUnhealthy")
    assert ledger(url) == [(MIGRATION_ID, "rolled-back")] and tickets(url) == 0
    assert apps.replicas[WEB] == 2 and len(jobs.jobs) == 1  # the rollback ran in process


def test_a_migration_deleted_while_its_job_runs_resumes_once_the_pod_stopped(
    dev: str, url: str, store: Path, jobs: FakeJobs
) -> None:
    cluster = setup(jobs, dev, url, store, target={"application": APP})
    apps = FakeWorkloads({WEB: 2})
    run(cluster, jobs, apps)
    body = cluster.get("Migration", "ns", "release") or {}
    assert_stopped_before_resumed(jobs, body, apps, lambda: stop_migration_job(body, jobs))


def test_what_job_mode_cannot_carry_fails_at_once_without_quiescing(
    dev: str, url: str, store: Path, jobs: FakeJobs
) -> None:
    apps = FakeWorkloads({WEB: 2})
    no_image = setup(jobs, dev, url, store, target={"application": APP})
    done = run(no_image, jobs, apps, settings=JobSettings(image=None))
    assert done.status["phase"] == "Failed"
    assert conditions(done)["Ready"][:2] == ("False", "JobUnavailable")
    # The target's files go into the pre-migration backup: a Job needs their claim.
    files = {"application": APP, "files": {"path": str(store.parent / "uploads")}}
    (store.parent / "uploads").mkdir()
    no_claim = setup(jobs, dev, url, store, target=files)
    refused = run(no_claim, jobs, apps)
    assert refused.status["phase"] == "Failed" and jobs.jobs == {}
    assert conditions(refused)["Ready"][:2] == ("False", "JobUnavailable")
    assert "spec.execution.filesVolumeClaim" in refused.status["message"]
    assert apps.replicas[WEB] == 2 and [c for c in apps.steps() if c[2] == 0] == []


def test_a_migration_overrides_the_environments_mode_key_by_key(
    dev: str, url: str, store: Path, jobs: FakeJobs
) -> None:
    cluster = setup(jobs, dev, url, store, execution={"mode": "Job", "storeVolumeClaim": "b"})
    cluster.patch("Migration", "ns", "release", {"spec": {"execution": {"mode": "InProcess"}}})
    assert run(cluster, jobs).status["phase"] == "Succeeded" and jobs.jobs == {}
    other = setup(jobs, dev, url, store, execution={"mode": "Job", "storeVolumeClaim": "b"})
    other.patch(
        "Migration", "ns", "release", {"spec": {"execution": {"activeDeadlineSeconds": 120}}}
    )
    run(other, jobs)
    spec = jobs.only()["spec"]
    assert spec["activeDeadlineSeconds"] == 120 and spec["backoffLimit"] == 2


def test_secrets_and_rules_reach_the_job_only_as_references_and_annotations(
    dev: str, url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:  # fmt: skip
    secrets = {"dev-db": {"url": dev}, "prod-db": {"url": url}}
    rules = {"ignoreColumns": ["updatedAt"]}

    def from_secret(name: str) -> dict[str, Any]:
        ref = {"secretKeyRef": {"name": name, "key": "url"}}
        return {"dialect": "sqlite", "urlFrom": ref}

    cluster = FakeCluster(
        env("dev", "", database=from_secret("dev-db")),
        env(
            "prod",
            "",
            database=from_secret("prod-db"),
            backups={"store": {"path": str(store)}},
            execution=JOB,
            allowRunningApplication=True,
        ),
        migration(rules=rules),
        secrets=secrets,
    )  # fmt: skip
    jobs.cluster = cluster
    started = run(cluster, jobs)
    assert started.status["phase"] == "Applying", started.status["message"]
    job = jobs.only()
    assert secret_free(job, secrets) == []
    env_vars = {v["name"]: v for v in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env_vars["FERRY_SOURCE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "dev-db"
    assert env_vars["FERRY_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "prod-db"
    annotations = job["spec"]["template"]["metadata"]["annotations"]
    assert json.loads(annotations["ferry.dev/rules"]) == rules
    assert "--rules=/var/run/ferry/inputs/rules.json" in args_of(job)
    kubernetes_validate.validate(job, "1.33", strict=True)
    # The kubelet projects the annotation into the file the CLI reads its rules from.
    projected = tmp_path / "rules.json"
    projected.write_text(annotations["ferry.dev/rules"])
    container = job["spec"]["template"]["spec"]["containers"][0]
    container["args"] = [
        f"--rules={projected}" if a.startswith("--rules=") else a for a in container["args"]
    ]
    jobs.run_pod(job, monkeypatch)
    assert run(cluster, jobs).status["phase"] == "Succeeded" and tickets(url) == 1


# --- ferry migrate as the Job's pod runs it --------------------------------------------


@pytest.mark.parametrize(
    ("extra", "environ", "says"),
    [
        (["--approved-digest", "sha256:abc"], {}, "expected sha256: and 64 hex digits"),
        (["--approved-digest", "md5:" + "0" * 64], {}, "--approved-digest"),
        (["--approved-digest", "sha256:" + "0" * 64], {}, "no longer matches the plan"),
        ([], {"FERRY_DATABASE_URL": ""}, "--target is required"),
        ([], {"FERRY_SOURCE_DATABASE_URL": ""}, "--source is required"),
    ],
)
def test_ferry_migrate_refuses_an_unapproved_plan_or_a_missing_database(
    dev: str, url: str, store: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    extra: list[str], environ: dict[str, str], says: str,
) -> None:  # fmt: skip
    """The Job's container names its databases only through its environment; a digest
    that is not the plan's, or is no digest, is refused before anything is written."""
    monkeypatch.setenv("FERRY_DATABASE_URL", url)
    monkeypatch.setenv("FERRY_SOURCE_DATABASE_URL", dev)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    result = tmp_path / "result.json"
    monkeypatch.setenv("FERRY_RESULT_FILE", str(result))
    argv = ["migrate", "--id", MIGRATION_ID, "--backup-store", str(store), *extra]
    assert_refused(argv, 2, [url, dev, store], says=says)
    told = json.loads(result.read_text())
    assert told["outcome"] == "failed" and told["exitCode"] == 2
