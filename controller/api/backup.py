"""Typed view of a ``Backup``: one point-in-time backup of an environment's database.

A Backup is a one-shot: its spec says what to back up and why, its status what was
stored where. ``deletionPolicy`` decides whether deleting the object (by hand or by a
schedule's retention) also deletes the stored artifact.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.api.execution import ExecutionSpec, parse_execution
from controller.api.execution import fields as execution_fields
from controller.api.phases import Phase
from controller.api.resources import Node
from controller.errors import InvalidInput

KIND = "Backup"


class Reason(enum.StrEnum):
    MANUAL = "manual"
    SCHEDULED = "scheduled"
    PRE_MIGRATION = "pre-migration"
    PRE_RESTORE = "pre-restore"


class DeletionPolicy(enum.StrEnum):
    RETAIN = "Retain"
    DELETE = "Delete"


class BackupPhase(Phase):
    PENDING = "Pending"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"

    @classmethod
    def final(cls) -> frozenset[BackupPhase]:
        return frozenset({cls.COMPLETED, cls.FAILED})


FIELDS_READ: tuple[str, ...] = (
    "spec.environment",
    "spec.tables",
    "spec.exclude",
    "spec.reason",
    "spec.deletionPolicy",
    *execution_fields("spec"),
)


@dataclass(frozen=True)
class TableSelection:
    """``tables`` (include) or ``exclude`` globs; both empty means every table."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackupSpec:
    environment: str
    selection: TableSelection = field(default_factory=TableSelection)
    reason: Reason = Reason.MANUAL
    deletion_policy: DeletionPolicy = DeletionPolicy.RETAIN
    execution: ExecutionSpec | None = None  # over the Environment's, key by key


def parse_selection(node: Node) -> TableSelection:
    """``tables`` / ``exclude`` of a Backup or of a schedule's template."""
    include, exclude = node.tables("tables"), node.tables("exclude")
    if include and exclude:
        raise InvalidInput(f"{node.where}: set tables or exclude, not both")
    return TableSelection(include=include, exclude=exclude)


def parse_backup(body: Mapping[str, Any]) -> BackupSpec:
    """Parse a Backup resource body."""
    spec = Node.root(body, KIND, FIELDS_READ)
    return BackupSpec(
        environment=spec.name("environment", required=True) or "",
        selection=parse_selection(spec),
        reason=spec.enum("reason", Reason, Reason.MANUAL),
        deletion_policy=spec.enum("deletionPolicy", DeletionPolicy, DeletionPolicy.RETAIN),
        execution=parse_execution(spec),
    )
