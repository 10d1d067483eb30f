"""Run one side of a comparison on a worker thread while the caller runs the other.

Both sides of a diff are read at once, each on its own connection (usually its own
server). The workers are started once per process and reused: a thread started per
query cost more than some of the queries it ran (about a tenth of a small migration
in the operator, waiting for each new thread to start). Work given here never waits
on other work given here, so callers share the workers without deadlock; when all are
busy, work queues.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

WORKERS = 8  # several migrations (Kopf handlers) comparing at once
_P = ParamSpec("_P")
_T = TypeVar("_T")
_U = TypeVar("_U")
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def beside(work: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
    """``work(*args, **kwargs)`` started on a shared worker thread."""
    global _pool  # noqa: PLW0603 - one pool per process, started on first use
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="ferry-beside")
        pool = _pool
    return pool.submit(work, *args, **kwargs)


def at_once(there: Callable[[], _T], here: Callable[[], _U]) -> tuple[_T, _U]:
    """``there()`` on a worker while ``here()`` runs on this thread; both are awaited
    before this returns or raises (neither side's connection is still in use)."""
    job = beside(there)
    try:
        mine = here()
    finally:
        theirs = job.result()
    return theirs, mine
