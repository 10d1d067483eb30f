"""Reconcile a BackupSchedule: create Backups on a cron schedule, then prune old ones.

The schedule's own times decide, not the timer that calls this: a run is due when the
cron expression (read in ``spec.timeZone``) fires between ``status.lastScheduleTime``
(or the schedule's creation) and now. Missed runs collapse into one, as with a
CronJob. Each run creates a ``Backup`` object named after its scheduled time and
labelled with the schedule's name, so a repeated run after a lost status write finds it
instead of creating a second one.

Membership is the ``ferry.dev/schedule`` label, not an ownerReference: deleting or
renaming a schedule (an Argo CD prune does both) must not garbage-collect its backups
unless ``spec.backupsOnDelete: Delete`` asks for it (Velero's lesson). Backups whose
schedule is gone are adopted by a schedule for the same environment, so retention still
reaches them: nothing is kept forever by accident. The decisions (is a run due, when is
the next, which labels and owners a Backup gets, which Backups to adopt or prune) are
pure functions below.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from controller.api.backup import BackupPhase
from controller.api.backup import Reason as BackupSpecReason
from controller.api.migration import MigrationPhase
from controller.api.reasons import CommonReason, ConditionType, EventType, ScheduleReason
from controller.api.resources import GROUP, VERSION
from controller.api.schedule import (
    BackupScheduleSpec,
    BackupsOnDelete,
    Retention,
    parse_backup_schedule,
)
from controller.backups.retention import Candidate, Decision, Policy, decide
from controller.errors import InvalidInput, TemporaryError
from controller.flows.drill import DrillClock, run_due_drill
from controller.flows.outcome import Event, Outcome
from controller.flows.status import StatusPatch, ready_reason, timestamp
from controller.k8s.bootcheck import BootPods
from controller.k8s.client import Cluster

SCHEDULE_LABEL = "ferry.dev/schedule"
ADOPTED_FROM = "ferry.dev/adopted-from"  # annotation: the schedule an adopted Backup had
PINNED = "ferry.dev/pinned"  # annotation: retention never prunes this Backup
KEPT_BY = "ferry.dev/kept-by"  # annotation: the retention rules that keep this Backup
# Argo CD tracks what it deployed by this label (or annotation); copied onto a Backup,
# it would make Argo CD see the Backup as an unknown resource of its app and prune it.
ARGO_CD_LABELS = frozenset({"app.kubernetes.io/instance"})
ARGO_CD_PREFIX = "argocd.argoproj.io/"
PIN_WINDOW = dt.timedelta(days=7)
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
    if next_time(spec.schedule, tz, last or created) > now:
        return None
    return latest_time(spec.schedule, tz, now)


def latest_time(schedule: str, tz: ZoneInfo, now: dt.datetime) -> dt.datetime:
    """The last time at or before ``now`` the cron expression fires, read in ``tz``: one
    step back, however long ago the last run was (walking forward from a last run years
    ago took a minute of the operator's time for an every-minute schedule)."""
    start = now.astimezone(tz) + dt.timedelta(microseconds=1)  # ``now`` itself counts
    fire: dt.datetime = croniter(schedule, start).get_prev(dt.datetime)
    return fire.astimezone(dt.UTC)


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


def schedule_ref(schedule_body: Mapping[str, Any]) -> dict[str, Any]:
    """The ownerReference that makes a Backup go with its schedule (``Delete``)."""
    meta = schedule_body.get("metadata") or {}
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "BackupSchedule",
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "controller": True,
        "blockOwnerDeletion": True,
    }


def desired_owners(
    backup: Mapping[str, Any], schedule_body: Mapping[str, Any], policy: BackupsOnDelete
) -> list[dict[str, Any]]:
    """The Backup's ownerReferences as ``policy`` wants them: owners that are not a
    BackupSchedule are kept; a schedule's reference only with ``Delete``, and only this
    schedule's (an adopted Backup must not go with the schedule it came from)."""
    refs = (backup.get("metadata") or {}).get("ownerReferences") or []
    kept = [dict(r) for r in refs if r.get("kind") != "BackupSchedule"]
    if policy is BackupsOnDelete.DELETE:
        kept.append(schedule_ref(schedule_body))
    return kept


