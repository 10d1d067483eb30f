"""The target's application around a write: quiesce, resume, wait until healthy.

NocoBase caches its configuration in memory, so a Migration or Restore into an
Environment that declares ``spec.application`` stops the workload first (scale to zero,
then wait until no pod of its selector is left), writes, restores the replica count it
had, and waits until the health check answers 2xx.

Crash safety rests on one rule: the replica count is recorded in the object's status
(``status.application``) *before* the workload is scaled to zero, and ``quiesced``
turns false only after the count was restored. A restarted operator reads that record
and resumes from it, so the workload never stays at zero because the operator died; the
Migration's finalizer does the same when the object is deleted while quiesced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.api.environment_application import ApplicationSpec, WorkloadKind
from controller.api.reasons import ApplicationReason, ConditionType
from controller.commands.migrate import MigrationResult
from controller.errors import CheckFailed, FerryError, TemporaryError
from controller.flows.outcome import Outcome
from controller.flows.status import StatusPatch
from controller.k8s.client import Cluster
from controller.k8s.workloads import REQUEST_TIMEOUT, Health, Workloads

POLL = 1.0  # seconds between two looks at the pods or the health check
# Kopf's own finalizer (``handlers/runtime.py`` configures Kopf with this name): the
# flow adds it before quiescing, Kopf keeps it while ``holds_application`` and removes
# it once the deletion handler has resumed the workload, or once it no longer holds it.
FINALIZER = "ferry.dev/finalizer"


@dataclass(frozen=True)
class StepPhases:
    """The owning kind's phase words for the steps (Migration and Restore share them)."""

    quiescing: str
    resuming: str
    checking_health: str


