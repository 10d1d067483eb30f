"""Open whatever ``--source`` names: a database URL or an exported snapshot directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from controller.db.database import Database
from controller.engine.source import SnapshotSource
from controller.errors import InvalidInput
from controller.gitsource.snapshot_dir import SnapshotDirectory


def is_url(spec: str) -> bool:
    return "://" in spec or spec.startswith("sqlite:")


@contextmanager
def open_source(spec: str) -> Iterator[SnapshotSource]:
    if is_url(spec):
        db = Database(spec)
        try:
            with db.reader() as snap:
                yield snap
        finally:
            db.dispose()
        return
    path = Path(spec)
    if not path.is_dir():
        raise InvalidInput(f"source {spec!r} is neither a database URL nor a snapshot directory")
    yield SnapshotDirectory(path)


def same_database(a: str, b: str) -> bool:
    """True when two specs name the same database (SQLite paths are resolved)."""
    if a == b:
        return True
    prefix = "sqlite:///"
    if a.startswith(prefix) and b.startswith(prefix):
        return Path(a[len(prefix) :]).resolve() == Path(b[len(prefix) :]).resolve()
    return False