def backup_body(
    schedule_body: Mapping[str, Any], spec: BackupScheduleSpec, when: dt.datetime
) -> dict[str, Any]:
    """The Backup one run creates. No annotation of the schedule is copied (Argo CD's
    ``argocd.argoproj.io/tracking-id`` and kubectl's last-applied configuration among
    them); an ownerReference only with ``backupsOnDelete: Delete``."""
    meta = schedule_body.get("metadata") or {}
    name = str(meta.get("name"))
    backup_spec: dict[str, Any] = {
        "environment": spec.environment,
        "reason": BackupSpecReason.SCHEDULED.value,
        "deletionPolicy": spec.template.deletion_policy.value,
    }
    if spec.template.selection.include:
        backup_spec["tables"] = list(spec.template.selection.include)
    if spec.template.selection.exclude:
        backup_spec["exclude"] = list(spec.template.selection.exclude)
    metadata: dict[str, Any] = {
        "name": backup_name(name, when),
        "namespace": meta.get("namespace"),
        "labels": backup_labels(meta.get("labels"), name),
    }
    owners = desired_owners({}, schedule_body, spec.backups_on_delete)
    if owners:
        metadata["ownerReferences"] = owners
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Backup",
        "metadata": metadata,
        "spec": backup_spec,
    }


def _schedule_of(backup: Mapping[str, Any]) -> str:
    return str(((backup.get("metadata") or {}).get("labels") or {}).get(SCHEDULE_LABEL) or "")


def adopter(schedules: Iterable[Mapping[str, Any]], environment: str) -> str | None:
    """The schedule that adopts orphans of ``environment``: of the live schedules for it,
    the first by name, so that two schedules never fight over a Backup."""
    names = [
        str(s["metadata"]["name"])
        for s in schedules
        if (s.get("spec") or {}).get("environment") == environment
        and not (s.get("metadata") or {}).get("deletionTimestamp")
    ]
    return min(names) if names else None


def orphans(
    backups: Iterable[Mapping[str, Any]], schedules: Iterable[Mapping[str, Any]], environment: str
) -> list[Mapping[str, Any]]:
    """Scheduled Backups of ``environment`` whose schedule no longer exists. A schedule
    that is being deleted still exists: it may yet take its owned Backups with it."""
    existing = {str(s["metadata"]["name"]) for s in schedules}
    return [
        b
        for b in backups
        if _schedule_of(b)
        and _schedule_of(b) not in existing
        and (b.get("spec") or {}).get("environment") == environment
        and not (b.get("metadata") or {}).get("deletionTimestamp")
    ]


def membership_patch(
    backup: Mapping[str, Any], schedule_body: Mapping[str, Any], policy: BackupsOnDelete
) -> dict[str, Any] | None:
    """The metadata patch that makes ``backup`` this schedule's, with the owners the
    policy wants; None when it already is."""
    meta = backup.get("metadata") or {}
    name = str((schedule_body.get("metadata") or {}).get("name"))
    patch: dict[str, Any] = {}
    previous = _schedule_of(backup)
    if previous != name:
        patch["labels"] = {SCHEDULE_LABEL: name}
        patch["annotations"] = {ADOPTED_FROM: previous}
    owners = desired_owners(backup, schedule_body, policy)
    if owners != (meta.get("ownerReferences") or []):
        patch["ownerReferences"] = owners
    return {"metadata": patch} if patch else None


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
        unfinished = not MigrationPhase.is_finished(status.get("phase")) or finished is None
        if unfinished or (finished is not None and now - finished < PIN_WINDOW):
            pinned.add(str(backup_id))
    return frozenset(pinned)


def pinned(backup: Mapping[str, Any]) -> bool:
    """Whether its owner pinned the Backup (``ferry.dev/pinned``). Any value but
    ``false`` pins: a typo must keep a backup, never lose one."""
    value = ((backup.get("metadata") or {}).get("annotations") or {}).get(PINNED)
    return value is not None and str(value).strip().lower() != "false"


def policy_of(retention: Retention, tz: dt.tzinfo) -> Policy:
    return Policy(
        keep_last=retention.keep_last,
        max_age=retention.max_age,
        min_keep=retention.min_keep,
        keep_hourly=retention.keep_hourly,
        keep_daily=retention.keep_daily,
        keep_weekly=retention.keep_weekly,
        keep_monthly=retention.keep_monthly,
        keep_yearly=retention.keep_yearly,
        zone=tz,
    )


