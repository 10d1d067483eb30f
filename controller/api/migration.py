"""Typed view of a ``Migration``: one promotion of configuration into a target.

A Migration is a one-shot like a Job. Its source (an Environment or a snapshot in
Git) and target are fixed at creation (the CRD forbids changing them); the rules
and the approval may still change until it runs, which is how a reviewed plan
digest arrives.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.api.execution import ExecutionSpec, parse_execution
from controller.api.execution import fields as execution_fields
from controller.api.phases import Phase
from controller.api.resources import Node
from controller.api.rules import _TABLE_FIELDS, _TOP_FIELDS, RulesSpec, parse_rules
from controller.errors import InvalidInput

KIND = "Migration"

# Also the CRD's ``pattern`` for spec.approval.planDigest.
PLAN_DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
_PLAN_DIGEST = re.compile(PLAN_DIGEST_PATTERN)
# https://…, ssh://…, git@host:path, file:///…
REPOSITORY = re.compile(r"^(https?://|ssh://|file://|[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:)\S+$")
_SNAPSHOT_PATH = re.compile(r"^[^/\s][^\s]*$|^\.$")


class MigrationPhase(Phase):
    PENDING = "Pending"
    QUEUED = "Queued"
    PLANNING = "Planning"
    AWAITING_APPROVAL = "AwaitingApproval"
    REHEARSING = "Rehearsing"  # spec.rehearsal: the plan runs on a scratch copy first
    QUIESCING = "Quiescing"  # the target's application is scaled to zero (spec.application)
    BACKING_UP = "BackingUp"
    APPLYING = "Applying"
    VERIFYING = "Verifying"
    RESUMING = "Resuming"  # its previous replica count is being restored
    CHECKING_HEALTH = "CheckingHealth"  # waiting until its health check answers 2xx
    ROLLING_BACK = "RollingBack"  # it stayed unhealthy: quiesced again, rolled back
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ROLLED_BACK = "RolledBack"

    @classmethod
    def final(cls) -> frozenset[MigrationPhase]:
        return frozenset({cls.SUCCEEDED, cls.FAILED, cls.ROLLED_BACK})


FIELDS_READ: tuple[str, ...] = (
    "spec.source.environment",
    "spec.source.git.repository",
    "spec.source.git.revision",
    "spec.source.git.path",
    "spec.source.git.secretRef.name",
    "spec.target",
    *(f"spec.rules.{f}" for f in sorted(_TOP_FIELDS - {"tables"})),
    *(f"spec.rules.tables[].{f}" for f in sorted(_TABLE_FIELDS)),
    "spec.approval.required",
    "spec.approval.planDigest",
    "spec.backup.skip",
    "spec.rehearsal",
    *execution_fields("spec"),
)


class Rehearsal(enum.StrEnum):
    """``spec.rehearsal``: whether the plan is applied to a scratch copy first."""

    REQUIRED = "Required"
    SKIP = "Skip"


@dataclass(frozen=True)
class GitSource:
    repository: str
    revision: str | None = None  # None: the remote's default branch
    path: str = "."
    secret_name: str | None = None  # credentials (token or SSH key) for the repository


@dataclass(frozen=True)
class MigrationSource:
    environment: str | None = None
    git: GitSource | None = None


@dataclass(frozen=True)
class Approval:
    required: bool = False
    plan_digest: str | None = None

    def approves(self, digest: str) -> bool:
        """True when no approval is needed or the spec carries exactly ``digest``."""
        return not self.required or self.plan_digest == digest


@dataclass(frozen=True)
class MigrationSpec:
    source: MigrationSource
    target: str
    rules: RulesSpec = field(default_factory=RulesSpec)
    approval: Approval = field(default_factory=Approval)
    skip_backup: bool = False
    rehearsal: Rehearsal = Rehearsal.SKIP
    execution: ExecutionSpec | None = None  # the apply's; over the target Environment's


def _parse_source(spec: Node) -> MigrationSource:
    node = spec.child("source", required=True)
    assert node is not None
    if node.one_of("environment", "git") == "environment":
        return MigrationSource(environment=node.name("environment", required=True))
    git = node.child("git")
    assert git is not None
    secret = git.child("secretRef")
    return MigrationSource(
        git=GitSource(
            repository=git.required_string("repository", pattern=REPOSITORY),
            revision=git.string("revision"),
            path=git.string("path", pattern=_SNAPSHOT_PATH) or ".",
            secret_name=secret.name("name", required=True) if secret is not None else None,
        )
    )


def parse_migration(body: Mapping[str, Any]) -> MigrationSpec:
    """Parse a Migration resource body; ``spec.rules`` goes through ``parse_rules``."""
    spec = Node.root(body, KIND, FIELDS_READ)
    source = _parse_source(spec)
    target = spec.name("target", required=True) or ""
    if source.environment == target:
        raise InvalidInput(f"spec.source.environment and spec.target are both {target!r}")
    approval_node = spec.child("approval")
    approval = Approval()
    if approval_node is not None:
        approval = Approval(
            required=approval_node.boolean("required"),
            plan_digest=approval_node.string("planDigest", pattern=_PLAN_DIGEST),
        )
    backup = spec.child("backup")
    return MigrationSpec(
        source=source,
        target=target,
        rules=parse_rules(spec.raw("rules")),
        approval=approval,
        skip_backup=backup.boolean("skip") if backup is not None else False,
        rehearsal=spec.enum("rehearsal", Rehearsal, Rehearsal.SKIP),
        execution=parse_execution(spec),
    )
