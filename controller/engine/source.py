"""What the planner needs from a source: a schema and a way to stream rows.

A live database and a snapshot directory written by ``ferry export`` both provide it,
so a plan from Git and a plan from a database are computed by the same code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from controller.engine.model import DatabaseSchema

Batch = list[tuple[Any, ...]]


class SnapshotSource(Protocol):
    @property
    def label(self) -> str:
        """A printable name (never a password)."""
        ...

    def schema(self) -> DatabaseSchema: ...

    def batches(self, table: str, columns: Sequence[str]) -> Iterator[Batch]:
        """Rows of ``table`` as tuples in ``columns`` order, in batches."""
        ...


@runtime_checkable
class FilteredSource(Protocol):
    """A source that can keep only some rows where they are (a live database)."""

    def batches_equal(
        self, table: str, columns: Sequence[str], column: str, value: int
    ) -> Iterator[Batch]:
        """:meth:`SnapshotSource.batches` of the rows whose ``column`` equals ``value``."""
        ...
