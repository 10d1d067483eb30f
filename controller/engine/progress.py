"""How long work says how far it got, without knowing who listens.

Backing up, restoring, planning, applying and rolling back go table by table; a
terminal shows a bar (``controller/cli/progress.py``) and the operator writes
``status.progress`` (``controller/flows/progress.py``). The commands take a
:class:`Progress` as an argument, defaulting to :data:`NO_PROGRESS`, so nothing
global decides where progress goes and a caller that wants none pays nothing.

A phase is ``start`` → ``table`` per finished table → ``done``; one command may run
several phases in turn (a migration plans, backs up, then applies). A phase cut short
by an error gets no ``done``: what was reported last is where it stopped.
"""

from __future__ import annotations

from typing import Protocol

# The phases, named as the status phases they run under.
PLANNING = "Planning"
BACKING_UP = "BackingUp"
APPLYING = "Applying"
RESTORING = "Restoring"
PHASES = (PLANNING, BACKING_UP, APPLYING, RESTORING)


class Progress(Protocol):
    def start(self, phase: str, total_tables: int) -> None:
        """A phase begins that will go through ``total_tables`` tables."""

    def table(self, name: str, rows: int | None = None, size: int | None = None) -> None:
        """Table ``name`` is done: ``rows`` rows and ``size`` bytes, where known."""

    def done(self) -> None:
        """The phase finished every table."""


class NoProgress:
    """Reports to nobody: what every command does unless told otherwise."""

    def start(self, phase: str, total_tables: int) -> None:
        pass

    def table(self, name: str, rows: int | None = None, size: int | None = None) -> None:
        pass

    def done(self) -> None:
        pass


NO_PROGRESS: Progress = NoProgress()
