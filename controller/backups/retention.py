"""Which backups to delete: a pure function of the backups, the policy and the time.

Rules, applied together: keep the newest ``keep_last`` completed backups; delete
completed backups older than ``max_age``; but always keep at least ``min_keep``
completed backups (the newest ones); never delete a pinned backup (one a migration's
rollback window still needs). Failed or partial backups never count as good ones.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass

from controller.errors import InvalidInput

_DURATION = re.compile(r"^(\d+)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> dt.timedelta:
    match = _DURATION.match(text.strip())
    if not match:
        raise InvalidInput(f"invalid duration {text!r} (e.g. 36h, 30d, 8w)")
    return dt.timedelta(seconds=int(match.group(1)) * _UNIT[match.group(2)])


@dataclass(frozen=True)
class Policy:
    keep_last: int | None = None
    max_age: dt.timedelta | None = None
    min_keep: int = 1


@dataclass(frozen=True)
class Candidate:
    id: str
    created_at: dt.datetime
    completed: bool  # False: failed or partial
    pinned: bool = False


def select_for_deletion(
    backups: Iterable[Candidate], policy: Policy, now: dt.datetime
) -> list[str]:
    """IDs to delete, oldest first."""
    items = sorted(backups, key=lambda b: (b.created_at, b.id), reverse=True)  # newest first
    good = [b for b in items if b.completed]
    protected = {b.id for b in good[: max(policy.min_keep, 0)]}
    doomed = []
    for rank, backup in enumerate(good):
        if backup.id in protected or backup.pinned:
            continue
        too_many = policy.keep_last is not None and rank >= policy.keep_last
        too_old = policy.max_age is not None and now - backup.created_at > policy.max_age
        if too_many or too_old:
            doomed.append(backup)
    for backup in items:
        # Failed or partial backups protect nothing; they go once they are too old.
        if (
            not backup.completed
            and not backup.pinned
            and policy.max_age is not None
            and now - backup.created_at > policy.max_age
        ):
            doomed.append(backup)
    return [b.id for b in sorted(doomed, key=lambda b: (b.created_at, b.id))]
