"""The pure decisions of a BackupSchedule: due runs, names, labels, pinning, pruning."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from croniter import croniter

from controller.api.schedule import BackupScheduleSpec, Retention, parse_backup_schedule
from controller.commands.backup import match_tables
from controller.errors import InvalidInput
from controller.flows.backup import human_size
from controller.flows.schedule import (
    ADOPTED_FROM,
    KEPT_BY,
    SCHEDULE_LABEL,
    backup_body,
    backup_labels,
    backup_name,
    due_time,
    last_successful,
    next_time,
    pinned_backup_ids,
    reconcile_schedule,
    to_prune,
    zone,
)
from tests.unit.fake_cluster import FakeCluster

UTC = dt.UTC
NOW = dt.datetime(2026, 3, 28, 12, 30, 20, tzinfo=UTC)
CREATED = dt.datetime(2026, 3, 28, 9, 0, 0, tzinfo=UTC)


def spec(schedule: str = "0 * * * *", **kw: Any) -> BackupScheduleSpec:
    return BackupScheduleSpec(environment="prod", schedule=schedule, **kw)


def due(s: BackupScheduleSpec, last: dt.datetime | None, now: dt.datetime = NOW) -> Any:
    return due_time(s, zone(s.time_zone), created=CREATED, last=last, now=now)


def test_next_time_in_utc_and_in_a_time_zone() -> None:
    assert next_time("0 2 * * *", zone(None), NOW) == dt.datetime(2026, 3, 29, 2, tzinfo=UTC)
    # 03:00 in Berlin on 29 March 2026 (summer time starts that night) is 01:00 UTC.
    berlin = next_time("0 3 * * *", zone("Europe/Berlin"), NOW)
    assert berlin == dt.datetime(2026, 3, 29, 1, tzinfo=UTC)


def test_unknown_time_zone_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="time zone"):
        zone("Mars/Olympus")


def test_not_due_before_the_next_firing() -> None:
    assert due(spec(), last=dt.datetime(2026, 3, 28, 12, 0, tzinfo=UTC)) is None


def test_due_once_for_several_missed_firings() -> None:
    # Last run at 09:00; 10:00, 11:00 and 12:00 were missed: one run, the latest.
    assert due(spec(), last=dt.datetime(2026, 3, 28, 9, 0, tzinfo=UTC)) == dt.datetime(
        2026, 3, 28, 12, 0, tzinfo=UTC
    )


def test_first_run_counts_from_creation() -> None:
    assert due(spec(), last=None) == dt.datetime(2026, 3, 28, 12, 0, tzinfo=UTC)
    assert due(spec("0 0 * * *"), last=None) is None


def test_immediate_runs_at_once_only_the_first_time() -> None:
    s = spec("0 0 1 1 *", immediate=True)
    assert due(s, last=None) == NOW.replace(microsecond=0)
    assert due(s, last=NOW) is None


def test_suspended_never_runs() -> None:
    assert due(spec(suspend=True, immediate=True), last=None) is None
    assert due(spec("* * * * *", suspend=True), last=CREATED) is None


def test_every_minute_schedule() -> None:
    last = dt.datetime(2026, 3, 28, 12, 29, tzinfo=UTC)
    assert due(spec("* * * * *"), last=last) == dt.datetime(2026, 3, 28, 12, 30, tzinfo=UTC)
    assert due(spec("* * * * *"), last=dt.datetime(2026, 3, 28, 12, 30, tzinfo=UTC)) is None


def test_a_run_years_overdue_is_the_latest_firing_found_in_one_step_each_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A last run years ago (an admin moving ``lastScheduleTime`` back, a schedule
    suspended for long): the latest firing at or before now, without walking the
    millions of minutes in between (that walk once held the operator for a minute)."""
    from controller.flows import schedule

    steps = []
    real = croniter

    def counted(*args: Any, **kw: Any) -> Any:
        steps.append(args)
        return real(*args, **kw)

    monkeypatch.setattr(schedule, "croniter", counted)
    years_ago = dt.datetime(2020, 1, 1, tzinfo=UTC)
    assert due(spec("* * * * *"), last=years_ago) == dt.datetime(2026, 3, 28, 12, 30, tzinfo=UTC)
    assert due(spec("0 3 * * *", time_zone="Europe/Berlin"), last=years_ago) == dt.datetime(
        2026, 3, 28, 2, tzinfo=UTC
    )
    assert len(steps) == 4
    on_the_minute = NOW.replace(second=0)
    assert due(spec("* * * * *"), last=years_ago, now=on_the_minute) == on_the_minute


