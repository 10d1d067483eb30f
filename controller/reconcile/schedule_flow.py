"""Reconcile a BackupSchedule: create Backups on a cron schedule, then prune old ones.

The schedule's own times decide, not the timer that calls this: a run is due when the
cron expression (read in ``spec.timeZone``) fires between ``status.lastScheduleTime``
(or the schedule's creation) and now. Missed runs collapse into one, as with a
CronJob. Each run creates a ``Backup`` object named after its scheduled time and owned
by the schedule, so a repeated run after a lost status write finds it instead of
creating a second one. The decisions (is a run due, when is the next, which labels a
Backup gets, which Backups to prune) are pure functions below.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from controller.api.schedule import BackupScheduleSpec, Retention, parse_backup_schedule
from controller.backups.retention import Candidate, Policy, select_for_deletion
from controller.errors import InvalidInput, TemporaryError
from controller.k8s.client import GROUP, VERSION, Cluster
from controller.reconcile.outcome import Event, Outcome
from controller.reconcile.status import StatusPatch, timestamp

SCHEDULE_LABEL = "ferry.dev/schedule"
# Argo CD tracks what it deployed by this label (or annotation); copied onto a Backup,
# it would make Argo CD see the Backup as an unknown resource of its app and prune it.
ARGO_CD_LABELS = frozenset({"app.kubernetes.io/instance"})
ARGO_CD_PREFIX = "argocd.argoproj.io/"
PIN_WINDOW = dt.timedelta(days=7)
MIGRATION_FINISHED = frozenset({"Succeeded", "Failed", "RolledBack"})
_MAX_CATCH_UP = 100_000  # cron steps to walk before jumping straight to the last due time
_NAME_MAX = 253


def parse_time(text: Any) -> dt.datetime | None:
    """An RFC 3339 timestamp as the API server writes it, or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise InvalidInput(f"spec.timeZone: unknown time zone {name!r}") from err


def next_time(schedule: str, tz: ZoneInfo, after: dt.datetime) -> dt.datetime:
    """The first time after ``after`` the cron expression fires, read in ``tz``."""
    fire: dt.datetime = croniter(schedule, after.astimezone(tz)).get_next(dt.datetime)
    return fire.astimezone(dt.UTC)


def due_time(
    spec: BackupScheduleSpec,
    tz: ZoneInfo,
    *,
    created: dt.datetime,
    last: dt.datetime | None,
    now: dt.datetime,
) -> dt.datetime | None:
    """The scheduled time of the run to make now, or None.

    ``immediate`` makes the first run happen at once; otherwise a run is due when the
    schedule fired after the last run (or the creation) and not after ``now``. Of
    several missed firings only the latest is run.
    """
    if spec.suspend:
        return None
    if last is None and spec.immediate:
        return now.replace(microsecond=0)
    fire = next_time(spec.schedule, tz, last or created)
    if fire > now:
        return None
    for _ in range(_MAX_CATCH_UP):
        following = next_time(spec.schedule, tz, fire)
        if following > now:
            return fire
        fire = following
    prev: dt.datetime = croniter(spec.schedule, now.astimezone(tz)).get_prev(dt.datetime)
    return prev.astimezone(dt.UTC)


def backup_name(schedule: str, when: dt.datetime) -> str:
    stamp = when.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")
    return f"{schedule[: _NAME_MAX - len(stamp) - 1]}-{stamp}"


def backup_labels(schedule_labels: Mapping[str, str] | None, schedule: str) -> dict[str, str]:
    """The schedule's labels minus Argo CD's tracking ones, plus the schedule's name."""
    labels = {
        k: v
        for k, v in (schedule_labels or {}).items()
        if k not in ARGO_CD_LABELS and not k.startswith(ARGO_CD_PREFIX)
    }
    labels[SCHEDULE_LABEL] = schedule
    return labels


