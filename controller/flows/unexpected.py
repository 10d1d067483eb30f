"""What an exception that no flow expected becomes: a status that says so, and a backoff.

Every flow turns the Ferry errors it expects into phases and conditions. Anything else
(a bug, a driver error nobody classified) used to escape to Kopf, which retries such a
handler every 60 seconds, forever, and says so only in the operator's log: the object
kept its last phase and looked busy. Here it becomes visible and bounded instead:

- a one-shot (Migration, Backup, Restore) is tried :data:`ATTEMPTS` times with backoff,
  each failed attempt shown in its conditions with a Warning event, then ends ``Failed``
  with reason ``InternalError``. Trying again is safe: a Migration's ledger ID comes
  from its UID, so a retry of a committed migration finds its ledger row;
- a continuous kind (Environment, BackupSchedule) is ``Stalled`` with that reason and
  looked at again with backoff (its timer runs anyway), one event per new reason.

A ``TemporaryError`` that escapes a flow is what it says: retried with its delay. The
message never carries a password (URLs in it are scrubbed) and is cut to a line.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from controller.api.backup import BackupPhase
from controller.api.migration import MigrationPhase
from controller.api.phases import Phase
from controller.api.reasons import CommonReason, EventType
from controller.api.restore import RestorePhase
from controller.db.connect import scrub
from controller.errors import FerryError, TemporaryError
from controller.flows.outcome import Event, Outcome, backoff
from controller.flows.status import StatusPatch, ready_reason, timestamp

ATTEMPTS = 3
# Each one-shot kind's Failed phase (the kinds' enums spell it alike, but each is its own).
FAILED: dict[str, Phase] = {
    "Migration": MigrationPhase.FAILED,
    "Backup": BackupPhase.FAILED,
    "Restore": RestorePhase.FAILED,
}
ONE_SHOT_KINDS = frozenset(FAILED)
REASON = CommonReason.INTERNAL_ERROR
_MESSAGE_MAX = 500
log = logging.getLogger("ferry.unexpected")


def describe(err: BaseException) -> str:
    """One line naming the exception, without passwords."""
    text = err.message if isinstance(err, FerryError) else f"{type(err).__name__}: {err}"
    line = " ".join(scrub(text).split())
    return line if len(line) <= _MESSAGE_MAX else line[: _MESSAGE_MAX - 1] + "…"


def guarded(
    kind: str,
    body: dict[str, Any],
    run: Callable[[], Outcome],
    *,
    now: dt.datetime,
    retry: int = 0,
    note: str = "",
) -> Outcome:
    """``run()``'s outcome, or what an exception escaping it means for ``body``.

    ``retry`` is how many times this handler already failed (Kopf's count); ``note``
    is appended to a final failure's message (a Migration's: where to see whether the
    target changed).
    """
    try:
        return run()
    except TemporaryError as err:
        return _temporary(body, err, now, retry)
    except Exception as err:  # the point: nothing escapes unreported
        log.exception("%s %s: unexpected error", kind, (body.get("metadata") or {}).get("name"))
        if kind in ONE_SHOT_KINDS:
            return _one_shot(body, err, now, retry, note, FAILED[kind])
        return _continuous(body, err, now, retry)


def _temporary(body: dict[str, Any], err: TemporaryError, now: dt.datetime, retry: int) -> Outcome:
    patch = StatusPatch(body, now).progressing(err.reason, describe(err))
    new = ready_reason(body.get("status") or {}) != err.reason
    events = (Event(EventType.WARNING, err.reason, describe(err)),) if new else ()
    return Outcome(patch.build(), events, backoff(retry, err.delay))


def _reason_of(err: Exception) -> str:
    return err.reason if isinstance(err, FerryError) else REASON


def _one_shot(
    body: dict[str, Any], err: Exception, now: dt.datetime, retry: int, note: str, failed: Phase
) -> Outcome:
    reason, what = _reason_of(err), describe(err)
    patch = StatusPatch(body, now)
    attempt = retry + 1
    if attempt < ATTEMPTS:
        delay = backoff(retry)
        message = (
            f"attempt {attempt} of {ATTEMPTS} failed unexpectedly ({what}); "
            f"retrying in {delay:.0f}s"
        )
        patch.progressing(reason, message)
        return Outcome(patch.build(), (Event(EventType.WARNING, reason, message),), delay)
    message = f"failed unexpectedly {ATTEMPTS} times: {what}{note}"
    patch.stalled(reason, message).set(
        phase=failed, message=message, error=message, completionTime=timestamp(now)
    )
    return Outcome(patch.build(), (Event(EventType.WARNING, reason, message),))


def _continuous(body: dict[str, Any], err: Exception, now: dt.datetime, retry: int) -> Outcome:
    reason = _reason_of(err)
    message = f"unexpected error: {describe(err)}; the operator log has the details"
    patch = StatusPatch(body, now).stalled(reason, message)
    new = ready_reason(body.get("status") or {}) != reason
    events = (Event(EventType.WARNING, reason, message),) if new else ()
    return Outcome(patch.build(), events, backoff(retry))
