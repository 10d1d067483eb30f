"""``status.progress``: throttled patches, the exact last state on the final patch."""

from __future__ import annotations

import datetime as dt
from typing import Any

from controller.errors import TemporaryError
from controller.flows.outcome import Outcome
from controller.flows.progress import StatusProgress, with_progress
from tests.unit.fake_cluster import FakeCluster

T0 = dt.datetime(2025, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


def tracked() -> tuple[FakeCluster, Clock, StatusProgress]:
    cluster = FakeCluster({"kind": "Backup", "metadata": {"name": "b"}})
    clock = Clock()
    return cluster, clock, StatusProgress(cluster, "Backup", "ns", "b", clock=clock)


def stored(cluster: FakeCluster) -> dict[str, Any]:
    body = cluster.get("Backup", "ns", "b")
    assert body is not None
    return dict(body["status"]["progress"])


def test_at_most_one_patch_per_interval() -> None:
    cluster, clock, progress = tracked()
    progress.start("BackingUp", 17)
    for i in range(17):
        clock.tick(0.5)
        progress.table(f"t{i}", 10, 100)
    progress.done()
    # 8.5 s of work: the start, then one patch each time 2 s had passed since the last.
    assert [c for c in cluster.calls if c[0] == "patch_status"] == [
        ("patch_status", "Backup", "b")
    ] * 5
    assert stored(cluster) == {
        "phase": "BackingUp",
        "tables": "16/17",
        "rows": 160,
        "bytes": 1600,
        "updated": "2025-01-02T03:04:13Z",
    }
    assert progress.status() == {
        "phase": "BackingUp",
        "tables": "17/17",
        "rows": 170,
        "bytes": 1700,
        "updated": "2025-01-02T03:04:13Z",
    }


def test_the_final_patch_carries_the_exact_last_state() -> None:
    _, _, progress = tracked()
    progress.start("Restoring", 3)
    progress.table("a", 5)
    outcome = with_progress(Outcome({"phase": "Completed"}), progress)
    assert outcome.status == {
        "phase": "Completed",
        "progress": {
            "phase": "Restoring",
            "tables": "1/3",
            "rows": 5,
            "updated": "2025-01-02T03:04:05Z",
        },
    }


def test_no_phase_no_progress_and_an_empty_patch_stays_empty() -> None:
    cluster, _, progress = tracked()
    assert with_progress(Outcome({"phase": "Pending"}), progress).status == {"phase": "Pending"}
    progress.start("Applying", 0)
    assert with_progress(Outcome({}), progress).status == {}
    assert cluster.calls == [("patch_status", "Backup", "b")]


def test_a_new_phase_starts_counting_again() -> None:
    _, clock, progress = tracked()
    progress.start("Planning", 2)
    progress.table("a", 7)
    progress.done()
    clock.tick(3)
    progress.start("Applying", 4)
    progress.table("a")
    assert progress.status() == {
        "phase": "Applying",
        "tables": "1/4",
        "updated": "2025-01-02T03:04:08Z",
    }


class Refusing(FakeCluster):
    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        raise TemporaryError("Kubernetes API: patching: 503 Service Unavailable")


def test_a_refused_progress_patch_does_not_stop_the_work() -> None:
    progress = StatusProgress(Refusing(), "Backup", "ns", "b", clock=Clock())
    progress.start("BackingUp", 1)
    progress.table("a", 1, 2)
    progress.done()
    assert progress.status() == {
        "phase": "BackingUp",
        "tables": "1/1",
        "rows": 1,
        "bytes": 2,
        "updated": "2025-01-02T03:04:05Z",
    }