def backup_body(
    schedule_body: Mapping[str, Any], spec: BackupScheduleSpec, when: dt.datetime
) -> dict[str, Any]:
    """The Backup one run creates. No annotation of the schedule is copied (Argo CD's
    ``argocd.argoproj.io/tracking-id`` and kubectl's last-applied configuration among
    them)."""
    meta = schedule_body.get("metadata") or {}
    name = str(meta.get("name"))
    backup_spec: dict[str, Any] = {
        "environment": spec.environment,
        "reason": "scheduled",
        "deletionPolicy": spec.template.deletion_policy.value,
    }
    if spec.template.selection.include:
        backup_spec["tables"] = list(spec.template.selection.include)
    if spec.template.selection.exclude:
        backup_spec["exclude"] = list(spec.template.selection.exclude)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Backup",
        "metadata": {
            "name": backup_name(name, when),
            "namespace": meta.get("namespace"),
            "labels": backup_labels(meta.get("labels"), name),
            "ownerReferences": [
                {
                    "apiVersion": f"{GROUP}/{VERSION}",
                    "kind": "BackupSchedule",
                    "name": name,
                    "uid": meta.get("uid"),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": backup_spec,
    }


def owned_by(body: Mapping[str, Any], uid: str | None) -> bool:
    refs = (body.get("metadata") or {}).get("ownerReferences") or []
    return any(r.get("uid") == uid and r.get("kind") == "BackupSchedule" for r in refs)


def pinned_backup_ids(migrations: Iterable[Mapping[str, Any]], now: dt.datetime) -> frozenset[str]:
    """Backup IDs a migration's rollback window needs: those of unfinished Migrations and
    of Migrations that finished less than :data:`PIN_WINDOW` ago."""
    pinned = set()
    for mig in migrations:
        status = mig.get("status") or {}
        backup_id = (status.get("backup") or {}).get("id")
        if not backup_id:
            continue
        finished = parse_time(status.get("completionTime"))
        unfinished = status.get("phase") not in MIGRATION_FINISHED or finished is None
        if unfinished or (finished is not None and now - finished < PIN_WINDOW):
            pinned.add(str(backup_id))
    return frozenset(pinned)


def to_prune(
    backups: Iterable[Mapping[str, Any]],
    retention: Retention,
    pinned: frozenset[str],
    now: dt.datetime,
) -> list[str]:
    """Names of the Backup objects retention deletes, oldest first.

    Completed Backups count as good ones; Failed ones never do (they go once older than
    ``maxAge``); Pending or Running ones are left alone. A Backup whose ID is pinned stays.
    """
    candidates = []
    for backup in backups:
        meta = backup.get("metadata") or {}
        status = backup.get("status") or {}
        phase = status.get("phase")
        if phase not in ("Completed", "Failed") or meta.get("deletionTimestamp"):
            continue
        created = parse_time(meta.get("creationTimestamp")) or parse_time(status.get("startTime"))
        if created is None:
            continue
        candidates.append(
            Candidate(
                str(meta.get("name")),
                created,
                completed=phase == "Completed",
                pinned=str(status.get("id") or "") in pinned,
            )
        )
    policy = Policy(
        keep_last=retention.keep_last, max_age=retention.max_age, min_keep=retention.min_keep
    )
    if policy.keep_last is None and policy.max_age is None:
        return []
    return select_for_deletion(candidates, policy, now)


def last_successful(backups: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """(name, completionTime) of the newest Completed Backup."""
    done = [
        (str((b.get("status") or {}).get("completionTime") or ""), str(b["metadata"]["name"]))
        for b in backups
        if (b.get("status") or {}).get("phase") == "Completed"
    ]
    if not done:
        return None
    when, name = max(done)
    return name, when


def reconcile_schedule(body: dict[str, Any], cluster: Cluster, *, now: dt.datetime) -> Outcome:
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    status = body.get("status") or {}
    patch = StatusPatch(body, now)
    try:
        spec = parse_backup_schedule(body)
        tz = zone(spec.time_zone)
    except InvalidInput as err:
        patch.stalled("InvalidSpec", err.message)
        event = (
            ()
            if _reason(status) == "InvalidSpec"
            else (Event("Warning", "InvalidSpec", err.message),)
        )
        return Outcome(patch.build(), event)
    events: list[Event] = []
    created = parse_time(meta.get("creationTimestamp")) or now
    last = parse_time(status.get("lastScheduleTime"))
    try:
        due = due_time(spec, tz, created=created, last=last, now=now)
        if due is not None:
            if cluster.get("Environment", namespace, spec.environment) is None:
                message = f"Environment {spec.environment} does not exist; no backup taken"
                patch.progressing("EnvironmentNotFound", message)
                if _reason(status) != "EnvironmentNotFound":
                    events.append(Event("Warning", "EnvironmentNotFound", message))
                return Outcome(patch.build(), tuple(events))
            backup = backup_body(body, spec, due)
            backup_name_ = backup["metadata"]["name"]
            if cluster.get("Backup", namespace, backup_name_) is None:
                cluster.create("Backup", namespace, backup)
                events.append(Event("Normal", "BackupCreated", f"created Backup {backup_name_}"))
            last = due
            patch.set(lastScheduleTime=timestamp(due), lastBackup=backup_name_)
        owned = [
            b
            for b in cluster.list("Backup", namespace, label_selector=f"{SCHEDULE_LABEL}={name}")
            if owned_by(b, meta.get("uid"))
        ]
        doomed = to_prune(
            owned, spec.retention, pinned_backup_ids(cluster.list("Migration", namespace), now), now
        )
        for victim in doomed:
            cluster.delete("Backup", namespace, victim)
            events.append(Event("Normal", "BackupPruned", f"retention deleted Backup {victim}"))
    except TemporaryError as err:
        patch.progressing(err.reason, err.message)
        return Outcome(patch.build(), tuple(events))
    success = last_successful(b for b in owned if b["metadata"]["name"] not in doomed)
    if success:
        patch.set(lastSuccessfulBackup=success[0], lastSuccessfulTime=success[1] or None)
    if spec.suspend:
        patch.set(nextScheduleTime=None).ready("Suspended", "suspended: no backups are created")
    else:
        upcoming = timestamp(next_time(spec.schedule, tz, max(last or created, now)))
        patch.set(nextScheduleTime=upcoming).ready("Scheduled", f"next backup at {upcoming}")
    _last_backup_condition(patch, owned, doomed)
    return Outcome(patch.build(), tuple(events))


def _last_backup_condition(
    patch: StatusPatch, owned: list[dict[str, Any]], doomed: list[str]
) -> None:
    """``LastBackupSucceeded``: how the newest finished Backup of the schedule ended."""
    finished = [
        b
        for b in owned
        if (b.get("status") or {}).get("phase") in ("Completed", "Failed")
        and b["metadata"]["name"] not in doomed
    ]
    if not finished:
        return
    newest = max(finished, key=lambda b: str(b["metadata"].get("creationTimestamp") or ""))
    backup_status = newest.get("status") or {}
    label = newest["metadata"]["name"]
    if backup_status.get("phase") == "Completed":
        patch.condition("LastBackupSucceeded", True, "Completed", f"Backup {label} completed")
    else:
        patch.condition(
            "LastBackupSucceeded",
            False,
            "BackupFailed",
            f"Backup {label} failed: {backup_status.get('error') or 'see its status'}",
        )


def _reason(status: Mapping[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("reason"))
    return None
