"""A Migration's Job under the one slot discipline (``test_jobs_slots``): created
suspended, let go only once the application is at zero, and found again by an operator
that died before the quiesce or between the quiesce and the start."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit import test_migration_jobs as mig
from tests.unit.fake_cluster import FakeCluster
from tests.unit.fake_jobs import FakeJobs
from tests.unit.fake_workloads import FakeWorkloads
from tests.unit.test_jobs_slots import (
    WEB,
    Crash,
    Stepped,
    dies,
    holding,
    running,
    unsuspend_only_at_zero,
)
from tests.unit.test_migration_jobs import dev, url  # noqa: F401


def test_a_migration_resumes_after_a_crash_at_each_step_and_lets_its_job_go_at_zero(
    dev: str,  # noqa: F811
    url: str,  # noqa: F811
    store: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    (tmp_path / "results").mkdir()
    jobs = FakeJobs(FakeCluster(), tmp_path / "results")
    cluster = mig.setup(jobs, dev, url, store, target={"application": mig.APP})
    apps = Stepped({WEB: 3})
    apps.during = dies(apps)  # dies as the quiesce starts
    with pytest.raises(Crash):
        mig.run(cluster, jobs, apps)
    assert running(jobs) == [] and len(holding(jobs)) == 1 and apps.replicas[WEB] == 3

    second = Stepped({WEB: 3})
    let_go = jobs.unsuspend_job
    jobs.unsuspend_job = lambda ns, n: dies(second)()  # type: ignore[assignment,method-assign]
    with pytest.raises(Crash):  # dies again, quiesced, before the start
        mig.run(cluster, jobs, second)
    assert second.replicas[WEB] == 0 and running(jobs) == []

    jobs.unsuspend_job = let_go  # type: ignore[method-assign]
    third = FakeWorkloads({WEB: 0})
    unsuspend_only_at_zero(jobs, third)
    applying = mig.run(cluster, jobs, third)
    assert applying.status["phase"] == "Applying", applying.status
    assert applying.status["application"]["replicas"] == 3 and len(running(jobs)) == 1
    jobs.run_pod(jobs.only(), monkeypatch)
    done = mig.run(cluster, jobs, third)
    assert done.status["phase"] == "Succeeded", done.status
    assert third.replicas[WEB] == 3 and mig.ledger(url) == [(mig.MIGRATION_ID, "succeeded")]
