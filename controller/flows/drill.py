"""A BackupSchedule's restore drills (``spec.drill``): prove its backups restore.

On the drill's own cron schedule (in the schedule's time zone; missed runs collapse
into one, as for backups) a Completed Backup of the schedule (the newest, or a sampled
one: ``spec.drill.pick``) is restored into
the scratch database of ``spec.drill.scratch`` (controller/commands/drill.py: refused
unless empty and other than the Environment's database, checked table by table, with
``spec.drill.bootCheck`` the Environment's application booted against it
(controller/flows/bootcheck.py), then cleared). The result is the Backup's
``status.lastDrill`` and the schedule's ``status.lastDrill``; the schedule's
``DrillFailed`` condition says whether it passed.
A drill that could not run because something did not answer is retried at the next
check, without moving ``status.lastDrillTime``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from controller.api.backup import BackupPhase
from controller.api.reasons import ConditionType, EventType, ScheduleReason
from controller.api.schedule import BackupScheduleSpec, DrillPick, DrillSpec
from controller.commands import environments
from controller.commands.drill import FAILED, DrillResult, drill
from controller.errors import FerryError, TemporaryError
from controller.flows.bootcheck import BootCheck, BootOwner, boot_client_missing
from controller.flows.outcome import Event
from controller.flows.status import StatusPatch, timestamp
from controller.k8s.bootcheck import BootPods
from controller.k8s.client import Cluster


def drill_due(
    spec: DrillSpec,
    tz: ZoneInfo,
    *,
    created: dt.datetime,
    last: dt.datetime | None,
    now: dt.datetime,
) -> dt.datetime | None:
    """The scheduled time of the drill to run now (the latest missed one), or None."""
    after = (last or created).astimezone(tz)
    fire: dt.datetime = croniter(spec.schedule, after).get_next(dt.datetime)
    if fire.astimezone(dt.UTC) > now:
        return None
    latest: dt.datetime = croniter(spec.schedule, now.astimezone(tz)).get_prev(dt.datetime)
    return max(fire, latest).astimezone(dt.UTC)


@dataclass(frozen=True)
class DrillRecord:
    """What ``status.lastDrill`` says, on the Backup and on the schedule."""

    backup: str | None
    backup_id: str | None
    time: str
    seconds: float
    outcome: str  # Passed or Failed
    reason: ScheduleReason
    message: str
    boot: dict[str, Any] | None = None  # the application booted against the copy
    files: dict[str, Any] | None = None  # the backup's file members: count, bytes, outcome

    def to_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "backup": self.backup,
            "backupId": self.backup_id,
            "time": self.time,
            "durationSeconds": round(self.seconds, 3),
            "outcome": self.outcome,
            "message": self.message,
        }
        if self.files is not None:
            out["files"] = self.files
        return out if self.boot is None else {**out, "boot": self.boot}


def _summary(result: DrillResult) -> str:
    m = result.backup
    if result.restored:
        files = f", {result.files.count} files proven" if result.files else ""
        restored = (
            f"backup {m.id} restored into the scratch database and matched its manifest: "
            f"{len(m.members)} tables, {m.rows} rows{files} in {result.seconds:.1f}s"
        )
        if result.boot is None:
            return restored
        if result.boot.healthy:
            return f"{restored}; the application booted on it ({result.boot.message})"
        return f"{restored}, but the application did not boot on it: {result.boot.message}"
    problems = [f"{t.table}: {t.problem}" for t in result.tables if not t.ok]
    problems += [*result.problems, *(result.files.problems if result.files else ())]
    return f"backup {m.id} failed its drill: " + "; ".join(problems)


def _boot_check(
    env: environments.ResolvedEnvironment,
    backup: Mapping[str, Any],
    pods: BootPods | None,
) -> BootCheck:
    """``spec.drill.bootCheck``: the Environment's boot check, owned by the Backup."""
    app = env.spec.application
    if app is None or app.boot_check is None:
        raise FerryError(
            f"spec.drill.bootCheck is set, and Environment {env.name} declares no "
            "spec.application.bootCheck"
        )
    if pods is None:
        raise FerryError(boot_client_missing(env.name))
    return BootCheck(pods, app, env.namespace, BootOwner.of("Backup", backup))


