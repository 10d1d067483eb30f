"""Condition types, event types and the reasons of conditions and events.

A reason is a contract, not a message: Argo CD's health checks (``argocd/``), alerting
rules and ``kubectl wait`` read them, so each is defined once, here, and listed with its
meaning in ``docs/reference/status.md`` (a unit test keeps the two equal and keeps
string copies out of the flows and handlers). The errors of ``controller/errors.py``
carry reasons of their own (``SignatureMismatch``, ``GitAccessDenied`` …) that reach a
condition when a flow passes ``err.reason`` on; the same document lists those.

Grouped by the kind that uses them; reasons more than one kind uses are in
:class:`CommonReason`; each value is in one group only.
"""

from __future__ import annotations

import enum


class ConditionType(enum.StrEnum):
    READY = "Ready"  # every kind: the object did what it is for
    RECONCILING = "Reconciling"  # every kind: work is in progress or waited for
    STALLED = "Stalled"  # every kind: it cannot go on without a change
    DRIFTED = "Drifted"  # Environment: a locked configuration changed outside Ferry
    APPLIED = "Applied"  # Migration: whether its changes were applied
    WARNINGS = "Warnings"  # Migration: a step after the commit failed
    RESTORED = "Restored"  # Restore: whether the backup or rollback was written
    LAST_BACKUP_SUCCEEDED = "LastBackupSucceeded"  # BackupSchedule: its newest finished Backup
    DRILL_FAILED = "DrillFailed"  # BackupSchedule: True when its last restore drill failed
    # Migration, Restore into an Environment with spec.application:
    APPLICATION_QUIESCED = "ApplicationQuiesced"  # True while Ferry holds it at zero replicas
    APPLICATION_HEALTHY = "ApplicationHealthy"  # its health check after resuming


