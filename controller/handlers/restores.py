"""Restore handlers: drive one Restore from Pending to a final phase."""

from __future__ import annotations

from typing import Any

import kopf

from controller.api.resources import GROUP, VERSION
from controller.flows.restore import reconcile_restore
from controller.flows.unexpected import guarded
from controller.handlers.common import cluster, now, write


@kopf.on.create(GROUP, VERSION, "restores")
@kopf.on.resume(GROUP, VERSION, "restores")
def restore_created(body: Any, retry: int, **_: Any) -> None:
    when = now()
    outcome = guarded(
        "Restore",
        dict(body),
        lambda: reconcile_restore(dict(body), cluster(), now=when, retry=retry),
        now=when,
        retry=retry,
    )
    write("Restore", body, outcome)