def _run(
    namespace: str,
    spec: BackupScheduleSpec,
    backup: Mapping[str, Any],
    cluster: Cluster,
    now: dt.datetime,
    pods: BootPods | None,
) -> DrillRecord:
    assert spec.drill is not None
    name = str(backup["metadata"]["name"])
    backup_id = str((backup.get("status") or {}).get("id") or "")
    when = timestamp(now)
    try:
        env = environments.lookup(cluster, namespace, spec.environment)
        if env.store is None:
            raise FerryError(f"Environment {env.name} has no spec.backups.store")
        ref = spec.drill.scratch
        boot = _boot_check(env, backup, pods) if spec.drill.boot_check else None
        scratch = cluster.secret_value(namespace, ref.name, ref.key)
        result = drill(env.store, backup_id, scratch, boot=boot)
    except TemporaryError:
        raise
    except FerryError as err:
        message = f"the drill of Backup {name} could not run: {err.message}"
        return DrillRecord(
            name, backup_id, when, 0.0, FAILED, ScheduleReason.DRILL_NOT_RUN, message
        )
    reason = (
        ScheduleReason.DRILL_PASSED
        if result.passed
        else ScheduleReason.BACKUP_NOT_RESTORABLE
        if not result.restored
        else ScheduleReason.DRILL_BOOT_FAILED
    )
    booted = result.boot.to_status() if result.boot is not None else None
    files = result.files.to_dict() if result.files is not None else None
    if files is not None:
        del files["problems"]  # in the message; status keeps the numbers
    return DrillRecord(
        name,
        backup_id,
        when,
        result.seconds,
        result.outcome,
        reason,
        _summary(result),
        booted,
        files,
    )


def pick_backup(
    owned: list[dict[str, Any]], pick: DrillPick, due: dt.datetime
) -> dict[str, Any] | None:
    """The completed Backup a drill due at ``due`` restores: the newest, or one drawn
    from all of them by a hash of the drill's time, so that a retry of the same drill
    restores the same backup and the next drill most likely another."""
    done = sorted(
        (
            b
            for b in owned
            if (b.get("status") or {}).get("phase") == BackupPhase.COMPLETED
            and (b.get("status") or {}).get("id")
        ),
        key=lambda b: (str(b["status"].get("completionTime") or ""), str(b["status"]["id"])),
    )
    if not done:
        return None
    if pick is DrillPick.NEWEST:
        return done[-1]
    draw = hashlib.sha256(timestamp(due).encode()).digest()
    return done[int.from_bytes(draw[:8], "big") % len(done)]


@dataclass(frozen=True)
class DrillClock:
    """When the schedule was created and last drilled, and now."""

    created: dt.datetime
    last: dt.datetime | None
    now: dt.datetime


def run_due_drill(
    namespace: str,
    spec: BackupScheduleSpec,
    tz: ZoneInfo,
    owned: list[dict[str, Any]],
    cluster: Cluster,
    patch: StatusPatch,
    events: list[Event],
    clock: DrillClock,
    pods: BootPods | None = None,
) -> None:
    """Run the drill if one is due; record it on the Backup, the schedule's status and
    its ``DrillFailed`` condition. A TemporaryError propagates and leaves it due."""
    if spec.drill is None or spec.suspend:
        return
    now = clock.now
    due = drill_due(spec.drill, tz, created=clock.created, last=clock.last, now=now)
    if due is None:
        return
    backup = pick_backup(owned, spec.drill.pick, due)
    if backup is None:
        record = DrillRecord(
            None,
            None,
            timestamp(now),
            0.0,
            FAILED,
            ScheduleReason.DRILL_NOT_RUN,
            "no completed Backup of the schedule to drill",
        )
    else:
        record = _run(namespace, spec, backup, cluster, now, pods)
        cluster.patch_status(
            "Backup", namespace, record.backup or "", {"lastDrill": record.to_status()}
        )
    patch.set(lastDrillTime=timestamp(due), lastDrill=record.to_status())
    passed = record.reason is ScheduleReason.DRILL_PASSED
    patch.condition(ConditionType.DRILL_FAILED, not passed, record.reason, record.message)
    events.append(
        Event(EventType.NORMAL if passed else EventType.WARNING, record.reason, record.message)
    )
