"""Restore handlers: drive one Restore from Pending to a final phase."""

from __future__ import annotations

from typing import Any

import kopf

from controller.api.resources import GROUP, VERSION
from controller.flows.restore import reconcile_restore
from controller.handlers.common import reconciled, write


@kopf.on.create(GROUP, VERSION, "restores")
@kopf.on.resume(GROUP, VERSION, "restores")
def restore_created(body: Any, retry: int, **_: Any) -> None:
    write("Restore", body, reconciled("Restore", body, retry, reconcile_restore))
