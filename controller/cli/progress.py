"""Progress of long commands on a terminal: one bar per phase, on stderr.

``ferry backup create``, ``restore``, ``rollback``, ``migrate`` and ``plan`` take a
:class:`~controller.engine.progress.Progress`; this module decides which. On a
terminal it is a ``rich`` bar per phase (tables done of total, rows and bytes where
known, elapsed time) on stderr, so stdout stays the result a script reads. Off a
terminal, or with ``--format json``, it is nothing at all: no escape codes in logs, no
partial lines in a pipe.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich import filesize
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as Bars

from controller.engine.progress import (
    APPLYING,
    BACKING_UP,
    NO_PROGRESS,
    PLANNING,
    RESTORING,
    Progress,
)

LABELS = {
    PLANNING: "planning",
    BACKING_UP: "backing up",
    APPLYING: "applying",
    RESTORING: "restoring",
}


class TerminalProgress:
    """A :class:`Progress` drawn with ``rich``; every phase keeps its finished bar."""

    def __init__(self, stream: TextIO) -> None:
        self.bars = Bars(
            TextColumn("{task.description:<11}"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TextColumn("tables"),
            TextColumn("{task.fields[rows]}"),
            TextColumn("{task.fields[size]}"),
            TimeElapsedColumn(),
            console=Console(file=stream),
            refresh_per_second=5,
        )
        self.task: TaskID | None = None
        self.rows: int | None = None
        self.size: int | None = None
        self.running = False

    def start(self, phase: str, total_tables: int) -> None:
        if not self.running:
            self.bars.start()
            self.running = True
        self.rows = self.size = None
        label = LABELS.get(phase, phase)
        self.task = self.bars.add_task(label, total=total_tables, rows="", size="")

    def table(self, name: str, rows: int | None = None, size: int | None = None) -> None:
        if self.task is None:
            return
        if rows is not None:
            self.rows = (self.rows or 0) + rows
        if size is not None:
            self.size = (self.size or 0) + size
        self.bars.update(self.task, advance=1, rows=self.shown_rows(), size=self.shown_size())

    def done(self) -> None:
        if self.task is not None:
            total = self.bars.tasks[self.task].total or 0
            self.bars.update(self.task, completed=total)
            self.bars.stop_task(self.task)
        self.task = None

    def close(self) -> None:
        """Draw the bars a last time and give the terminal back (also after an error)."""
        if self.running:
            self.bars.stop()
            self.running = False

    def shown_rows(self) -> str:
        return "" if self.rows is None else f"{self.rows:,} rows"

    def shown_size(self) -> str:
        return "" if self.size is None else filesize.decimal(self.size)


def wanted(args: argparse.Namespace, stream: TextIO) -> bool:
    """Progress only for a person watching: a terminal, and not machine output."""
    if getattr(args, "format", "text") == "json":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@contextmanager
def progress_for(args: argparse.Namespace) -> Iterator[Progress]:
    """The progress a command run with ``args`` reports to, closed when it ends."""
    stream = sys.stderr
    if not wanted(args, stream):
        yield NO_PROGRESS
        return
    shown = TerminalProgress(stream)
    try:
        yield shown
    finally:
        shown.close()