class Lifecycle:
    """Quiesce, resume and health steps of one object; each writes its status at once.

    ``write`` patches the object's status with ``patch`` as it stands (phase,
    conditions, ``application``); the owning flow's final patch carries the same fields.
    """

    def __init__(
        self,
        app: ApplicationSpec,
        workloads: Workloads,
        namespace: str,
        patch: StatusPatch,
        write: Callable[[], None],
        previous: Mapping[str, Any] | None,
        phases: StepPhases,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.app, self.workloads, self.namespace = app, workloads, namespace
        self.patch, self.write, self.phases = patch, write, phases
        self.sleep, self.clock = sleep, clock
        self.state: dict[str, Any] = dict(previous or {})
        self.state.setdefault("workload", app.workload)
        # The write goes on outside this call (a Kubernetes Job): the workload stays at
        # zero when the call returns, and a later call resumes it (``leave_running``).
        self.kept = False

    @property
    def quiesced(self) -> bool:
        """Whether Ferry holds the workload at zero (recorded before it scaled)."""
        return bool(self.state.get("quiesced"))

    def show(self, phase: str, reason: str, message: str) -> None:
        self.patch.progressing(reason, message).set(
            phase=phase, message=message, application=dict(self.state)
        )
        self.write()

    def remember(self, **fields: Any) -> None:
        """Record ``fields`` in ``status.application`` now (a restart reads them)."""
        self.state.update(fields)
        self.patch.set(application=dict(self.state))
        self.write()

    def quiesce(self, phase: str | None = None) -> None:
        """Scale to zero and wait until no pod is left; idempotent. The replica count is
        recorded first; a count recorded by an earlier attempt is kept (the workload
        may already be at zero because of it)."""
        app = self.app
        scale = self.workloads.scale(app.kind.value, self.namespace, app.name)
        if scale is None:
            raise TemporaryError(
                f"{app.workload} does not exist in {self.namespace}",
                delay=10.0,
                reason=ApplicationReason.WORKLOAD_NOT_FOUND,
            )
        message = f"scaling {app.workload} to zero (it had {scale.replicas} replicas)"
        if not self.quiesced:
            self.state.update(replicas=scale.replicas, quiesced=True)
            self.patch.condition(
                ConditionType.APPLICATION_QUIESCED, True, ApplicationReason.QUIESCING, message
            )
        else:
            message = f"scaling {app.workload} to zero (recorded {self.state['replicas']})"
        self.show(phase or self.phases.quiescing, ApplicationReason.QUIESCING, message)
        self.workloads.set_replicas(app.kind.value, self.namespace, app.name, 0)
        self._wait_for_no_pods(scale.selector)
        done = f"{app.workload} is at zero replicas; {self.state['replicas']} recorded"
        self.patch.condition(
            ConditionType.APPLICATION_QUIESCED, True, ApplicationReason.QUIESCED, done
        )
        self.write()

    def _wait_for_no_pods(self, selector: str) -> None:
        deadline = self.clock() + self.app.quiesce_timeout_seconds
        while True:
            left = self.workloads.pods(self.namespace, selector)
            if not left:
                return
            if self.clock() >= deadline:
                shown = ", ".join(sorted(left)[:5])
                self.resume()
                raise CheckFailed(
                    f"{len(left)} pod(s) of {self.app.workload} were left after "
                    f"{self.app.quiesce_timeout_seconds} s ({shown}); resumed, nothing written",
                    reason=ApplicationReason.QUIESCE_TIMED_OUT,
                )
            self.sleep(POLL)

    def hold(self, phase: str) -> None:
        """Keep the workload at zero while a Job writes: something that scaled it up
        meanwhile (a GitOps tool's self-heal, a person) is scaled down again."""
        scale = self.workloads.scale(self.app.kind.value, self.namespace, self.app.name)
        if scale is not None and scale.replicas != 0:
            self.quiesce(phase)

    def resume(self) -> None:
        """Restore the recorded replica count; idempotent, a no-op unless quiesced."""
        if not self.quiesced:
            return
        app, replicas = self.app, int(self.state.get("replicas") or 0)
        message = f"scaling {app.workload} back to {replicas} replicas"
        self.show(self.phases.resuming, ApplicationReason.RESUMING, message)
        # A workload deleted meanwhile has nothing to resume.
        self.workloads.set_replicas(app.kind.value, self.namespace, app.name, replicas)
        self.patch.condition(
            ConditionType.APPLICATION_QUIESCED,
            False,
            ApplicationReason.RESUMED,
            f"{app.workload} is back at {replicas} replicas",
        )
        self.remember(quiesced=False)

    def wait_healthy(self) -> Health:
        """Ask the health URL until it answers 2xx or its timeout passes."""
        check = self.app.health
        if check is None:
            return Health(True, "no health check declared")
        self.show(
            self.phases.checking_health,
            ApplicationReason.CHECKING_HEALTH,
            f"waiting up to {check.timeout_seconds} s for {check.url} to answer 2xx",
        )
        deadline = self.clock() + check.timeout_seconds
        while True:
            remaining = max(0.1, deadline - self.clock())
            health = self.workloads.health(check.url, min(REQUEST_TIMEOUT, remaining))
            if health.ok or self.clock() >= deadline:
                break
            self.sleep(POLL)
        reason = ApplicationReason.HEALTHY if health.ok else ApplicationReason.APPLICATION_UNHEALTHY
        said = "answered" if health.ok else f"did not answer 2xx within {check.timeout_seconds} s:"
        self.patch.condition(
            ConditionType.APPLICATION_HEALTHY,
            health.ok,
            reason,
            f"{check.url} {said} {health.detail}",
        )
        self.remember(health=health.detail)
        return health


@dataclass(frozen=True)
class Holder:
    """The object a flow works on, for :func:`leave_running`."""

    body: Mapping[str, Any]  # as the call found it: its status.application
    workloads: Workloads | None
    patch: StatusPatch  # the flow's status patch


def leave_running(
    holder: Holder,
    life: Callable[[], Lifecycle | None],
    attempt: Callable[[], Outcome],
    waiting: Callable[[FerryError], Outcome],
) -> Outcome:
    """``attempt()``, and every way out of it leaves the application running: only a
    crash can leave it quiesced, and the next call (or the finalizer) resumes it. A
    workload an earlier, crashed call left at zero is resumed from the record even when
    this call never got as far as its own quiesce (the Environment unready or gone, its
    spec.application removed). A resume the API refuses becomes ``waiting(err)``: the
    record still says quiesced, so the next call resumes it. A lifecycle ``kept`` (its
    write runs on in a Job) stays quiesced until a call that finds the Job ended."""
    try:
        outcome = attempt()
    except BaseException:
        held = life()
        if held is not None and held.quiesced and not held.kept:
            held.resume()
        elif held is None and holder.workloads is not None:
            release(holder.body, holder.workloads)
        raise
    held = life()
    if held is None:
        return _release_orphan(holder, outcome, waiting)
    if not held.quiesced or held.kept:
        return outcome
    try:
        held.resume()
    except FerryError as err:
        return waiting(err)
    return with_application(outcome, held.patch, held.state)


def _release_orphan(
    holder: Holder, outcome: Outcome, waiting: Callable[[FerryError], Outcome]
) -> Outcome:
    if holder.workloads is None or not holds_application(holder.body):
        return outcome
    try:
        release(holder.body, holder.workloads)
    except FerryError as err:
        return waiting(err)
    state = {**((holder.body.get("status") or {}).get("application") or {}), "quiesced": False}
    holder.patch.condition(
        ConditionType.APPLICATION_QUIESCED,
        False,
        ApplicationReason.RESUMED,
        f"{state.get('workload')} is back at {state.get('replicas')} replicas",
    )
    return with_application(outcome, holder.patch, state)


def with_application(outcome: Outcome, patch: StatusPatch, state: dict[str, Any]) -> Outcome:
    """``outcome`` with the application's record and conditions as they are now (after a
    late resume), its own phase and Ready/Reconciling/Stalled left as they were."""
    own = (ConditionType.APPLICATION_QUIESCED, ConditionType.APPLICATION_HEALTHY)
    latest = {c["type"]: c for c in patch.build()["conditions"] if c["type"] in own}
    kept = [c for c in outcome.status.get("conditions", []) if c["type"] not in latest]
    status = {**outcome.status, "application": dict(state), "conditions": kept}
    status["conditions"] += list(latest.values())
    return Outcome(status, outcome.events, outcome.retry_after)


def hold_deletion(cluster: Cluster, kind: str, body: Mapping[str, Any]) -> None:
    """Kopf's finalizer on the object, before its workload is scaled to zero: deleted
    while it holds the application at zero, the object resumes it first (``release``)."""
    meta = body.get("metadata") or {}
    namespace, name = str(meta.get("namespace")), str(meta.get("name"))
    current = cluster.get(kind, namespace, name) or body
    finalizers = list((current.get("metadata") or {}).get("finalizers") or [])
    if FINALIZER not in finalizers:
        cluster.patch(kind, namespace, name, {"metadata": {"finalizers": [*finalizers, FINALIZER]}})


def holds_application(body: Mapping[str, Any]) -> bool:
    """Whether the object's status says Ferry holds its application at zero."""
    state = (body.get("status") or {}).get("application") or {}
    return bool(state.get("quiesced"))


def keeps_finalizer(body: Mapping[str, Any], finished: Callable[[object], bool]) -> bool:
    """Whether Kopf keeps its finalizer on the object: from the moment its flow took
    charge of the application (``hold_deletion``, then ``status.application``) until
    the object's phase is final, and whenever it holds the application at zero.

    Stable for the whole run on purpose, not only while quiesced: Kopf (1.45) adding
    or removing its finalizer on an object that also carries its touch-dummy annotation
    (left by a handler retried after a delay) patches twice, conflicts with itself and
    then leaves the object unprocessed until something else changes it. A restarted
    operator that found a Migration resumed but still waiting for health did exactly
    that, and the Migration never finished.

    The finalizer itself counts as taking charge (``hold_deletion`` adds it before the
    scale to zero): Kopf decides on the body of the cycle that ran the handler, which
    may show the finalizer but not yet the status written after it. A handler that
    returns while a Job writes (and is retried) would otherwise have its finalizer
    removed on that stale body, and the object deleted with its application at zero."""
    status = body.get("status") or {}
    meta = body.get("metadata") or {}
    charged = bool(status.get("application")) or FINALIZER in (meta.get("finalizers") or [])
    return (charged and not finished(status.get("phase"))) or holds_application(body)


def release(body: Mapping[str, Any], workloads: Workloads) -> str | None:
    """Resume the workload an object holds at zero, from its status alone (its
    Environment may be gone): the object is being deleted. Says what it did."""
    if not holds_application(body):
        return None
    state = (body.get("status") or {}).get("application") or {}
    namespace = str((body.get("metadata") or {}).get("namespace"))
    kind, _, name = str(state.get("workload") or "").partition("/")
    replicas = int(state.get("replicas") or 0)
    if not name or kind not in {k.value for k in WorkloadKind}:
        return None  # nothing Ferry could have scaled
    found = workloads.set_replicas(kind, namespace, name, replicas)
    return f"{kind}/{name} back at {replicas} replicas" if found else None


def result_record(result: MigrationResult) -> dict[str, Any]:
    """What a Migration's ``status.application.result`` keeps for a restart: the flow
    resumes and checks health after a crash without applying again."""
    return {
        "id": result.id,
        "status": result.status,
        "message": result.message,
        "backupId": result.backup_id,
        "warnings": list(result.warnings),
    }


def result_of(record: dict[str, Any]) -> MigrationResult:
    return MigrationResult(
        id=str(record.get("id")),
        status=str(record.get("status")),
        plan=None,
        message=str(record.get("message") or ""),
        backup_id=record.get("backupId"),
        warnings=tuple(record.get("warnings") or ()),
    )
