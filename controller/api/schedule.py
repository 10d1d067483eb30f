"""Typed view of a ``BackupSchedule``: when to back an environment up, what to keep.

The cron syntax is checked twice with one pattern: the CRD rejects the shape
(five fields or a macro) at ``kubectl apply``; croniter here rejects values the
pattern lets through (minute 61), so the operator never schedules nonsense.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from croniter import croniter

from controller.api.backup import DeletionPolicy, TableSelection, parse_selection
from controller.api.resources import Node, SecretKeyRef, parse_secret_source, secret_fields
from controller.errors import InvalidInput

KIND = "BackupSchedule"

# Also the CRD's ``pattern`` for spec.schedule (tests/unit/test_crd_schemas.py).
CRON_PATTERN = (
    r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
    r"|[0-9A-Za-z*?,/-]+( +[0-9A-Za-z*?,/-]+){4})$"
)
# Also the CRD's ``pattern`` for spec.retention.maxAge: 30d, 12h, 1w, 1d12h.
DURATION_PATTERN = r"^([0-9]+[mhdw])+$"
# Also the CRD's ``pattern`` for spec.timeZone (an IANA name such as Europe/Berlin).
TIME_ZONE_PATTERN = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"

_CRON = re.compile(CRON_PATTERN)
_DURATION = re.compile(DURATION_PATTERN)
_TIME_ZONE = re.compile(TIME_ZONE_PATTERN)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}

FIELDS_READ: tuple[str, ...] = (
    "spec.environment",
    "spec.schedule",
    "spec.timeZone",
    "spec.suspend",
    "spec.immediate",
    "spec.backupsOnDelete",
    "spec.template.tables",
    "spec.template.exclude",
    "spec.template.deletionPolicy",
    "spec.retention.keepLast",
    "spec.retention.maxAge",
    "spec.retention.minKeep",
    "spec.retention.keepHourly",
    "spec.retention.keepDaily",
    "spec.retention.keepWeekly",
    "spec.retention.keepMonthly",
    "spec.retention.keepYearly",
    "spec.drill.schedule",
    "spec.drill.pick",
    "spec.drill.bootCheck",
    *secret_fields("spec.drill.scratch.urlFrom"),
)
# The grandfather-father-son tiers, as spec.retention names them.
TIER_FIELDS: tuple[str, ...] = (
    "keepHourly",
    "keepDaily",
    "keepWeekly",
    "keepMonthly",
    "keepYearly",
)


def parse_duration(text: str, where: str) -> timedelta:
    """``30d``, ``12h``, ``1w``, ``1d12h`` → a positive timedelta."""
    if not _DURATION.match(text):
        raise InvalidInput(f"{where}: malformed duration {text!r} (e.g. 30d, 12h, 1d12h)")
    total = timedelta()
    for amount, unit in re.findall(r"([0-9]+)([mhdw])", text):
        total += timedelta(**{_UNITS[unit]: int(amount)})
    if total <= timedelta():
        raise InvalidInput(f"{where}: duration must be positive, got {text!r}")
    return total


class BackupsOnDelete(enum.StrEnum):
    """What deleting (or renaming) the schedule does to the Backups it created.

    ``Orphan``, the default, follows Velero: an Argo CD prune or a rename must not take
    backups with it, so scheduled Backups carry no ownerReference and stay; a schedule
    for the same environment adopts them and its retention prunes them. ``Delete`` makes
    them owned, so Kubernetes' garbage collector deletes them with the schedule (each
    Backup's ``deletionPolicy`` then decides about its stored artifact).
    """

    ORPHAN = "Orphan"
    DELETE = "Delete"


@dataclass(frozen=True)
class BackupTemplate:
    selection: TableSelection = field(default_factory=TableSelection)
    deletion_policy: DeletionPolicy = DeletionPolicy.DELETE


@dataclass(frozen=True)
class Retention:
    """Keep the newest ``keep_last`` completed backups and, per tier, the newest one of
    each of the N newest hours, days, ISO weeks, months and years (0: tier off); prune
    the rest and whatever is older than ``max_age``; but always keep ``min_keep``
    completed ones, pinned ones and any a rollback window needs
    (controller/backups/retention.py decides)."""

    keep_last: int | None = None
    max_age: timedelta | None = None
    min_keep: int = 1
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0


class DrillPick(enum.StrEnum):
    """Which completed backup of the schedule a drill restores."""

    NEWEST = "Newest"
    SAMPLED = "Sampled"  # drawn from all of them, fixed per drill time


@dataclass(frozen=True)
class DrillSpec:
    """Restore one of the schedule's completed backups (``pick``) into an empty scratch
    database on its own cron ``schedule`` (read in the schedule's time zone), check it
    against the manifest and clear the scratch (controller/commands/drill.py). The
    scratch database's URL comes from a Secret; it must be empty and must not be the
    Environment's. ``boot_check``: also boot the Environment's application against the
    restored scratch database (its ``spec.application.bootCheck``) before it is cleared."""

    schedule: str
    scratch: SecretKeyRef
    pick: DrillPick = DrillPick.NEWEST
    boot_check: bool = False


@dataclass(frozen=True)
class BackupScheduleSpec:
    environment: str
    schedule: str
    time_zone: str | None = None  # None: the operator's (UTC)
    suspend: bool = False
    immediate: bool = False
    backups_on_delete: BackupsOnDelete = BackupsOnDelete.ORPHAN
    template: BackupTemplate = field(default_factory=BackupTemplate)
    retention: Retention = field(default_factory=Retention)
    drill: DrillSpec | None = None


def _parse_retention(spec: Node) -> Retention:
    node = spec.child("retention")
    if node is None:
        return Retention()
    keep_last = node.integer("keepLast", minimum=1)
    min_keep = node.integer("minKeep", minimum=0)
    max_age_text = node.string("maxAge")
    max_age = parse_duration(max_age_text, f"{node.where}.maxAge") if max_age_text else None
    if keep_last is not None and min_keep is not None and min_keep > keep_last:
        raise InvalidInput(f"{node.where}: minKeep ({min_keep}) exceeds keepLast ({keep_last})")
    hourly, daily, weekly, monthly, yearly = (node.integer(f) or 0 for f in TIER_FIELDS)
    return Retention(
        keep_last=keep_last,
        max_age=max_age,
        min_keep=1 if min_keep is None else min_keep,
        keep_hourly=hourly,
        keep_daily=daily,
        keep_weekly=weekly,
        keep_monthly=monthly,
        keep_yearly=yearly,
    )


def _cron(node: Node, where: str) -> str:
    schedule = node.required_string("schedule")
    if not _CRON.match(schedule) or not croniter.is_valid(schedule):
        raise InvalidInput(
            f"{where}: malformed cron expression {schedule!r} "
            "(five fields, or @hourly, @daily, @weekly, @monthly, @yearly)"
        )
    return schedule


def _parse_drill(spec: Node) -> DrillSpec | None:
    node = spec.child("drill")
    if node is None:
        return None
    scratch = node.child("scratch", required=True)
    assert scratch is not None
    ref = parse_secret_source(scratch.child("urlFrom", required=True))
    assert ref is not None
    return DrillSpec(
        schedule=_cron(node, f"{node.where}.schedule"),
        scratch=ref,
        pick=node.enum("pick", DrillPick, DrillPick.NEWEST),
        boot_check=node.boolean("bootCheck"),
    )


def parse_backup_schedule(body: Mapping[str, Any]) -> BackupScheduleSpec:
    """Parse a BackupSchedule resource body."""
    spec = Node.root(body, KIND, FIELDS_READ)
    schedule = _cron(spec, "spec.schedule")
    template_node = spec.child("template")
    template = BackupTemplate()
    if template_node is not None:
        template = BackupTemplate(
            selection=parse_selection(template_node),
            deletion_policy=template_node.enum(
                "deletionPolicy", DeletionPolicy, DeletionPolicy.DELETE
            ),
        )
    return BackupScheduleSpec(
        environment=spec.name("environment", required=True) or "",
        schedule=schedule,
        time_zone=spec.string("timeZone", pattern=_TIME_ZONE),
        suspend=spec.boolean("suspend"),
        immediate=spec.boolean("immediate"),
        backups_on_delete=spec.enum("backupsOnDelete", BackupsOnDelete, BackupsOnDelete.ORPHAN),
        template=template,
        retention=_parse_retention(spec),
        drill=_parse_drill(spec),
    )
