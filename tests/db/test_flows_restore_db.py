"""The Restore flow refuses a backup of another dialect (a real PostgreSQL server's
backup, a SQLite target): Incompatible, nothing changed, not even a safety backup."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup
from tests.db.dbhelpers import dump, execute
from tests.unit.fake_cluster import FakeCluster
from tests.unit.test_flows_restore import assert_failed, environment, restore, run
from tests.unit.test_flows_restore_errors import store_entries

MakeDb = Callable[..., str]


def test_a_backup_of_another_dialect_is_incompatible(make_database: MakeDb, tmp_path: Path) -> None:
    source = make_database("postgresql", "src")
    execute(source, "create table items (id integer primary key, note text)")
    execute(source, "insert into items values (1, 'from postgresql')")
    store = tmp_path / "store"
    manifest, _ = create_backup(source, FilesystemStore(store), environment="prod")
    target = f"sqlite:///{tmp_path}/prod.db"
    execute(target, "create table items (id integer primary key, note text)")
    before, entries = dump(target), store_entries(store)
    cluster = FakeCluster(environment("prod", target, store), restore(backup=manifest.id))
    out = run(cluster)
    assert_failed(
        out,
        "Incompatible",
        f"backup {manifest.id} is of a postgresql database; the target is sqlite",
    )
    assert dump(target) == before and store_entries(store) == entries
