"""``status.progress``: how far a long phase got, for ``kubectl get -o wide``.

Backups, Restores and Migrations spend minutes in BackingUp, Restoring and Applying
on a large database; their phase alone does not say whether anything moves. The
commands report each table (:class:`~controller.engine.progress.Progress`); this
writes it into the object's status as ``{phase, tables: "3/17", rows, bytes,
updated}``. A status patch per table would load the API server on a database of a
thousand small tables, so patches are throttled (at most one per ``interval``), and
the last state rides on the flow's final status patch (:func:`with_progress`), so the
recorded progress is exact once the object is finished however the throttle fell.
Progress is best-effort: a patch the API server refuses never fails the work.
"""

from __future__ import annotations

from dataclasses import replace

from controller.flows.outcome import Outcome
from controller.k8s.status_progress import INTERVAL, StatusProgress, StatusWriter, wall_clock

__all__ = ["INTERVAL", "StatusProgress", "StatusWriter", "wall_clock", "with_progress"]


def with_progress(outcome: Outcome, progress: StatusProgress) -> Outcome:
    """The outcome with the last progress in its status patch (when it has one)."""
    state = progress.status()
    if state is None or not outcome.status:
        return outcome
    return replace(outcome, status={**outcome.status, "progress": state})
