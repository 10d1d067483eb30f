"""A restore proves its backup before anything it writes is committed: on PostgreSQL the
proof runs beside the safety backup and the writes and is awaited before the commit
(:mod:`controller.commands.proof`), elsewhere it comes first. Either way a damaged
backup is refused as ``BackupCorrupted``, the target is unchanged and no safety backup
is left behind."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.backups.store import FilesystemStore
from controller.commands import proof
from controller.commands.backup import create_backup, restore
from controller.errors import CheckFailed
from tests.db.dbhelpers import damage as damage_file
from tests.db.dbhelpers import dump
from tests.fixtures import nocobase_shape as shape

MakeDb = Callable[..., str]


def _refused(store: FilesystemStore, backup_id: str, dst: str, **kw: Any) -> CheckFailed:
    before = dump(dst)
    with pytest.raises(CheckFailed) as err:
        restore(store, backup_id, dst, force=True, **kw)
    assert err.value.reason == "BackupCorrupted"
    assert err.value.message == f"backup {backup_id} is damaged; nothing was changed"
    assert dump(dst) == before
    assert not [m for m in store.manifests() if m.reason == "pre-restore"]
    return err.value


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_a_member_damaged_at_rest_is_refused_and_nothing_changes(
    damage: str, dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    src, dst = make_database(dialect, "src"), make_database(dialect, "dst")
    shape.build(src, app="src")
    shape.build(dst, app="dst")  # tables to replace: a safety backup is taken
    store = FilesystemStore(tmp_path / "store")
    manifest, location = create_backup(src, store, environment="e")
    last = manifest.members[-1]  # restored last: every other table is written first
    path = Path(location) / last.key
    damage_file(path, damage)
    err = _refused(store, manifest.id, dst)
    assert any(last.table in problem for problem in err.problems)


def test_postgresql_proves_beside_the_writes_and_before_the_commit(
    make_database: MakeDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The proof finds its problem only after every table was written (in the
    transaction): the commit is refused, the writes rolled back, the safety backup
    removed."""
    src, dst = make_database("postgresql", "src"), make_database("postgresql", "dst")
    shape.build(src, app="src")
    shape.build(dst, app="dst")
    store = FilesystemStore(tmp_path / "store")
    manifest, _ = create_backup(src, store, environment="e")
    written = threading.Event()
    overlapped: list[bool] = []

    def late_proof(*_args: Any) -> list[str]:
        overlapped.append(written.wait(timeout=60))
        return ["member x: corrupted (found late)"]

    monkeypatch.setattr(proof, "verify_backup", late_proof)
    last = manifest.tables[-1]

    def fault(step: str) -> None:
        if step == f"restore:{last}":
            written.set()

    err = _refused(store, manifest.id, dst, fault=fault)
    assert overlapped == [True]  # the proof was still running while the rows were written
    assert err.problems == ["member x: corrupted (found late)"]