def test_backup_name_is_the_schedule_and_the_utc_time() -> None:
    assert backup_name("nightly", NOW) == "nightly-20260328123020"
    assert len(backup_name("x" * 260, NOW)) == 253


def test_labels_drop_argo_cd_tracking() -> None:
    labels = backup_labels(
        {
            "app.kubernetes.io/instance": "ferry-prod",
            "argocd.argoproj.io/instance": "ferry-prod",
            "team": "apps",
        },
        "nightly",
    )
    assert labels == {"team": "apps", SCHEDULE_LABEL: "nightly"}


def test_backup_body_is_not_owned_by_default_and_carries_the_template() -> None:
    body = {
        "metadata": {
            "name": "nightly",
            "namespace": "ns",
            "uid": "u-1",
            "labels": {"app.kubernetes.io/instance": "ferry"},
            "annotations": {"argocd.argoproj.io/tracking-id": "ferry:ferry.dev/x:ns/nightly"},
        },
        "spec": {
            "environment": "prod",
            "schedule": "@daily",
            "template": {"exclude": ["orders"]},
        },
    }
    out = backup_body(body, parse_backup_schedule(body), NOW)
    meta = out["metadata"]
    assert meta["name"] == "nightly-20260328123020" and "annotations" not in meta
    assert meta["labels"] == {SCHEDULE_LABEL: "nightly"}
    assert "ownerReferences" not in meta  # Orphan: a prune of the schedule keeps it
    assert out["spec"] == {
        "environment": "prod",
        "reason": "scheduled",
        "deletionPolicy": "Delete",
        "exclude": ["orders"],
    }
    body["spec"]["backupsOnDelete"] = "Delete"
    (ref,) = backup_body(body, parse_backup_schedule(body), NOW)["metadata"]["ownerReferences"]
    assert ref["uid"] == "u-1" and ref["controller"] and ref["blockOwnerDeletion"]


def migration(phase: str, backup_id: str, finished: dt.datetime | None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase, "backup": {"id": backup_id}}
    if finished:
        status["completionTime"] = finished.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"status": status}


def test_pinned_by_unfinished_and_recent_migrations_only() -> None:
    migrations = [
        migration("Applying", "b-running", None),
        migration("Succeeded", "b-recent", NOW - dt.timedelta(days=2)),
        migration("Succeeded", "b-old", NOW - dt.timedelta(days=8)),
        {"status": {"phase": "Pending"}},
    ]
    assert pinned_backup_ids(migrations, NOW) == {"b-running", "b-recent"}


def backup(name: str, hours_ago: float, phase: str = "Completed", id_: str = "") -> dict[str, Any]:
    created = NOW - dt.timedelta(hours=hours_ago)
    stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "metadata": {"name": name, "creationTimestamp": stamp},
        "status": {"phase": phase, "id": id_ or f"id-{name}", "completionTime": stamp},
    }


def test_prune_keeps_last_n_completed_and_skips_pinned_and_running() -> None:
    backups = [
        backup("b1", 5),
        backup("b2", 4, id_="pinned-id"),
        backup("b3", 3, phase="Failed"),
        backup("b4", 2),
        backup("b5", 1, phase="Running"),
        backup("b6", 0.5),
    ]
    assert to_prune(backups, Retention(keep_last=1), frozenset({"pinned-id"}), NOW) == ["b1", "b4"]
    assert to_prune(backups, Retention(), frozenset(), NOW) == []


def test_prune_by_age_keeps_min_keep() -> None:
    backups = [backup("old1", 80), backup("old2", 50), backup("new", 1)]
    keep_one = Retention(max_age=dt.timedelta(days=1), min_keep=1)
    assert to_prune(backups, keep_one, frozenset(), NOW) == ["old1", "old2"]
    keep_two = Retention(max_age=dt.timedelta(days=1), min_keep=2)
    assert to_prune(backups, keep_two, frozenset(), NOW) == ["old1"]


def test_last_successful_is_the_newest_completed() -> None:
    backups = [backup("a", 3), backup("b", 2), backup("c", 1, phase="Failed")]
    assert last_successful(backups) == ("b", "2026-03-28T10:30:20Z")
    assert last_successful([backup("c", 1, phase="Failed")]) is None


def test_human_size() -> None:
    assert human_size(0) == "0 B"
    assert human_size(1536) == "1.5 KiB"
    assert human_size(5 * 1024**3) == "5.0 GiB"


