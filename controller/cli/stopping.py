"""How ``ferry backup create`` and ``ferry restore`` stop on SIGTERM (a pod deleted, a
node drained, ``kill``): as on Ctrl-C, they unwind, so a writer removes its partial
backup instead of leaving debris.

Two things stand in the way, and this module handles both. A query waiting in the
database (on a lock) holds the main thread inside a driver call, where no Python signal
handler runs: a watcher thread, woken through :func:`signal.set_wakeup_fd` the moment
the signal arrives, asks the server to cancel it (:mod:`controller.db.inflight`). And a
backup whose every byte is written (``finishing``) is published whatever happens: a
SIGTERM from then on is held back until the result is written, and the command ends as
what happened, a completed backup (exit 0), not as a stopped one. A restore is the same
once its transaction committed: it ends as restored, not as stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

from controller.db import inflight


class Termination:
    def __init__(self) -> None:
        self.finishing = False
        self.held: int | None = None
        self.done = "the backup was already published"  # what a held-back signal missed

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if self.finishing:
            self.held = signum
            return
        raise SystemExit(128 + signum)

    def finish(self) -> None:
        self.finishing = True

    def watch(self, fd: int) -> None:
        """The watcher thread: on SIGTERM, cancel the queries in flight (the main thread
        may be blocked in one); ends when ``fd`` closes."""
        while True:
            try:
                data = os.read(fd, 64)
            except OSError:
                return
            if not data:
                return
            if signal.SIGTERM in data and not self.finishing:
                inflight.cancel_all()


@contextlib.contextmanager
def terminated_as_exit() -> Iterator[Termination]:
    guard = Termination()
    try:
        previous = signal.signal(signal.SIGTERM, guard.handler)
    except ValueError:  # not the main thread: leave signals alone
        yield guard
        return
    with _watched(guard):
        try:
            yield guard
        finally:
            signal.signal(signal.SIGTERM, previous)
    if guard.held is not None:
        print(f"ferry: signal {guard.held} held back: {guard.done}", file=sys.stderr)


@contextlib.contextmanager
def _watched(guard: Termination) -> Iterator[None]:
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    watcher = threading.Thread(target=guard.watch, args=(read_fd,), daemon=True)
    watcher.start()
    try:
        yield
    finally:
        signal.set_wakeup_fd(previous)
        os.close(write_fd)  # the watcher reads EOF and ends
        watcher.join(timeout=5)
        os.close(read_fd)
