"""Fault injection for end-to-end tests, off unless ``FERRY_FAILPOINTS`` is set.

``FERRY_FAILPOINTS="rows:uiSchemas=sleep(60);verify=error"`` makes the migration step
``rows:uiSchemas`` pause for a minute (so a test can kill the operator there) and the
step ``verify`` fail. Steps are those the migration engine reports to its fault hook.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable

from controller.errors import PermanentError

_RULE = re.compile(r"^(?P<step>[^=]+)=(?P<action>error|sleep\((?P<seconds>\d+(\.\d+)?)\))$")
log = logging.getLogger("ferry.failpoints")


def from_environment() -> Callable[[str], None] | None:
    spec = os.environ.get("FERRY_FAILPOINTS", "").strip()
    if not spec:
        return None
    rules: dict[str, str] = {}
    for item in spec.split(";"):
        match = _RULE.match(item.strip())
        if match:
            rules[match.group("step")] = match.group("action")

    def fault(step: str) -> None:
        action = rules.get(step)
        if action is None:
            return
        log.warning("failpoint %s: %s", step, action)
        if action == "error":
            raise PermanentError(f"failpoint {step}: injected failure")
        time.sleep(float(action[len("sleep(") : -1]))

    return fault