def retention_decision(
    backups: Iterable[Mapping[str, Any]],
    retention: Retention,
    rollback: frozenset[str],
    now: dt.datetime,
    tz: dt.tzinfo = dt.UTC,
) -> Decision:
    """Every finished Backup's verdict, by Backup name.

    Completed Backups count as good ones; Failed ones never do (they go once older than
    ``maxAge``); Pending or Running ones are left alone. A Backup pinned by its
    annotation, or whose ID a rollback window needs (``rollback``), stays.
    """
    candidates = []
    for backup in backups:
        meta = backup.get("metadata") or {}
        status = backup.get("status") or {}
        phase = status.get("phase")
        if not BackupPhase.is_finished(phase) or meta.get("deletionTimestamp"):
            continue
        created = parse_time(meta.get("creationTimestamp")) or parse_time(status.get("startTime"))
        if created is None:
            continue
        candidates.append(
            Candidate(
                str(meta.get("name")),
                created,
                completed=phase == BackupPhase.COMPLETED,
                pinned=pinned(backup),
                rollback=str(status.get("id") or "") in rollback,
            )
        )
    return decide(candidates, policy_of(retention, tz), now)


def to_prune(
    backups: Iterable[Mapping[str, Any]],
    retention: Retention,
    rollback: frozenset[str],
    now: dt.datetime,
    tz: dt.tzinfo = dt.UTC,
) -> list[str]:
    """Names of the Backup objects retention deletes, oldest first."""
    return [v.id for v in retention_decision(backups, retention, rollback, now, tz).pruned()]


def kept_by_patches(
    backups: Iterable[Mapping[str, Any]], decision: Decision
) -> dict[str, dict[str, Any]]:
    """Metadata patches that make each kept Backup's ``ferry.dev/kept-by`` annotation
    name the rules that keep it, for the Backups whose annotation says otherwise."""
    wanted = {v.id: ", ".join(v.kept_by) for v in decision.kept() if v.kept_by}
    patches = {}
    for backup in backups:
        meta = backup.get("metadata") or {}
        name = str(meta.get("name"))
        if name in wanted and (meta.get("annotations") or {}).get(KEPT_BY) != wanted[name]:
            patches[name] = {"metadata": {"annotations": {KEPT_BY: wanted[name]}}}
    return patches


def prune(
    namespace: str,
    owned: list[dict[str, Any]],
    decision: Decision,
    cluster: Cluster,
    events: list[Event],
) -> list[str]:
    """Delete the Backups the decision prunes, each with an event that says why, and
    mark the kept ones with the rules that keep them."""
    doomed = []
    for verdict in decision.pruned():
        cluster.delete("Backup", namespace, verdict.id)
        doomed.append(verdict.id)
        message = f"retention deleted Backup {verdict.id}: {verdict.why}"
        events.append(Event(EventType.NORMAL, ScheduleReason.BACKUP_PRUNED, message))
    for name, patch in kept_by_patches(owned, decision).items():
        cluster.patch("Backup", namespace, name, patch)
    return doomed


def last_successful(backups: Iterable[Mapping[str, Any]]) -> tuple[str, str] | None:
    """(name, completionTime) of the newest Completed Backup."""
    done = [
        (str((b.get("status") or {}).get("completionTime") or ""), str(b["metadata"]["name"]))
        for b in backups
        if (b.get("status") or {}).get("phase") == BackupPhase.COMPLETED
    ]
    if not done:
        return None
    when, name = max(done)
    return name, when


def reconcile_schedule(
    body: dict[str, Any], cluster: Cluster, *, now: dt.datetime, pods: BootPods | None = None
) -> Outcome:
    """``pods``: a drill's boot check (``spec.drill.bootCheck``) creates its pod with it."""
    meta = body.get("metadata") or {}
    namespace = str(meta.get("namespace"))
    status = body.get("status") or {}
    patch = StatusPatch(body, now)
    try:
        spec = parse_backup_schedule(body)
        tz = zone(spec.time_zone)
    except InvalidInput as err:
        return _report(patch, status, CommonReason.INVALID_SPEC, err.message, stalled=True)
    events: list[Event] = []
    created = parse_time(meta.get("creationTimestamp")) or now
    last = parse_time(status.get("lastScheduleTime"))
    try:
        due = due_time(spec, tz, created=created, last=last, now=now)
        if due is not None:
            if cluster.get("Environment", namespace, spec.environment) is None:
                message = f"Environment {spec.environment} does not exist; no backup taken"
                return _report(patch, status, CommonReason.ENVIRONMENT_NOT_FOUND, message)
            backup = backup_body(body, spec, due)
            backup_name_ = backup["metadata"]["name"]
            if cluster.get("Backup", namespace, backup_name_) is None:
                cluster.create("Backup", namespace, backup)
                created_ = f"created Backup {backup_name_}"
                events.append(Event(EventType.NORMAL, ScheduleReason.BACKUP_CREATED, created_))
            last = due
            patch.set(lastScheduleTime=timestamp(due), lastBackup=backup_name_)
        owned = members(body, spec, cluster, events)
        rollback = pinned_backup_ids(cluster.list("Migration", namespace), now)
        decision = retention_decision(owned, spec.retention, rollback, now, tz)
        doomed = prune(namespace, owned, decision, cluster, events)
        kept = [b for b in owned if b["metadata"]["name"] not in doomed]
        clock = DrillClock(created, parse_time(status.get("lastDrillTime")), now)
        run_due_drill(namespace, spec, tz, kept, cluster, patch, events, clock, pods)
    except TemporaryError as err:
        patch.progressing(err.reason, err.message)
        return Outcome(patch.build(), tuple(events))
    upcoming = None if spec.suspend else next_time(spec.schedule, tz, max(last or created, now))
    _schedule_status(patch, owned, doomed, upcoming)
    return Outcome(patch.build(), tuple(events))


