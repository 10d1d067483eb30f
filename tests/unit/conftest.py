"""Fixtures the flow tests share: a NocoBase-shaped prod database on SQLite and a
backup store directory (modules that need other ones define their own)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures import nocobase_shape as shape


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A NocoBase-shaped production database on SQLite."""
    db = f"sqlite:///{tmp_path}/prod.db"
    shape.build(db, app="prod")
    return db


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path
