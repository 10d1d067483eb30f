"""Progress of long commands on a terminal: one bar per phase, on stderr.

``ferry backup create``, ``restore``, ``rollback``, ``migrate`` and ``plan`` take a
:class:`~controller.engine.progress.Progress`; this module decides which. On a
terminal it is a ``rich`` bar per phase (tables done of total, rows and bytes where
known, elapsed time) on stderr, so stdout stays the result a script reads. Off a
terminal, or with ``--format json``, it is nothing at all: no escape codes in logs, no
partial lines in a pipe. In a Job's pod (``--progress-to KIND/NAMESPACE/NAME``, or
``FERRY_PROGRESS_TO`` as the operator sets it) it is that object's ``status.progress``,
written with the pod's own narrowly scoped token (``controller.k8s.job_access``), in the
shape and at the pace the operator writes it in process.
"""

from __future__ import annotations

import argparse
import os
import re
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
from controller.errors import InvalidInput
from controller.k8s.client import PLURALS
from controller.k8s.job_access import PROGRESS_ENV
from controller.k8s.progress_token import TokenStatusWriter
from controller.k8s.status_progress import StatusProgress

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


_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def add_progress_to_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress-to",
        metavar="KIND/NAMESPACE/NAME",
        help=f"write progress into that Ferry object's status.progress with the pod's "
        f"projected token, as a Job's pod does (default: ${PROGRESS_ENV})",
    )


def progress_target(args: argparse.Namespace) -> tuple[str, str, str] | None:
    """The object ``--progress-to`` (or its variable) names, or None; InvalidInput for
    anything but ``KIND/NAMESPACE/NAME`` of a Ferry kind and valid names."""
    text = getattr(args, "progress_to", None) or os.environ.get(PROGRESS_ENV) or ""
    if not text:
        return None
    parts = text.split("/")
    if len(parts) != 3 or parts[0] not in PLURALS or not all(_NAME.fullmatch(p) for p in parts[1:]):
        kinds = ", ".join(PLURALS)
        raise InvalidInput(
            f"--progress-to {text!r}: expected KIND/NAMESPACE/NAME, KIND one of {kinds}"
        )
    return parts[0], parts[1], parts[2]


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
    target = progress_target(args)
    if target is not None:
        reported = StatusProgress(TokenStatusWriter(), *target, trailing=True)
        try:
            yield reported
        finally:
            reported.close()
        return
    if not wanted(args, stream):
        yield NO_PROGRESS
        return
    shown = TerminalProgress(stream)
    try:
        yield shown
    finally:
        shown.close()
