"""A Migration's rollback (a Restore with ``spec.migration``) into an Environment in Job
mode runs as a Job: its pod runs ``ferry rollback`` (the scoped rollback, the same code
as in process) under the slot discipline (created suspended, let go once the
application is at zero). The pod's result, or else the target's ledger, says how it
ended; nothing is read from its logs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from controller.flows.jobs import job_name
from tests.unit.fake_cluster import FakeCluster
from tests.unit.fake_jobs import FakeJobs, assert_started
from tests.unit.fake_workloads import FakeWorkloads
from tests.unit.flow_support import conditions
from tests.unit.test_flows_application import WEB, apps, cluster, urls  # noqa: F401
from tests.unit.test_flows_application import run as migrate
from tests.unit.test_jobs import JOB
from tests.unit.test_restore_jobs import run as run_restore


def ledger(url: str) -> list[str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT result FROM ferry_migrations")).all()
    engine.dispose()
    return [str(r[0]) for r in rows]


@pytest.fixture
def jobs(cluster: FakeCluster, tmp_path: Path) -> FakeJobs:  # noqa: F811
    """Migration ``release`` succeeded into ``pre`` (in process); then ``pre`` turns
    to Job mode and Restore ``undo`` asks to roll the Migration back."""
    return rolling_back(cluster, tmp_path)


def rolling_back(api: FakeCluster, tmp_path: Path, name: str = "undo") -> FakeJobs:
    assert migrate(api, apps(api)).status["phase"] == "Succeeded"
    api.patch("Environment", "ns", "pre", {"spec": {"execution": JOB}})
    api.add(
        {
            "kind": "Restore",
            "metadata": {"name": name, "namespace": "ns", "generation": 1},
            "spec": {"migration": "release"},
        }
    )
    (tmp_path / "results").mkdir(exist_ok=True)
    return FakeJobs(api, tmp_path / "results")


def args_of(job: dict[str, Any]) -> list[str]:
    return list(job["spec"]["template"]["spec"]["containers"][0]["args"])


def test_a_rollback_in_job_mode_runs_ferry_rollback_in_a_job(
    cluster: FakeCluster,  # noqa: F811
    urls: dict[str, str],  # noqa: F811
    jobs: FakeJobs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    migration_id = (cluster.get("Migration", "ns", "release") or {})["status"]["migrationId"]
    workloads = FakeWorkloads({WEB: 3})
    first = run_restore(cluster, jobs, "undo", workloads=workloads)
    assert first.status["phase"] == "Restoring", first.status
    job = assert_started(jobs, first, "Restore", "undo")
    assert args_of(job)[:1] == ["rollback"] and "--database" not in args_of(job)
    assert args_of(job)[args_of(job).index("--migration") + 1] == migration_id
    assert [c[0] for c in jobs.calls] == ["create", "unsuspend"]
    assert (
        workloads.replicas[WEB] == 0 and "rolling Migration release back" in first.status["message"]
    )
    assert ledger(urls["pre"]) == ["succeeded"]  # the operator itself rolled nothing back

    jobs.run_pod(job, monkeypatch)
    done = run_restore(cluster, jobs, "undo", workloads=workloads)
    assert done.status["phase"] == "Completed", done.status
    assert conditions(done)["Ready"][:2] == ("True", "RolledBack")
    assert done.status["migration"] == {"name": "release", "id": migration_id}
    assert done.status["tables"] and done.status["safetyBackup"]["id"]
    assert "in the operator's process" not in done.status["message"]
    assert ledger(urls["pre"]) == ["rolled-back"] and workloads.replicas[WEB] == 3


def test_a_rollback_pod_killed_after_its_commit_ends_as_the_ledger_says(
    cluster: FakeCluster,  # noqa: F811
    urls: dict[str, str],  # noqa: F811
    jobs: FakeJobs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workloads = FakeWorkloads({WEB: 3})
    run_restore(cluster, jobs, "undo", workloads=workloads)
    jobs.run_pod(jobs.only(), monkeypatch, killed=9)  # committed, then killed
    again = run_restore(cluster, jobs, "undo", workloads=workloads)
    assert again.status["phase"] == "Restoring" and workloads.replicas[WEB] == 0
    jobs.run_pod(jobs.only(), monkeypatch)  # the replacement finds nothing to roll back
    done = run_restore(cluster, jobs, "undo", workloads=workloads)
    assert done.status["phase"] == "Completed", done.status
    assert "the ledger of pre records the rollback" in done.status["message"]
    assert ledger(urls["pre"]) == ["rolled-back"] and workloads.replicas[WEB] == 3


def test_a_rollback_of_a_migration_already_rolled_back_is_refused_before_any_job(
    cluster: FakeCluster,  # noqa: F811
    jobs: FakeJobs,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    workloads = FakeWorkloads({WEB: 3})
    run_restore(cluster, jobs, "undo", workloads=workloads)
    jobs.run_pod(jobs.only(), monkeypatch)
    run_restore(cluster, jobs, "undo", workloads=workloads)
    cluster.add(
        {
            "kind": "Restore",
            "metadata": {"name": "twice", "namespace": "ns", "generation": 1},
            "spec": {"migration": "release"},
        }
    )
    before = len(workloads.calls)
    refused = run_restore(cluster, jobs, "twice", workloads=workloads)
    assert refused.status["phase"] == "Failed", refused.status
    assert "rolled-back: there is nothing of it to roll back" in refused.status["message"]
    twice = job_name("Restore", "twice", "uid-Restore-twice")
    assert ("create", twice) not in jobs.calls and workloads.replicas[WEB] == 3
    assert [c for c in workloads.calls[before:] if c[0] == "set_replicas"] == []  # not stopped
