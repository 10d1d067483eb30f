"""Reconcile a Migration: checks → plan → approval → backup → apply → verify.

A Migration is a one-shot. Each call moves it as far as it can and says when to look
again: missing or unready environments and a busy target are waited for; invalid specs,
refused promotions and failed checks end it. The ledger ID is derived from the object's
UID, so an operator restarted at any step re-runs the same migration and the ledger
makes that apply exactly once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from controller.api.execution import effective
from controller.api.ids import MIGRATION_ID_MAX
from controller.api.migration import MigrationPhase, MigrationSpec, Rehearsal, parse_migration
from controller.api.reasons import (
    ApplicationReason,
    CommonReason,
    ConditionType,
    EventType,
    MigrationReason,
)
from controller.commands import environments
from controller.commands.ledger_lookup import ledger_result
from controller.commands.merging import source_identity
from controller.commands.migrate import MigrationRequest, MigrationResult, migrate, plan_only
from controller.commands.planning import PlanOptions
from controller.commands.rollback import rollback
from controller.commands.sources import git_spec
from controller.engine.plan import Plan, stale_approval
from controller.engine.profiles import Profile
from controller.engine.running_application import RunningApplication, running_application
from controller.errors import CheckFailed, FerryError, InvalidInput, TemporaryError
from controller.flows.application import (
    Holder,
    Lifecycle,
    StepPhases,
    hold_deletion,
    leave_running,
    result_of,
    result_record,
)
from controller.flows.environment import new_baseline
from controller.flows.migration_job import (
    GitPin,
    MigrationJob,
    follow_migration_job,
    start_migration_job,
)
from controller.flows.outcome import Event, Outcome
from controller.flows.progress import StatusProgress, with_progress
from controller.flows.queue import earlier_writer, is_ready
from controller.flows.rehearsal import already_rehearsed, run_rehearsal
from controller.flows.status import StatusPatch, timestamp
from controller.gitsource.repository import checkout, credentials_from_secret, redact_url
from controller.k8s.client import Cluster
from controller.k8s.jobs import Jobs, JobSettings
from controller.k8s.workloads import Health, Workloads

APPROVED_BY = "ferry.dev/approved-by"  # stamped by the chart's MutatingAdmissionPolicy
PLAN_TABLES_IN_STATUS = 200
STEPS = StepPhases(
    MigrationPhase.QUIESCING, MigrationPhase.RESUMING, MigrationPhase.CHECKING_HEALTH
)
ROLLED_BACK = "rolled-back"  # a ledger row's result once a rollback committed


def ledger_id(meta: dict[str, Any]) -> str:
    """``namespace.name.uid8``; a name too long for the ledger keeps its start and a
    digest of the whole, so every Migration still has its own valid ID."""
    uid = str(meta.get("uid", ""))[:8]
    name = f"{meta.get('namespace')}.{meta.get('name')}"
    if len(name) + len(uid) + 1 > MIGRATION_ID_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        name = f"{name[: MIGRATION_ID_MAX - len(uid) - len(digest) - 2]}{digest}"
    return f"{name}.{uid}"


def plan_status(plan: Plan) -> dict[str, Any]:
    changed = [t.to_dict() for t in plan.tables if t.changes_anything]
    return {
        "digest": plan.digest,
        "totals": plan.totals,
        "tables": changed[:PLAN_TABLES_IN_STATUS],
        "truncated": len(changed) > PLAN_TABLES_IN_STATUS,
        "warnings": list(plan.warnings[:20]),
        "notes": list(plan.notes),
    }


class _Flow:
    def __init__(
        self,
        body: dict[str, Any],
        cluster: Cluster,
        now: dt.datetime,
        on_phase: Callable[[str], None],
        fault: Callable[[str], None] | None,
        workloads: Workloads | None = None,
        lifecycle_options: dict[str, Any] | None = None,
        jobs: Jobs | None = None,
        job_settings: JobSettings | None = None,
    ) -> None:
        self.body = body
        self.jobs = jobs  # the Kubernetes Jobs API, for spec.execution.mode Job
        self.job_settings = job_settings or JobSettings.from_environ()
        self.workloads = workloads
        self.lifecycle_options = lifecycle_options or {}
        self.life: Lifecycle | None = None
        self.cluster = cluster
        self.now = now
        self.on_phase = on_phase
        self.fault = fault
        self.meta = body.get("metadata") or {}
        self.namespace = str(self.meta.get("namespace"))
        self.name = str(self.meta.get("name"))
        self.status = body.get("status") or {}
        self.patch = StatusPatch(body, now).set(
            startTime=self.status.get("startTime") or timestamp(now)
        )
        self.events: list[Event] = []
        self.progress = StatusProgress(
            cluster, "Migration", self.namespace, str(self.meta.get("name"))
        )

    def event(self, type_: EventType, reason: str, message: str) -> None:
        if self.status.get("phase") != reason:  # one event per transition, not per retry
            self.events.append(Event(type_, reason, message))

    def wait(self, phase: str, reason: str, message: str, delay: float) -> Outcome:
        self.patch.progressing(reason, message).set(phase=phase, message=message)
        if self.status.get("phase") != phase:
            self.events.append(Event(EventType.NORMAL, reason, message))
        return Outcome(self.patch.build(), tuple(self.events), delay)

    def finish(self, phase: str, reason: str, message: str, **fields: Any) -> Outcome:
        self.patch.set(phase=phase, message=message, completionTime=timestamp(self.now), **fields)
        if phase == MigrationPhase.SUCCEEDED:
            self.patch.ready(reason, message).condition(
                ConditionType.APPLIED, True, reason, message
            )
            self.events.append(Event(EventType.NORMAL, reason, message))
        else:
            self.patch.stalled(reason, message)
            self.patch.condition(ConditionType.APPLIED, False, reason, message)
            self.events.append(Event(EventType.WARNING, reason, message))
        return Outcome(self.patch.build(), tuple(self.events))

    def run(self) -> Outcome:
        """Every way out of one call leaves the application running: only a crash can
        leave it quiesced, and the next call (or the finalizer) resumes it."""
        return leave_running(
            Holder(self.body, self.workloads, self.patch),
            lambda: self.life,
            self.attempt,
            lambda err: self.wait(MigrationPhase.RESUMING, err.reason, err.message, 5.0),
        )

    def attempt(self) -> Outcome:
        try:
            spec = parse_migration(self.body)
        except InvalidInput as err:
            return self.finish(MigrationPhase.FAILED, CommonReason.INVALID_SPEC, err.message)
        try:
            return self.promote(spec)
        except CheckFailed as err:
            if err.reason == MigrationReason.PLAN_CHANGED:
                return self.wait(MigrationPhase.PLANNING, err.reason, err.message, 1.0)
            return self.finish(MigrationPhase.FAILED, err.reason, "; ".join(err.problems))
        except InvalidInput as err:
            if err.reason == CommonReason.ENVIRONMENT_NOT_FOUND:
                return self.wait(MigrationPhase.PENDING, err.reason, err.message, 5.0)
            own = err.reason != InvalidInput.reason  # GitRevisionNotFound, ForeignDatabase …
            reason = err.reason if own else MigrationReason.INVALID_INPUT
            return self.finish(MigrationPhase.FAILED, reason, err.message)
        except TemporaryError as err:
            phase = self.status.get("phase") or MigrationPhase.PENDING
            return self.wait(phase, err.reason, err.message, err.delay)

    def promote(self, spec: MigrationSpec) -> Outcome:
        target = environments.lookup(self.cluster, self.namespace, spec.target)
        source_env = None
        if spec.source.environment:
            source_env = environments.lookup(self.cluster, self.namespace, spec.source.environment)
        work = self.job_work(spec, target, source_env)
        followed = follow_migration_job(self, work) if work is not None else None
        if followed is not None:
            return followed
        waiting = self.gate(target, source_env)
        if waiting is not None:
            return waiting
        self.life = self.lifecycle(target)
        if self.life is not None and self.life.state.get("result"):
            return self.after_apply(result_of(self.life.state["result"]), target, spec)
        self.on_phase(MigrationPhase.PLANNING)
        options = plan_options(spec, target)
        with self.source(spec, source_env) as (source, source_status):
            self.patch.set(source=source_status)
            if self.plans_once(spec, target, work):
                result = self.apply_once(spec, source, target, options)
                if result is not None:
                    return self.conclude(result, target, skip=spec.skip_backup)
            plan = plan_only(source, target.url, options, self.progress).plan
            refused = self.show_plan(target, plan)
            if refused is not None:
                return refused
            # Quiesced by an earlier attempt: approved before that, and the ledger and the
            # approved digest (below) decide whether anything is applied now.
            quiesced = self.life is not None and self.life.quiesced
            # Applied before a crash: the target changed, so this plan has another digest;
            # the ledger, not a second approval, says what happened (migrate() replays it).
            applied = not spec.approval.approves(plan.digest) and self.applied(target)
            if not quiesced and not applied and not spec.approval.approves(plan.digest):
                return self.await_approval(spec, plan.digest)
            request = self.request(spec, source, target, options, self.approved(spec, applied))
            rehearse = spec.rehearsal is Rehearsal.REQUIRED and plan.changes_anything
            if rehearse and not quiesced and not applied:
                rehearsed = self.rehearse(request, target, plan.digest)
                if isinstance(rehearsed, Outcome):
                    return rehearsed
                request = replace(request, approved_digest=rehearsed)
            if work is not None:
                work = pinned(work, spec, source_status)
                return start_migration_job(self, work, request.approved_digest or plan.digest)
            self.quiesce()
            result = migrate(request)
        if self.life is not None:
            return self.after_apply(result, target, spec)
        return self.conclude(result, target, skip=spec.skip_backup)

    def approved(self, spec: MigrationSpec, applied: bool = False) -> str | None:
        """The digest the apply is held to (None: no approval needed, or the ledger says
        this Migration was applied already), recorded in status."""
        approved = None if applied else approved_digest(spec)
        if approved:
            self.patch.set(approval=approval_status(self.meta, approved))
        return approved

    def job_work(
        self,
        spec: MigrationSpec,
        target: environments.ResolvedEnvironment,
        source: environments.ResolvedEnvironment | None,
    ) -> MigrationJob | None:
        """In Job mode (``spec.execution`` over the target's), what its Job applies."""
        execution = effective(spec.execution, target.spec.execution)
        if not execution.is_job:
            return None
        return MigrationJob(spec, target, source, execution, ledger_id(self.meta))

    def quiesce(self) -> None:
        """Stop the target's application (``spec.application``) before the apply."""
        if self.life is not None:
            hold_deletion(self.cluster, "Migration", self.body)
            self.life.quiesce()

    def request(
        self,
        spec: MigrationSpec,
        source: str,
        target: environments.ResolvedEnvironment,
        options: PlanOptions,
        approved: str | None,
    ) -> MigrationRequest:
        return MigrationRequest(
            source,
            target.url,
            options,
            migration_id=ledger_id(self.meta),
            approved_digest=approved,
            store=None if spec.skip_backup else target.store,
            environment=target.name,
            files=target.files,  # the pre-migration backup holds the files too
            quiesced=self.life is not None,  # quiesced before migrate() backs up
            on_phase=self.on_phase,
            on_plan=lambda plan: self.show_plan(target, plan),  # the one applied, shown
            progress=self.progress,
            fault=self.fault,
        )

    def rehearse(
        self, request: MigrationRequest, target: environments.ResolvedEnvironment, digest: str
    ) -> Outcome | str:
        """Rehearse the approved plan on a scratch copy (once per plan): the digest the
        real apply is held to, or the Outcome that ends a failed rehearsal."""
        if already_rehearsed(self.status.get("rehearsal"), digest):
            return digest
        # the copy must plan exactly this digest (approved, or needing no approval)
        held = replace(request, approved_digest=request.approved_digest or digest, on_plan=None)
        result = run_rehearsal(held, target, self.cluster, self.on_phase, self.workloads, self.body)
        self.patch.set(rehearsal=result.to_status())
        if not result.passed:
            return self.finish(MigrationPhase.FAILED, result.reason, result.message)
        message = f"rehearsed on a copy of {target.name} in {result.seconds:.1f}s: passed"
        self.events.append(Event(EventType.NORMAL, MigrationReason.REHEARSAL_PASSED, message))
        return result.digest or digest

    def applied(self, target: environments.ResolvedEnvironment) -> bool:
        """Whether the target's ledger records this Migration as applied."""
        return ledger_result(target.url, ledger_id(self.meta)) == "succeeded"

    def plans_once(
        self,
        spec: MigrationSpec,
        target: environments.ResolvedEnvironment,
        work: MigrationJob | None,
    ) -> bool:
        """Whether the plan made under the target's write lock can be the only one: no
        decision waits for a plan shown first (an approval to ask for, a rehearsal, a
        Job to start, an application to stop, a running one to refuse)."""
        asks_approval = spec.approval.required and not spec.approval.plan_digest
        return not (
            asks_approval
            or work is not None
            or self.life is not None
            or spec.rehearsal is Rehearsal.REQUIRED
            or running_verdict(target).refused
        )

    def apply_once(
        self,
        spec: MigrationSpec,
        source: str,
        target: environments.ResolvedEnvironment,
        options: PlanOptions,
    ) -> MigrationResult | None:
        """Plan, back up and apply in one pass under the target's write lock, the plan
        shown as soon as it is made. None when the approved digest no longer matches:
        nothing was changed, and the caller plans again to say which digest would."""
        approved = approved_digest(spec)
        request = self.request(spec, source, target, options, approved)
        try:
            result = migrate(request)
        except CheckFailed as err:
            if err.reason != MigrationReason.PLAN_CHANGED:
                raise
            return None
        if approved and result.plan is not None:  # the plan had the approved digest
            self.patch.set(approval=approval_status(self.meta, approved))
        return result

    # --- the target's application (spec.application) --------------------------------

    def show_plan(self, target: environments.ResolvedEnvironment, plan: Plan) -> Outcome | None:
        """The plan in status, with its note on the target's application; a refusal
        ends the migration."""
        verdict = running_verdict(target)
        shown = plan_status(plan)
        if verdict.note is not None:
            shown["notes"].append(verdict.note)
        self.patch.set(plan=shown, planDigest=plan.digest)
        if not verdict.refused or verdict.note is None:
            return None
        return self.finish(
            MigrationPhase.FAILED, ApplicationReason.RUNNING_APPLICATION, verdict.note
        )

    def lifecycle(self, target: environments.ResolvedEnvironment) -> Lifecycle | None:
        app = target.spec.application
        if app is None:
            return None
        if self.workloads is None:
            raise InvalidInput(f"Environment {target.name} declares an application; no client")

        def write() -> None:
            self.cluster.patch_status("Migration", self.namespace, self.name, self.patch.build())

        previous = self.status.get("application")
        return Lifecycle(
            app,
            self.workloads,
            self.namespace,
            self.patch,
            write,
            previous,
            STEPS,
            **self.lifecycle_options,
        )

    def after_apply(
        self, result: MigrationResult, target: environments.ResolvedEnvironment, spec: MigrationSpec
    ) -> Outcome:
        """Resume, then wait until healthy; roll back an applied migration that is not."""
        assert self.life is not None
        self.life.remember(result=result_record(result))
        if self.life.state.get("rollingBack"):
            health = Health(False, str(self.life.state.get("health")))
            return self.roll_back_unhealthy(result, target, spec, health)
        self.life.resume()
        if result.status not in ("succeeded", "noop"):
            return self.conclude(result, target, skip=spec.skip_backup)
        health = self.life.wait_healthy()
        if health.ok:
            return self.conclude(result, target, skip=spec.skip_backup)
        return self.roll_back_unhealthy(result, target, spec, health)

    def roll_back_unhealthy(
        self,
        result: MigrationResult,
        target: environments.ResolvedEnvironment,
        spec: MigrationSpec,
        health: Health,
    ) -> Outcome:
        """Quiesce again, undo exactly what the migration wrote (rows written while the
        application served are kept), resume, and end RolledBack."""
        assert self.life is not None
        fields = {"backup": backup_status(result, target, skip=spec.skip_backup)}
        why = (
            f"the application of {target.name} was unhealthy after the migration ({health.detail})"
        )
        if not result.backup_id or target.store is None:
            warning = f"{why}; without a pre-migration backup it was not rolled back"
            return self.succeeded_with_warnings(
                f"applied to {target.name}", (warning,), migrationId=result.id, **fields
            )
        self.life.remember(rollingBack=True)
        self.life.quiesce(MigrationPhase.ROLLING_BACK)
        try:
            if ledger_result(target.url, result.id) != ROLLED_BACK:
                rollback(target.store, result.id, target.url, progress=self.progress)
        except CheckFailed as err:  # edited since (by the app while it served): kept
            self.life.resume()
            refused = f"{why}; the rollback was refused: {'; '.join(err.problems[:5])}"
            return self.succeeded_with_warnings(
                f"applied to {target.name}", (refused,), migrationId=result.id, **fields
            )
        self.life.resume()
        self.record_baseline(None, target)
        return self.finish(
            MigrationPhase.ROLLED_BACK,
            ApplicationReason.APPLICATION_UNHEALTHY,
            f"{why}: quiesced it again, rolled the migration back and resumed it",
            migrationId=result.id,
            **fields,
        )

    def gate(
        self,
        target: environments.ResolvedEnvironment,
        source: environments.ResolvedEnvironment | None,
    ) -> Outcome | None:
        """Why the migration may not start yet (or ever), or None when it may: the target
        refuses this source, an Environment is not Ready, an earlier writer goes first."""
        allowed = target.spec.accepts_from
        if source is not None and allowed and source.name not in allowed:
            return self.finish(
                MigrationPhase.FAILED,
                MigrationReason.PROMOTION_REFUSED,
                f"Environment {target.name} accepts promotions only from "
                f"{', '.join(allowed)}, not from {source.name}",
            )
        for env in (target, source):
            if env is not None and not is_ready(self.cluster, self.namespace, env.name):
                return self.wait(
                    MigrationPhase.PENDING,
                    CommonReason.ENVIRONMENT_NOT_READY,
                    f"waiting for Environment {env.name} to be Ready",
                    3.0,
                )
        blocker = earlier_writer(self.cluster, self.body, target.name)
        if blocker:
            return self.wait(
                MigrationPhase.QUEUED,
                CommonReason.WAITING_FOR_TURN,
                f"{blocker} writes to {target.name} first",
                2.0,
            )
        return None

    def await_approval(self, spec: MigrationSpec, digest: str) -> Outcome:
        """Stop at AwaitingApproval, saying which digest approves the plan."""
        message = (
            f"approve by setting spec.approval.planDigest to {digest}"
            if not spec.approval.plan_digest
            else stale_approval(spec.approval.plan_digest, digest)
        )
        reason = MigrationReason.AWAITING_APPROVAL
        self.event(EventType.NORMAL, reason, message)
        self.patch.progressing(reason, message).set(
            phase=MigrationPhase.AWAITING_APPROVAL, message=message
        )
        # Done until the spec changes: the approval arrives as a spec update, and a
        # retry pending here would hold that update back. A plan that changed by
        # then is caught at apply time (the approved digest must still match).
        return Outcome(self.patch.build(), tuple(self.events))

    @contextmanager
    def source(
        self, spec: MigrationSpec, env: environments.ResolvedEnvironment | None
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        if env is not None:
            yield env.url, {"environment": env.name}
            return
        git_source = spec.source.git
        assert git_source is not None
        credentials = None
        if git_source.secret_name:
            data = self.cluster.secret_data(self.namespace, git_source.secret_name)
            credentials = credentials_from_secret(data)
        with checkout(
            git_source.repository, git_source.revision, git_source.path, credentials=credentials
        ) as out:
            yield (
                str(out.directory),
                {
                    "repository": redact_url(git_source.repository),  # no token in status
                    "revision": git_source.revision or "HEAD",
                    "commit": out.commit,
                },
            )

    def conclude(
        self, result: MigrationResult, target: environments.ResolvedEnvironment, *, skip: bool
    ) -> Outcome:
        fields = {"backup": backup_status(result, target, skip=skip), "migrationId": result.id}
        if result.status in ("succeeded", "noop"):
            self.record_baseline(result, target)
            message = (
                f"applied to {target.name}"
                if result.status == "succeeded"
                else f"applied to {target.name} before a restart, as its ledger records"
                if result.plan is None and result.message.startswith("already applied")
                else f"{target.name} already matched: {result.message}"
            )
            if result.warnings:
                return self.succeeded_with_warnings(message, result.warnings, **fields)
            return self.finish(MigrationPhase.SUCCEEDED, MigrationReason.APPLIED, message, **fields)
        if result.status == "rolled-back":
            return self.finish(
                MigrationPhase.ROLLED_BACK, CommonReason.ROLLED_BACK, result.message, **fields
            )
        return self.finish(
            MigrationPhase.FAILED, MigrationReason.APPLY_FAILED, result.message, **fields
        )

    def record_baseline(
        self, result: MigrationResult | None, target: environments.ResolvedEnvironment
    ) -> None:
        """The target's new configuration fingerprint, so drift is measured from here
        (``result`` None: the migration was rolled back, it is not the last one)."""
        try:
            fingerprint = environments.fingerprint_of(target).value
            last = None
            if result is not None:
                last = {
                    "name": self.meta.get("name"),
                    "id": result.id,
                    "completionTime": timestamp(self.now),
                }
            self.cluster.patch_status(
                "Environment", self.namespace, target.name, new_baseline(fingerprint, last)
            )
        except FerryError:
            pass  # the next Environment check records the baseline instead

    def succeeded_with_warnings(
        self, message: str, warnings: tuple[str, ...], **fields: Any
    ) -> Outcome:
        """The migration committed, then a later step failed (storing the post-migration
        state, say): that is a success, said with a warning, never Failed or RolledBack,
        because the target holds the new configuration and the ledger says so."""
        text = "; ".join(warnings)
        reason = MigrationReason.APPLIED_WITH_WARNINGS
        outcome = self.finish(
            MigrationPhase.SUCCEEDED,
            reason,
            f"{message}, with warnings after the commit: {text}",
            warnings=list(warnings),
            **fields,
        )
        self.patch.condition(ConditionType.WARNINGS, True, reason, text)
        events = (*outcome.events, *(Event(EventType.WARNING, reason, w) for w in warnings))
        return Outcome(self.patch.build(), events)


def approved_digest(spec: MigrationSpec) -> str | None:
    """The digest an approval holds the apply to (None: no approval is required)."""
    return spec.approval.plan_digest if spec.approval.required else None


def running_verdict(target: environments.ResolvedEnvironment) -> RunningApplication:
    """What the plan says about the target's running application, and whether it is
    refused."""
    app = target.spec.application
    return running_application(
        target.profile,
        target.name,
        declared=app.workload if app is not None else None,
        allowed=target.spec.allow_running_application,
    )


def plan_options(spec: MigrationSpec, target: environments.ResolvedEnvironment) -> PlanOptions:
    """How the Migration is planned, in process and (the same) in its Job."""
    variables = None
    if target.profile is not Profile.NOCOBASE and target.spec.variables:
        variables = frozenset(v.name for v in target.spec.variables)
    git = spec.source.git
    return PlanOptions(
        rules=spec.rules,
        profile=target.profile,
        variables=variables,
        base_store=target.store,  # a three-way merge's base, planned as it is applied
        # A Git source is one source whatever its revision or checkout directory: the
        # identity ``ferry migrate --source git+…`` gives it, in a Job too.
        source_id=source_identity(git_spec(git.repository, None, git.path)) if git else None,
    )


def pinned(work: MigrationJob, spec: MigrationSpec, source: dict[str, Any]) -> MigrationJob:
    """``work`` with its Git source pinned to the commit just checked out and planned."""
    git = spec.source.git
    if git is None:
        return work
    pin = GitPin(git.repository, str(source["commit"]), git.path, git.secret_name)
    return replace(work, git=pin)


def approval_status(meta: dict[str, Any], digest: str) -> dict[str, Any]:
    """``status.approval``: the digest that was approved and, where the chart's admission
    policies run, who set it (the API server stamps ``ferry.dev/approved-by``; without
    those policies the annotation is anyone's claim, and the audit log is the record)."""
    annotations = meta.get("annotations") or {}
    return {"planDigest": digest, "approvedBy": annotations.get(APPROVED_BY) or None}


def backup_status(
    result: MigrationResult, target: environments.ResolvedEnvironment, *, skip: bool
) -> dict[str, Any]:
    """``status.backup``: the pre-migration backup's ID, or why there is none."""
    if result.backup_id:
        return {"id": result.backup_id}
    if skip:
        reason = "spec.backup.skip"
    elif target.store is None:
        reason = f"Environment {target.name} has no backups.store"
    elif result.status == "noop":
        reason = f"nothing to apply, so nothing to back up ({result.message})"
    else:
        reason = "the migration stopped before its backup was taken"
    return {"skipped": reason}


def reconcile_migration(
    body: dict[str, Any],
    cluster: Cluster,
    *,
    now: dt.datetime,
    on_phase: Callable[[str], None],
    fault: Callable[[str], None] | None = None,
    workloads: Workloads | None = None,
    lifecycle_options: dict[str, Any] | None = None,
    jobs: Jobs | None = None,
    settings: JobSettings | None = None,
) -> Outcome:
    """``fault``: a test hook passed to the engine (see ``handlers/failpoints.py``);
    ``workloads``: the target application's scale and health (``spec.application``);
    ``lifecycle_options``: its ``sleep`` and ``clock``, for tests. In Job mode
    (``spec.execution``) ``jobs`` runs the apply as a Kubernetes Job
    (``flows.migration_job``)."""
    if MigrationPhase.is_finished((body.get("status") or {}).get("phase")):
        return Outcome({})
    flow = _Flow(body, cluster, now, on_phase, fault, workloads, lifecycle_options, jobs, settings)
    return with_progress(flow.run(), flow.progress)
