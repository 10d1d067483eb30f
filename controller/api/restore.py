"""Typed view of a ``Restore``: put a backup back, or roll one migration back.

Either ``backup`` (a Backup's name or a backup ID, optionally limited to
``tables``) or ``migration`` (undo exactly what that migration changed; business
rows written since survive). ``environment`` defaults to the backup's own.
``execution`` runs the write in the operator or as a Kubernetes Job
(``controller.api.execution``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.api.execution import ExecutionSpec, parse_execution
from controller.api.execution import fields as execution_fields
from controller.api.phases import Phase
from controller.api.resources import Node
from controller.errors import InvalidInput

KIND = "Restore"

# A Backup object name or a backup ID (IDs are written into Backup status).
BACKUP_REF = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.:]*[A-Za-z0-9])?$")


class RestorePhase(Phase):
    PENDING = "Pending"
    QUEUED = "Queued"
    QUIESCING = "Quiescing"  # the target's application is scaled to zero (spec.application)
    BACKING_UP = "BackingUp"
    RESTORING = "Restoring"
    VERIFYING = "Verifying"
    RESUMING = "Resuming"  # its previous replica count is being restored
    CHECKING_HEALTH = "CheckingHealth"  # waiting until its health check answers 2xx
    COMPLETED = "Completed"
    FAILED = "Failed"
    REVERTED = "Reverted"

    @classmethod
    def final(cls) -> frozenset[RestorePhase]:
        return frozenset({cls.COMPLETED, cls.FAILED, cls.REVERTED})


FIELDS_READ: tuple[str, ...] = (
    "spec.backup",
    "spec.environment",
    "spec.tables",
    "spec.migration",
    "spec.force",
    *execution_fields("spec"),
)


@dataclass(frozen=True)
class RestoreSpec:
    backup: str | None = None  # a Backup name or a backup ID
    migration: str | None = None  # roll back this Migration instead
    environment: str | None = None  # None: the backup's (or migration target's) own
    tables: tuple[str, ...] = ()
    force: bool = False  # restore even if the backup's application version differs
    execution: ExecutionSpec | None = None  # over the target Environment's, key by key

    @property
    def is_rollback(self) -> bool:
        return self.migration is not None


def parse_restore(body: Mapping[str, Any]) -> RestoreSpec:
    """Parse a Restore resource body."""
    spec = Node.root(body, KIND, FIELDS_READ)
    which = spec.one_of("backup", "migration")
    tables = spec.tables("tables")
    if which == "migration" and tables:
        raise InvalidInput(
            "spec.tables: applies to a backup restore; a migration rollback restores "
            "exactly what the migration changed"
        )
    return RestoreSpec(
        backup=spec.string("backup", pattern=BACKUP_REF),
        migration=spec.name("migration"),
        environment=spec.name("environment"),
        tables=tables,
        force=spec.boolean("force"),
        execution=parse_execution(spec),
    )