class EventType(enum.StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class CommonReason(enum.StrEnum):
    INVALID_SPEC = "InvalidSpec"  # the spec cannot be read: fix it
    ENVIRONMENT_NOT_FOUND = "EnvironmentNotFound"  # the named Environment does not exist (yet)
    ENVIRONMENT_NOT_READY = "EnvironmentNotReady"  # waiting for an Environment to be Ready
    WAITING_FOR_TURN = "WaitingForTurn"  # an earlier Migration or Restore writes first
    UNREACHABLE = "Unreachable"  # a database or store did not answer; retried
    NO_BACKUP_STORE = "NoBackupStore"  # the Environment has no spec.backups.store
    BACKUP_FAILED = "BackupFailed"  # a backup could not be taken, or the named one failed
    COMPLETED = "Completed"  # a Backup completed (also a schedule's newest Backup)
    ROLLED_BACK = "RolledBack"  # a Migration rolled back, or a Restore rolled one back
    INTERNAL_ERROR = "InternalError"  # an error no flow expected; see the operator log


class EnvironmentReason(enum.StrEnum):
    CONNECTED = "Connected"  # the database answered; its versions are in status
    ERROR = "Error"  # observing the Environment failed otherwise; retried in 30 s
    CONFIGURATION_CHANGED = "ConfigurationChanged"  # Drifted: the fingerprint moved
    NO_DRIFT = "NoDrift"  # Drifted false: a locked environment is as Ferry left it
    CHANGES_ALLOWED = "ChangesAllowed"  # Drifted false: configChanges allows edits
    DRIFT_DETECTED = "DriftDetected"  # event: a locked environment just drifted


class MigrationReason(enum.StrEnum):
    AWAITING_APPROVAL = "AwaitingApproval"  # the plan waits for spec.approval.planDigest
    PLAN_CHANGED = "PlanChanged"  # the plan moved between planning and applying; replans
    PROMOTION_REFUSED = "PromotionRefused"  # the target does not accept from this source
    INVALID_INPUT = "InvalidInput"  # the migration cannot be carried out as given
    APPLIED = "Applied"  # applied (or already matched)
    APPLIED_WITH_WARNINGS = "AppliedWithWarnings"  # applied; a step after the commit failed
    APPLY_FAILED = "ApplyFailed"  # applying failed; the target is unchanged
    # spec.rehearsal: Required (controller/commands/rehearsal.py)
    REHEARSAL_PASSED = "RehearsalPassed"  # event: the copy took the plan and verified
    REHEARSAL_FAILED = "RehearsalFailed"  # the plan failed on the copy; target untouched
    REHEARSAL_PLAN_DIFFERS = "RehearsalPlanDiffers"  # the copy planned another digest
    REHEARSAL_COPY_FAILED = "RehearsalCopyFailed"  # the target's backup did not restore
    REHEARSAL_BOOT_FAILED = "RehearsalBootFailed"  # the application did not boot on the copy
    REHEARSAL_NOT_CONFIGURED = "RehearsalNotConfigured"  # the target declares no scratch


class BackupReason(enum.StrEnum):
    BACKING_UP = "BackingUp"  # the backup is being written
    INVALID_ENVIRONMENT = "InvalidEnvironment"  # the Environment cannot be resolved
    INVALID_SELECTION = "InvalidSelection"  # spec.tables or spec.exclude selects wrongly
    ARTIFACT_RETAINED = "ArtifactRetained"  # event: deleted object, kept artifact (Retain)
    ARTIFACT_PINNED = "ArtifactPinned"  # event: kept, a rollback window needs it
    ARTIFACT_KEPT = "ArtifactKept"  # event: the artifact could not be deleted
    ARTIFACT_DELETED = "ArtifactDeleted"  # event: the artifact was deleted (Delete)
    # spec.execution.mode Job:
    JOB_QUEUED = "JobQueued"  # the namespace runs its limit of Ferry Jobs; waits for a slot
    JOB_RUNNING = "JobRunning"  # the backup runs as a Kubernetes Job (status.job)
    JOB_UNAVAILABLE = "JobUnavailable"  # Job mode cannot run this (no image, a literal password)


class RestoreReason(enum.StrEnum):
    BACKUP_NOT_READY = "BackupNotReady"  # waiting for the named Backup to complete
    BACKUP_NOT_FOUND = "BackupNotFound"  # no Backup or store has the named backup
    MIGRATION_NOT_FOUND = "MigrationNotFound"  # waiting for the named Migration to exist
    MIGRATION_NOT_FINISHED = "MigrationNotFinished"  # waiting for it to finish
    NOTHING_TO_ROLL_BACK = "NothingToRollBack"  # the Migration failed or rolled back
    NO_PRE_MIGRATION_BACKUP = "NoPreMigrationBackup"  # the Migration took no backup
    RESTORING = "Restoring"  # the backup or rollback is being written
    RESTORED = "Restored"  # the backup was restored
    REFUSED = "Refused"  # the restore cannot be carried out as asked
    RESTORE_FAILED = "RestoreFailed"  # writing failed; the target was put back
    ROLLBACK_FAILED = "RollbackFailed"  # writing a rollback failed; the target was put back


class ScheduleReason(enum.StrEnum):
    SCHEDULED = "Scheduled"  # Ready: the next backup time is in status
    SUSPENDED = "Suspended"  # Ready: spec.suspend, no backups are created
    BACKUP_CREATED = "BackupCreated"  # event: a run created a Backup
    BACKUP_PRUNED = "BackupPruned"  # event: retention deleted a Backup
    BACKUPS_ADOPTED = "BackupsAdopted"  # event: Backups of a deleted schedule adopted
    DRILL_PASSED = "DrillPassed"  # DrillFailed=False, event: the backup restored and matched
    BACKUP_NOT_RESTORABLE = "BackupNotRestorable"  # DrillFailed=True: did not restore or match
    DRILL_NOT_RUN = "DrillNotRun"  # DrillFailed=True: no scratch, no backup, or it was refused
    DRILL_BOOT_FAILED = "DrillBootFailed"  # DrillFailed=True: restored, the app did not boot


class OperatorReason(enum.StrEnum):
    CRD_SCHEMA_MISMATCH = "CRDSchemaMismatch"  # event: a CRD is not the operator's; it waits
    CRD_SCHEMA_CURRENT = "CRDSchemaCurrent"  # event: a mismatched CRD became current


class ApplicationReason(enum.StrEnum):
    """Migration and Restore into an Environment that declares ``spec.application``."""

    QUIESCING = "Quiescing"  # scaled to zero; waiting until no pod is left
    QUIESCED = "Quiesced"  # no pod is left; the previous replica count is in status
    QUIESCE_TIMED_OUT = "QuiesceTimedOut"  # pods were left after the timeout; resumed
    RESUMING = "Resuming"  # the previous replica count is being restored
    RESUMED = "Resumed"  # ApplicationQuiesced false: the replica count is restored
    CHECKING_HEALTH = "CheckingHealth"  # waiting for the health check to answer 2xx
    HEALTHY = "Healthy"  # the health check answered 2xx
    APPLICATION_UNHEALTHY = "ApplicationUnhealthy"  # it did not; the migration rolled back
    WORKLOAD_NOT_FOUND = "WorkloadNotFound"  # the declared workload does not exist; waited for
    RUNNING_APPLICATION = "RunningApplication"  # nocobase target without spec.application


class PreCheckReason(enum.StrEnum):
    """A ``nocobase`` promotion refused before any change: NocoBase itself would not
    run the promoted configuration (the checks NocoBase's own backup restorer makes)."""

    NAMING_SETTINGS_DIFFER = "NamingSettingsDiffer"  # DB_UNDERSCORED, DB_TABLE_PREFIX … differ
    TARGET_VERSION_OLDER = "TargetVersionOlder"  # the target runs an older NocoBase
    PLUGINS_MISSING = "PluginsMissing"  # source plugins not enabled in the target (strict)


REASON_GROUPS: tuple[type[enum.StrEnum], ...] = (
    CommonReason,
    EnvironmentReason,
    MigrationReason,
    BackupReason,
    RestoreReason,
    ScheduleReason,
    OperatorReason,
    ApplicationReason,
    PreCheckReason,
)