def test_match_tables_globs_and_names() -> None:
    names = ["roles", "rolesResources", "uiSchemas", "users"]
    assert match_tables(["roles*", "users"], names, "t") == {"roles", "rolesResources", "users"}
    with pytest.raises(InvalidInput, match="no table matches missing"):
        match_tables(["missing"], names, "t")
    with pytest.raises(InvalidInput, match="no table matches"):
        match_tables(["nope*"], names, "t")


# -- ownership and adoption, through the flow with an in-memory cluster ------------------


def schedule_obj(name: str, env: str = "prod", **spec_fields: Any) -> dict[str, Any]:
    return {
        "kind": "BackupSchedule",
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "creationTimestamp": "2026-03-28T12:30:00Z",
            "generation": 1,
        },
        "spec": {"environment": env, "schedule": "0 0 1 1 *", **spec_fields},
    }


def scheduled(
    name: str, schedule: str, hours_ago: float, env: str = "prod", owners: Any = None
) -> dict[str, Any]:
    obj = backup(name, hours_ago)
    obj["kind"] = "Backup"
    obj["metadata"].update(namespace="ns", labels={SCHEDULE_LABEL: schedule})
    if owners is not None:
        obj["metadata"]["ownerReferences"] = owners
    obj["spec"] = {"environment": env, "reason": "scheduled", "deletionPolicy": "Delete"}
    return obj


def run(cluster: FakeCluster, name: str) -> Any:
    body = cluster.get("BackupSchedule", "ns", name)
    assert body is not None
    return reconcile_schedule(body, cluster, now=NOW)


def backups_of(cluster: FakeCluster) -> dict[str, dict[str, Any]]:
    return {b["metadata"]["name"]: b["metadata"] for b in cluster.list("Backup", "ns")}


def schedule_owner(uid: str) -> dict[str, Any]:
    return {"apiVersion": "ferry.dev/v1alpha1", "kind": "BackupSchedule", "name": "x", "uid": uid}


def test_a_schedule_for_the_environment_adopts_orphans_and_prunes_them() -> None:
    """``old`` was deleted (renamed to ``nightly``): its Backups stay until ``nightly``'s
    retention counts them with its own; other environments' and manual Backups, and
    those of a schedule that still exists, are not touched."""
    manual = backup("by-hand", 90)
    manual.update(kind="Backup", spec={"environment": "prod"})
    manual["metadata"]["namespace"] = "ns"
    cluster = FakeCluster(
        schedule_obj("nightly", retention={"keepLast": 2}),
        schedule_obj("weekly-dev", env="dev"),
        scheduled("old-1", "old", 50),
        scheduled("old-2", "old", 40),
        scheduled("old-3", "old", 30),
        scheduled("nightly-1", "nightly", 20),
        scheduled("dev-orphan", "gone", 60, env="dev"),
        scheduled("dev-weekly", "weekly-dev", 70, env="dev"),
        manual,
    )
    outcome = run(cluster, "nightly")
    left = backups_of(cluster)
    assert sorted(left) == ["by-hand", "dev-orphan", "dev-weekly", "nightly-1", "old-3"]
    assert left["old-3"]["labels"] == {SCHEDULE_LABEL: "nightly"}
    assert left["old-3"]["annotations"] == {ADOPTED_FROM: "old", KEPT_BY: "keepLast"}
    assert left["nightly-1"]["annotations"][KEPT_BY] == "minKeep, keepLast"
    assert left["dev-orphan"]["labels"] == {SCHEDULE_LABEL: "gone"}
    assert "labels" not in left["by-hand"]
    reasons = [e.reason for e in outcome.events]
    assert reasons == ["BackupsAdopted", "BackupPruned", "BackupPruned"]
    assert "3 Backups of prod" in outcome.events[0].message and "old" in outcome.events[0].message
    # The next run has nothing to adopt and nothing more to prune.
    assert run(cluster, "nightly").events == ()
    # The dev schedule adopts the dev orphan; it has no retention, so both stay.
    run(cluster, "weekly-dev")
    assert backups_of(cluster)["dev-orphan"]["labels"] == {SCHEDULE_LABEL: "weekly-dev"}
    assert "dev-weekly" in backups_of(cluster)


def test_only_the_first_schedule_by_name_adopts_and_a_deleting_one_still_owns() -> None:
    deleting = schedule_obj("leaving")
    deleting["metadata"]["deletionTimestamp"] = "2026-03-28T12:00:00Z"
    cluster = FakeCluster(
        schedule_obj("b-second"),
        schedule_obj("a-first", env="prod"),
        deleting,
        scheduled("orphan", "gone", 5),
        scheduled("leaving-1", "leaving", 5, owners=[schedule_owner("uid-leaving")]),
    )
    run(cluster, "b-second")
    assert backups_of(cluster)["orphan"]["labels"] == {SCHEDULE_LABEL: "gone"}
    run(cluster, "a-first")
    left = backups_of(cluster)
    assert left["orphan"]["labels"] == {SCHEDULE_LABEL: "a-first"}
    assert left["leaving-1"]["labels"] == {SCHEDULE_LABEL: "leaving"}


