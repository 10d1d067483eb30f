"""Rehearse a migration on a copy of its target, before anything touches the target.

A fresh backup of the target (into its store, or a throw-away one) is restored into a
new scratch database with the drill's checked restore (every table read back and
compared with the archive), the *same* migration request is applied there (same
source, rules, ID, approved digest), with the ordinary verification of what it
wrote, and the scratch database is dropped, whatever happened. The rehearsal passes
only when the copy was faithful, the plan on the copy has the digest the real apply
will be held to, and it applied and verified.

The real target is only read (by the backup). A rehearsal that could not run because
something did not answer raises :class:`TemporaryError`; every other failure is a
result that says why, with the reason the Migration ends with.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from controller.api.bootcheck import BootResult
from controller.api.environment import EnvironmentSpec
from controller.api.reasons import MigrationReason
from controller.backups.store import BackupStore, FilesystemStore
from controller.commands.backup import create_backup
from controller.commands.drill import restore_checked
from controller.commands.migrate import MigrationRequest, MigrationResult, migrate
from controller.db.connect import default_environment
from controller.db.database import Database
from controller.db.scratch import ScratchDatabase, scratch_database, scratch_server
from controller.engine.progress import NO_PROGRESS, Progress
from controller.errors import CheckFailed, FerryError, InvalidInput, TemporaryError
from controller.k8s.client import Cluster

PASSED = "Passed"
FAILED = "Failed"


@dataclass(frozen=True)
class RehearsalResult:
    """What ``status.rehearsal`` says; ``digest`` is the plan the copy applied."""

    outcome: str
    reason: str
    message: str
    seconds: float
    backup_id: str | None
    backup_kept: bool  # in the target's store (False: a throw-away store)
    scratch: str  # the scratch database's name (never a URL)
    digest: str | None
    leftovers: tuple[str, ...] = ()
    boot: BootResult | None = None  # the application booted against the copy, if asked

    @property
    def passed(self) -> bool:
        return self.outcome == PASSED

    def to_status(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "message": self.message,
            "durationSeconds": round(self.seconds, 3),
            "backupId": self.backup_id if self.backup_kept else None,
            "scratchDatabase": self.scratch,
            "planDigest": self.digest,
            "leftoversDropped": list(self.leftovers),
            "boot": self.boot.to_status() if self.boot is not None else None,
        }


def scratch_url(spec: EnvironmentSpec, namespace: str, cluster: Cluster | None) -> str | None:
    """The rehearsal scratch server an Environment declares, or None."""
    scratch = spec.rehearsal_scratch
    if scratch is None:
        return None
    if scratch.directory is not None:
        return f"sqlite:///{scratch.directory}"
    if scratch.url is not None:
        return scratch.url
    assert scratch.url_from is not None
    if cluster is None:
        raise InvalidInput("spec.rehearsal.scratch.urlFrom needs a cluster to read its Secret")
    return cluster.secret_value(namespace, scratch.url_from.name, scratch.url_from.key)


@contextmanager
def _store(store: BackupStore | None) -> Iterator[tuple[BackupStore, bool]]:
    if store is not None:
        yield store, True
        return
    with tempfile.TemporaryDirectory(prefix="ferry-rehearsal-") as tmp:
        yield FilesystemStore(Path(tmp)), False


def _on_copy(request: MigrationRequest, url: str) -> MigrationRequest:
    """The same migration, into the copy: no backup of it (nor of the target's files),
    no test faults, no phases."""
    return replace(request, target=url, store=None, files=None, fault=None, on_phase=None)


def _judge(result: MigrationResult) -> tuple[str, str]:
    if result.status in ("succeeded", "noop"):
        return MigrationReason.REHEARSAL_PASSED, "the plan applied to the copy and verified"
    # migrate() ends its message with the state of *its* target, the copy, dropped now
    why = result.message.rsplit("; ", 1)[0]
    return MigrationReason.REHEARSAL_FAILED, f"the plan failed on the copy: {why}"


def _apply_on_copy(request: MigrationRequest, url: str) -> tuple[str, str, str | None]:
    """(reason, message, the digest the copy planned)."""
    try:
        result = migrate(_on_copy(request, url))
    except TemporaryError:
        raise
    except CheckFailed as err:
        if err.reason == MigrationReason.PLAN_CHANGED:
            return MigrationReason.REHEARSAL_PLAN_DIFFERS, f"on the copy, {err.message}", None
        why = "; ".join(err.problems) or err.message
        return MigrationReason.REHEARSAL_FAILED, f"the plan was refused on the copy: {why}", None
    except FerryError as err:
        return MigrationReason.REHEARSAL_FAILED, f"the plan failed on the copy: {err.message}", None
    digest = result.plan.digest if result.plan is not None else result.digest or None
    reason, message = _judge(result)
    return reason, message, digest


def _copy_failure(
    store: BackupStore, backup_id: str, copy: ScratchDatabase, progress: Progress
) -> str | None:
    """Why the target's backup did not make a faithful copy in ``copy``, or None."""
    db = Database(copy.url)
    try:
        check = restore_checked(store, store.manifest(backup_id), db, progress)
    finally:
        db.dispose()
    if check.refused is not None:
        # told without the state the restore left: that is the copy's, dropped now
        return (
            f"the scratch database {copy.name} would not take the target's backup "
            f"{backup_id}: {check.refused}"
        )
    found = [f"{t.table}: {t.problem}" for t in check.tables if not t.ok] + list(check.problems)
    if not found:
        return None
    shown = "; ".join(found[:10])
    return f"the target's backup {backup_id} did not restore faithfully: {shown}"


def rehearse(
    request: MigrationRequest,
    scratch: str,
    *,
    store: BackupStore | None = None,
    progress: Progress = NO_PROGRESS,
    boot: Callable[[str], BootResult] | None = None,
) -> RehearsalResult:
    """Back up ``request.target``, restore it into a new database on the scratch server
    ``scratch``, apply ``request`` there, boot the application against it (``boot``,
    given the copy's URL, when the target declares a boot check), and drop it. Raises
    InvalidInput (nothing created) for a scratch server that does not fit the target."""
    server = scratch_server(scratch, request.target)
    started = time.monotonic()
    environment = request.environment or default_environment(request.target)
    # The scratch server first: one that refuses us costs no backup of the target.
    with scratch_database(server, request.target) as copy, _store(store) as (backups, kept):
        manifest, _ = create_backup(
            request.target, backups, environment=environment, reason="rehearsal", progress=progress
        )
        reason, message, digest = _on(copy, request, backups, manifest.id, progress)
        booted = None
        if boot is not None and reason == MigrationReason.REHEARSAL_PASSED:
            booted = boot(copy.url)
            reason, message = _booted(booted, message)
    return RehearsalResult(
        PASSED if reason == MigrationReason.REHEARSAL_PASSED else FAILED,
        reason,
        message,
        time.monotonic() - started,
        manifest.id,
        kept,
        copy.name,
        digest,
        copy.leftovers,
        booted,
    )


def _booted(boot: BootResult, applied: str) -> tuple[str, str]:
    if boot.healthy:
        return MigrationReason.REHEARSAL_PASSED, f"{applied}; the application booted on it"
    why = f"the application did not boot against the copy: {boot.message}"
    return MigrationReason.REHEARSAL_BOOT_FAILED, why


def _on(
    copy: ScratchDatabase,
    request: MigrationRequest,
    backups: BackupStore,
    backup_id: str,
    progress: Progress,
) -> tuple[str, str, str | None]:
    failure = _copy_failure(backups, backup_id, copy, progress)
    if failure is not None:
        return MigrationReason.REHEARSAL_COPY_FAILED, failure, None
    return _apply_on_copy(request, copy.url)
