"""Queries in flight, so that a process being stopped can cancel them in the server.

A backup that waits in the database (on another session's lock, say) sits inside a
driver call: ADBC's ``execute`` does not return when a signal arrives, and a Python
signal handler only runs between bytecodes, so a SIGTERM would wait for the lock, or
for the grace period's SIGKILL, which leaves the partial backup for the stale-writer
sweep. Readers register how to cancel what they run (:func:`cancellable`); the CLI's
stop handler calls :func:`cancel_all` from another thread (``controller.cli.stopping``),
the server cancels the query, the driver call returns with an error, and the backup
unwinds as a stopped one: its writer removes its partial backup.

Only PostgreSQL's fast path (ADBC) registers: psycopg cancels its own query when the
handler's exception reaches it, and PyMySQL reads in Python, where the handler runs
(MariaDB ends the waiting query once its client is gone); tests/db/test_backup_cancel.py
holds all three to it.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterator

_cancels: dict[int, Callable[[], object]] = {}
_lock = threading.Lock()
_keys = itertools.count()


@contextlib.contextmanager
def cancellable(cancel: Callable[[], object]) -> Iterator[None]:
    """While the block runs, :func:`cancel_all` calls ``cancel`` (from any thread)."""
    key = next(_keys)
    with _lock:
        _cancels[key] = cancel
    try:
        yield
    finally:
        with _lock:
            _cancels.pop(key, None)


def cancel_all() -> int:
    """Ask the server to cancel every registered query; returns how many were asked.
    Best effort: a query that ended meanwhile, or a server gone, is no error here."""
    with _lock:
        cancels = list(_cancels.values())
    for cancel in cancels:
        with contextlib.suppress(Exception):
            cancel()
    return len(cancels)
