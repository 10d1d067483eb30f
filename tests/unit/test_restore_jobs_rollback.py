"""A Migration's rollback (a Restore with ``spec.migration``) into an Environment in Job
mode: a Job does not roll Migrations back yet, so it runs in the operator's process, as
before, and the Restore says so instead of ignoring the mode silently."""

from __future__ import annotations

from pathlib import Path

from tests.unit.fake_cluster import FakeCluster
from tests.unit.fake_jobs import FakeJobs
from tests.unit.fake_workloads import FakeWorkloads
from tests.unit.test_flows_application import WEB, apps, cluster, urls  # noqa: F401
from tests.unit.test_flows_application import run as migrate
from tests.unit.test_jobs import JOB
from tests.unit.test_restore_jobs import run as run_restore


def test_a_rollback_in_job_mode_runs_in_process_and_says_so(
    cluster: FakeCluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    assert migrate(cluster, apps(cluster)).status["phase"] == "Succeeded"
    cluster.patch("Environment", "ns", "pre", {"spec": {"execution": JOB}})
    cluster.add(
        {
            "kind": "Restore",
            "metadata": {"name": "undo", "namespace": "ns", "generation": 1},
            "spec": {"migration": "release"},
        }
    )
    (tmp_path / "results").mkdir()
    jobs = FakeJobs(cluster, tmp_path / "results")
    workloads = FakeWorkloads({WEB: 3})
    outcome = run_restore(cluster, jobs, "undo", workloads=workloads)
    assert outcome.status["phase"] == "Completed", outcome.status
    assert "a Job does not roll Migrations back yet" in outcome.status["message"]
    assert jobs.calls == [] and workloads.replicas[WEB] == 3