def _report(
    patch: StatusPatch,
    status: Mapping[str, Any],
    reason: CommonReason,
    message: str,
    *,
    stalled: bool = False,
) -> Outcome:
    """Stalled (or still reconciling) for ``reason``, with a Warning event the first time."""
    if stalled:
        patch.stalled(reason, message)
    else:
        patch.progressing(reason, message)
    new = ready_reason(status) != reason
    events = (Event(EventType.WARNING, reason, message),) if new else ()
    return Outcome(patch.build(), events)


def _schedule_status(
    patch: StatusPatch,
    owned: list[dict[str, Any]],
    doomed: list[str],
    upcoming: dt.datetime | None,
) -> None:
    """The schedule's Ready condition, its next (None: suspended) and last successful runs."""
    success = last_successful(b for b in owned if b["metadata"]["name"] not in doomed)
    if success:
        patch.set(lastSuccessfulBackup=success[0], lastSuccessfulTime=success[1] or None)
    if upcoming is None:
        patch.set(nextScheduleTime=None).ready(
            ScheduleReason.SUSPENDED, "suspended: no backups are created"
        )
    else:
        when = timestamp(upcoming)
        patch.set(nextScheduleTime=when).ready(ScheduleReason.SCHEDULED, f"next backup at {when}")
    _last_backup_condition(patch, owned, doomed)


def members(
    body: Mapping[str, Any], spec: BackupScheduleSpec, cluster: Cluster, events: list[Event]
) -> list[dict[str, Any]]:
    """This schedule's Backups (its label), after adopting orphans of its environment and
    giving each the ownerReferences ``spec.backupsOnDelete`` wants.

    The owners are set on every run, not only at creation, so that switching the policy,
    or upgrading from a release whose scheduled Backups were always owned, takes effect
    before the schedule is next deleted.
    """
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    scheduled = cluster.list("Backup", namespace, label_selector=SCHEDULE_LABEL)
    mine = [b for b in scheduled if _schedule_of(b) == name]
    schedules = cluster.list("BackupSchedule", namespace)
    adopted = []
    if adopter(schedules, spec.environment) == name:
        adopted = orphans(scheduled, schedules, spec.environment)
    for backup in (*mine, *adopted):
        patch = membership_patch(backup, body, spec.backups_on_delete)
        if patch is not None:
            cluster.patch("Backup", namespace, str(backup["metadata"]["name"]), patch)
    if adopted:
        sources = sorted({_schedule_of(b) for b in adopted})
        events.append(
            Event(
                EventType.NORMAL,
                ScheduleReason.BACKUPS_ADOPTED,
                f"adopted {len(adopted)} Backups of {spec.environment} left by deleted "
                f"schedule(s) {', '.join(sources)}; retention now applies to them",
            )
        )
    return [*mine, *(dict(b) for b in adopted)]


def _last_backup_condition(
    patch: StatusPatch, owned: list[dict[str, Any]], doomed: list[str]
) -> None:
    """``LastBackupSucceeded``: how the newest finished Backup of the schedule ended."""
    finished = [
        b
        for b in owned
        if BackupPhase.is_finished((b.get("status") or {}).get("phase"))
        and b["metadata"]["name"] not in doomed
    ]
    if not finished:
        return
    newest = max(finished, key=lambda b: str(b["metadata"].get("creationTimestamp") or ""))
    backup_status = newest.get("status") or {}
    label = newest["metadata"]["name"]
    if backup_status.get("phase") == BackupPhase.COMPLETED:
        patch.condition(
            ConditionType.LAST_BACKUP_SUCCEEDED,
            True,
            CommonReason.COMPLETED,
            f"Backup {label} completed",
        )
    else:
        patch.condition(
            ConditionType.LAST_BACKUP_SUCCEEDED,
            False,
            CommonReason.BACKUP_FAILED,
            f"Backup {label} failed: {backup_status.get('error') or 'see its status'}",
        )