def test_owner_references_follow_backups_on_delete() -> None:
    """Backups of an earlier release were always owned: under ``Orphan`` the schedule's
    reference is removed (another owner stays); under ``Delete`` it is set, and an
    adopted Backup loses the reference to the schedule it came from."""
    other_owner = {"apiVersion": "v1", "kind": "ConfigMap", "name": "keep", "uid": "cm"}
    cluster = FakeCluster(
        schedule_obj("nightly"),
        scheduled("legacy", "nightly", 3, owners=[schedule_owner("uid-nightly"), other_owner]),
        scheduled("plain", "nightly", 2),
    )
    run(cluster, "nightly")
    assert backups_of(cluster)["legacy"]["ownerReferences"] == [other_owner]
    assert "ownerReferences" not in backups_of(cluster)["plain"]
    patches = [c for c in cluster.calls if c[0] == "patch"]
    run(cluster, "nightly")
    assert [c for c in cluster.calls if c[0] == "patch"] == patches  # settled: no more writes

    cluster.patch("BackupSchedule", "ns", "nightly", {"spec": {"backupsOnDelete": "Delete"}})
    cluster.add(scheduled("from-old", "old", 4, owners=[schedule_owner("uid-old")]))
    run(cluster, "nightly")
    for name in ("legacy", "plain", "from-old"):
        refs = backups_of(cluster)[name]["ownerReferences"]
        ours = [r for r in refs if r["kind"] == "BackupSchedule"]
        assert [r["uid"] for r in ours] == ["uid-nightly"], (name, refs)
    assert other_owner in backups_of(cluster)["legacy"]["ownerReferences"]


def test_a_due_run_creates_an_unowned_backup_by_default() -> None:
    cluster = FakeCluster(
        schedule_obj("nightly", immediate=True),
        {"kind": "Environment", "metadata": {"name": "prod"}, "spec": {}},
    )
    outcome = run(cluster, "nightly")
    (created,) = [c for c in cluster.calls if c[0] == "create"]
    meta = backups_of(cluster)[created[2]]
    assert meta["labels"] == {SCHEDULE_LABEL: "nightly"} and "ownerReferences" not in meta
    assert [e.reason for e in outcome.events] == ["BackupCreated"]


def ready_of(outcome: Any) -> tuple[str, str, str]:
    cond = {c["type"]: c for c in outcome.status["conditions"]}
    return cond["Stalled"]["status"], cond["Stalled"]["reason"], cond["Ready"]["message"]


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        pytest.param({"schedule": "61 * * * *"}, "spec.schedule", id="bad-cron"),
        pytest.param({"schedule": "every day"}, "spec.schedule", id="words"),
        pytest.param({"timeZone": "Mars/Olympus"}, "unknown time zone", id="bad-zone"),
    ],
)
def test_an_invalid_schedule_stalls_with_one_event_and_creates_nothing(
    fields: dict[str, Any], fragment: str
) -> None:
    cluster = FakeCluster(schedule_obj("nightly", immediate=True, **fields))
    first = run(cluster, "nightly")
    stalled, reason, message = ready_of(first)
    assert (stalled, reason) == ("True", "InvalidSpec") and fragment in message
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "InvalidSpec")]
    assert "nextScheduleTime" not in first.status
    cluster.patch_status("BackupSchedule", "ns", "nightly", first.status)
    assert run(cluster, "nightly").events == ()  # one event per reason, not per check
    assert [c for c in cluster.calls if c[0] in ("create", "delete")] == []


def test_a_due_run_without_its_environment_waits_and_takes_no_backup() -> None:
    cluster = FakeCluster(schedule_obj("nightly", immediate=True))
    first = run(cluster, "nightly")
    cond = {c["type"]: c for c in first.status["conditions"]}
    assert (cond["Reconciling"]["status"], cond["Reconciling"]["reason"]) == (
        "True",
        "EnvironmentNotFound",
    )
    assert cond["Ready"]["message"] == "Environment prod does not exist; no backup taken"
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "EnvironmentNotFound")]
    assert "lastScheduleTime" not in first.status
    cluster.patch_status("BackupSchedule", "ns", "nightly", first.status)
    assert run(cluster, "nightly").events == ()
    assert cluster.list("Backup", "ns") == []
