"""Restore handlers: drive one Restore from Pending to a final phase."""

from __future__ import annotations

from typing import Any

import kopf

from controller.handlers.common import cluster, now, write
from controller.k8s.client import GROUP, VERSION
from controller.reconcile.restore_flow import reconcile_restore


@kopf.on.create(GROUP, VERSION, "restores")
@kopf.on.resume(GROUP, VERSION, "restores")
def restore_created(body: Any, retry: int, **_: Any) -> None:
    write("Restore", body, reconcile_restore(dict(body), cluster(), now=now(), retry=retry))
