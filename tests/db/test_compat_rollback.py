"""A migration applied by the release before format 2 still rolls back exactly.

``tests/fixtures/compat/v1`` was written by that release (``make_v1.py``): a SQLite
target migrated as ``release-1`` (roles: ``admin`` updated, ``guest`` inserted), its
format-1 pre-migration backup and format-1 post-state, and its ledger row.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from controller.backups.store import FilesystemStore
from controller.commands.rollback import rollback
from controller.errors import CheckFailed
from tests.db.dbhelpers import execute, rows

COMPAT = Path(__file__).resolve().parents[1] / "fixtures" / "compat" / "v1"


@pytest.fixture
def old_release(tmp_path: Path) -> tuple[str, FilesystemStore]:
    shutil.copytree(COMPAT, tmp_path / "v1")
    return f"sqlite:///{tmp_path / 'v1' / 'target.db'}", FilesystemStore(tmp_path / "v1" / "store")


def test_format_1_rollback_keeps_rows_added_since(old_release: tuple[str, FilesystemStore]) -> None:
    target, store = old_release
    assert rows(target, "roles", "name", "title", order="name") == [
        ("admin", "Administrator"),
        ("guest", "Guest"),
        ("member", "Member"),
    ]
    execute(target, "insert into roles values ('ops', 'Operations')")
    done = rollback(store, "release-1", target)
    assert not done.later_edits
    assert rows(target, "roles", "name", "title", order="name") == [
        ("admin", "Admin (old)"),
        ("member", "Member"),
        ("ops", "Operations"),
    ]
    assert rows(target, "ferry_migrations", "id", "result") == [("release-1", "rolled-back")]


def test_format_1_rollback_lists_edits_to_the_rows_it_left(
    old_release: tuple[str, FilesystemStore],
) -> None:
    target, store = old_release
    execute(target, "update roles set title = 'Guests' where name = 'guest'")
    with pytest.raises(CheckFailed) as err:
        rollback(store, "release-1", target)
    assert err.value.problems == ["roles: row (guest) was changed after the migration"]
    assert rollback(store, "release-1", target, force=True).later_edits
    assert [r[0] for r in rows(target, "roles", "name", order="name")] == ["admin", "member"]
