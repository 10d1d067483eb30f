"""A Migration's rehearsal (``spec.rehearsal: Required``), between approval and the apply.

The plan is applied to a scratch copy of the target first (controller/commands/
rehearsal.py), on the scratch server the target Environment declares in
``spec.rehearsal.scratch``. A passed rehearsal is recorded in ``status.rehearsal`` with
the digest the copy applied, and the real apply is held to that digest; a later
attempt of the same plan (the apply waited for something that did not answer) does not
rehearse it again. A failed rehearsal ends the Migration ``Failed`` with its reason,
before anything touched the target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from controller.api.migration import MigrationPhase
from controller.api.reasons import MigrationReason
from controller.commands.environments import ResolvedEnvironment
from controller.commands.migrate import MigrationRequest
from controller.commands.rehearsal import PASSED, RehearsalResult, rehearse, scratch_url
from controller.errors import InvalidInput
from controller.flows.bootcheck import BootCheck, BootOwner, boot_client_missing
from controller.k8s.bootcheck import BootPods
from controller.k8s.client import Cluster
from controller.k8s.workloads import Workloads


def already_rehearsed(previous: Mapping[str, Any] | None, digest: str) -> bool:
    """Whether ``status.rehearsal`` records a passed rehearsal of exactly this plan."""
    return bool(
        previous and previous.get("outcome") == PASSED and previous.get("planDigest") == digest
    )


def run_rehearsal(
    request: MigrationRequest,
    target: ResolvedEnvironment,
    cluster: Cluster,
    on_phase: Callable[[str], None],
    workloads: Workloads | None = None,
    owner: Mapping[str, Any] | None = None,
) -> RehearsalResult:
    """Rehearse ``request`` on the target's scratch server; InvalidInput
    (``RehearsalNotConfigured``) when the target declares none. When the target's
    application declares ``bootCheck``, it is booted against the copy (a pod of
    ``owner``, through ``workloads``) after the plan applied there."""
    scratch = scratch_url(target.spec, target.namespace, cluster)
    if scratch is None:
        raise InvalidInput(
            f"spec.rehearsal is Required, and Environment {target.name} declares no "
            "spec.rehearsal.scratch to rehearse on",
            reason=MigrationReason.REHEARSAL_NOT_CONFIGURED,
        )
    boot = _boot_check(target, workloads, owner)
    on_phase(MigrationPhase.REHEARSING)
    return rehearse(request, scratch, store=target.store, progress=request.progress, boot=boot)


def _boot_check(
    target: ResolvedEnvironment, workloads: Workloads | None, owner: Mapping[str, Any] | None
) -> BootCheck | None:
    app = target.spec.application
    if app is None or app.boot_check is None:
        return None
    if not isinstance(workloads, BootPods) or owner is None:
        raise InvalidInput(boot_client_missing(target.name))
    return BootCheck(workloads, app, target.namespace, BootOwner.of("Migration", owner))
