"""The BackupSchedule flow when the API server does not answer, and when suspended.

The schedule reads no Secret: its temporary branch is reached when a call of the
cluster itself fails as the real client's does (``k8s/client.py`` turns an unanswered
request into a ``TemporaryError`` with a 5 s delay). The flow then reports Reconciling
with that reason, keeps what it already did, and the schedule's timer runs it again.
"""

from __future__ import annotations

from typing import Any

import pytest

from controller.errors import TemporaryError
from tests.unit.fake_cluster import FakeCluster
from tests.unit.test_schedule_flow import backups_of, run, schedule_obj, scheduled


class Unanswered(FakeCluster):
    """A cluster whose calls ``(verb, kind)`` in ``failing`` are not answered."""

    def __init__(self, *objects: dict[str, Any], failing: set[tuple[str, str]]) -> None:
        super().__init__(*objects)
        self.failing = failing

    def refuse(self, verb: str, kind: str, what: str) -> None:
        if (verb, kind) in self.failing:
            self.calls.append((f"unanswered {verb}", kind))
            raise TemporaryError(f"Kubernetes API: {what}: 503 Service Unavailable", delay=5)

    def create(self, kind: str, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        self.refuse("create", kind, f"creating a {kind} in {namespace}")
        return super().create(kind, namespace, body)

    def list(
        self, kind: str, namespace: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        self.refuse("list", kind, f"listing {kind} in {namespace}")
        return super().list(kind, namespace, label_selector)

    def delete(self, kind: str, namespace: str, name: str) -> None:
        self.refuse("delete", kind, f"deleting {kind} {namespace}/{name}")
        super().delete(kind, namespace, name)


PROD = {"kind": "Environment", "metadata": {"name": "prod"}, "spec": {}}


def conditions(outcome: Any) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c["reason"], c["message"]) for c in outcome.status["conditions"]
    }


def test_an_unanswered_backup_creation_takes_no_run_and_is_retried() -> None:
    cluster = Unanswered(
        schedule_obj("nightly", immediate=True), PROD, failing={("create", "Backup")}
    )
    out = run(cluster, "nightly")
    message = "Kubernetes API: creating a Backup in ns: 503 Service Unavailable"
    assert conditions(out)["Reconciling"] == ("True", "Temporary", message)
    assert conditions(out)["Ready"][:2] == ("False", "Temporary")
    assert out.events == ()
    # The run is not recorded, so the next pass takes it.
    assert "lastScheduleTime" not in out.status and "nextScheduleTime" not in out.status
    assert out.retry_after is None  # the schedule's own timer runs it again
    assert cluster.list("Backup", "ns") == []
    cluster.patch_status("BackupSchedule", "ns", "nightly", out.status)
    cluster.failing.clear()
    again = run(cluster, "nightly")
    assert [e.reason for e in again.events] == ["BackupCreated"]
    assert conditions(again)["Ready"][:2] == ("True", "Scheduled")
    assert len(cluster.list("Backup", "ns")) == 1


@pytest.mark.parametrize(
    ("failing", "message"),
    [
        (("list", "Backup"), "Kubernetes API: listing Backup in ns: 503 Service Unavailable"),
        (
            ("list", "Migration"),
            "Kubernetes API: listing Migration in ns: 503 Service Unavailable",
        ),
    ],
)
def test_a_run_whose_bookkeeping_is_unanswered_keeps_its_backup(
    failing: tuple[str, str], message: str
) -> None:
    cluster = Unanswered(schedule_obj("nightly", immediate=True), PROD, failing={failing})
    out = run(cluster, "nightly")
    assert conditions(out)["Reconciling"] == ("True", "Temporary", message)
    # The Backup was created before the failure: the event says so and the run is
    # recorded, so the next pass does not create a second one.
    (created,) = [c[2] for c in cluster.calls if c[0] == "create"]
    assert [(e.reason, e.message) for e in out.events] == [
        ("BackupCreated", f"created Backup {created}")
    ]
    assert out.status["lastBackup"] == created and out.status["lastScheduleTime"]
    cluster.patch_status("BackupSchedule", "ns", "nightly", out.status)
    cluster.failing.clear()
    again = run(cluster, "nightly")
    assert again.events == ()
    assert [c for c in cluster.calls if c[0] == "create"] == [("create", "Backup", created)]
    assert conditions(again)["Ready"][:2] == ("True", "Scheduled")


def test_an_unanswered_prune_keeps_the_backup_for_the_next_pass() -> None:
    cluster = Unanswered(
        schedule_obj("nightly", retention={"keepLast": 1}),
        PROD,
        scheduled("nightly-1", "nightly", 30),
        scheduled("nightly-2", "nightly", 20),
        failing={("delete", "Backup")},
    )
    out = run(cluster, "nightly")
    message = "Kubernetes API: deleting Backup ns/nightly-1: 503 Service Unavailable"
    assert conditions(out)["Reconciling"] == ("True", "Temporary", message)
    assert out.events == ()
    assert sorted(backups_of(cluster)) == ["nightly-1", "nightly-2"]
    cluster.failing.clear()
    again = run(cluster, "nightly")
    assert [(e.reason, e.message) for e in again.events] == [
        (
            "BackupPruned",
            "retention deleted Backup nightly-1: not kept by keepLast=1 (not among the 1 newest)",
        )
    ]
    assert sorted(backups_of(cluster)) == ["nightly-2"]


def test_a_suspended_schedule_creates_nothing_and_says_so() -> None:
    cluster = FakeCluster(
        schedule_obj("nightly", immediate=True, suspend=True),
        PROD,
        scheduled("nightly-1", "nightly", 30),
    )
    cluster.patch_status(
        "BackupSchedule", "ns", "nightly", {"nextScheduleTime": "2027-01-01T00:00:00Z"}
    )
    out = run(cluster, "nightly")
    assert conditions(out)["Ready"] == ("True", "Suspended", "suspended: no backups are created")
    assert conditions(out)["Stalled"][:2] == ("False", "Suspended")
    assert out.status["nextScheduleTime"] is None  # cleared by the merge patch
    assert "lastScheduleTime" not in out.status
    assert out.events == () and out.retry_after is None
    assert [c for c in cluster.calls if c[0] in ("create", "delete")] == []
    assert sorted(backups_of(cluster)) == ["nightly-1"]
    # Resumed, it is Scheduled again (and the immediate first run is taken).
    cluster.patch("BackupSchedule", "ns", "nightly", {"spec": {"suspend": False}})
    resumed = run(cluster, "nightly")
    assert conditions(resumed)["Ready"][:2] == ("True", "Scheduled")
    assert resumed.status["nextScheduleTime"]
