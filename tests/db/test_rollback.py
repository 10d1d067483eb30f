"""Migrations become reversible: pre-migration backups, automatic and scoped rollback."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.backups.manifest import Manifest
from controller.backups.store import FilesystemStore
from controller.commands.backup import restore
from controller.commands.migrate import MigrationRequest, migrate
from controller.commands.rollback import rollback
from controller.errors import CheckFailed, PermanentError, Unreachable
from tests.db.dbhelpers import dump, execute, q, rows
from tests.fixtures import nocobase_shape as shape

MakeDb = Callable[..., str]
VARS = {"HOOK_TOKEN": ("secret", "t"), "TICKET_WEBHOOK": ("plain", "u")}


@pytest.fixture
def envs(dialect: str, make_database: MakeDb) -> tuple[str, str]:
    dev, pre = make_database(dialect, "dev"), make_database(dialect, "pre")
    shape.build(dev, app="dev")
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables=VARS)
    return dev, pre


def _without_ledger(data: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in data.items() if k != "ferry_migrations"}


def test_failure_after_backup_rolls_back_to_identical(
    envs: tuple[str, str], dialect: str, tmp_path: Path
) -> None:
    dev, pre = envs
    store = FilesystemStore(tmp_path / "store")
    before = _without_ledger(dump(pre))

    def fault(step: str) -> None:
        if step == "verify":  # after the schema change and every row change
            raise PermanentError("connection dropped (injected)")

    result = migrate(MigrationRequest(dev, pre, store=store, environment="pre", fault=fault))
    assert result.status == "rolled-back", result.message
    assert result.target_untouched and result.backup_id
    assert store.manifest(result.backup_id).reason == "pre-migration"
    if dialect == "mysql":
        assert f"restored the pre-migration backup {result.backup_id}" in result.message
    assert _without_ledger(dump(pre)) == before
    assert rows(pre, "ferry_migrations", "result", order="id") == [("rolled-back",)]


def test_scoped_rollback_keeps_later_business_rows(
    envs: tuple[str, str], dialect: str, tmp_path: Path
) -> None:
    dev, pre = envs
    store = FilesystemStore(tmp_path / "store")
    config_before = {
        t: v
        for t, v in dump(pre).items()
        if t in ("roles", "uiSchemas", "desktopRoutes", "fields", "collections")
    }
    result = migrate(MigrationRequest(dev, pre, store=store, migration_id="rel-1"))
    assert result.status == "succeeded" and result.backup_id
    assert "tickets" in dump(pre)
    execute(pre, f"insert into {q(dialect, 'orders')} (id, title) values (9001, 'after')")

    done = rollback(store, "rel-1", pre)
    assert set(done.tables) >= {"roles", "uiSchemas", "desktopRoutes"}
    assert done.dropped == ("tickets",)
    after = dump(pre)
    assert "tickets" not in after
    assert {t: after[t] for t in config_before} == config_before
    assert (9001, "after") in rows(pre, "orders", "id", "title")
    assert rows(pre, "ferry_migrations", "id", "result", order="id") == [("rel-1", "rolled-back")]


def test_scoped_rollback_reports_later_edits_first(
    envs: tuple[str, str], dialect: str, tmp_path: Path
) -> None:
    dev, pre = envs
    store = FilesystemStore(tmp_path / "store")
    assert (
        migrate(MigrationRequest(dev, pre, store=store, migration_id="rel-2")).status == "succeeded"
    )
    execute(pre, f"update {q(dialect, 'roles')} set title = 'edited later' where name = 'support'")
    edited = dump(pre)
    with pytest.raises(CheckFailed) as err:
        rollback(store, "rel-2", pre)
    assert any("roles" in p and "support" in p and "changed after" in p for p in err.value.problems)
    assert dump(pre) == edited  # nothing restored
    forced = rollback(store, "rel-2", pre, force=True)
    assert forced.later_edits and "support" not in {
        r[0] for r in rows(pre, "roles", "name", order="name")
    }


def test_rows_in_a_table_the_migration_created_block_the_rollback(
    envs: tuple[str, str], dialect: str, tmp_path: Path
) -> None:
    dev, pre = envs
    store = FilesystemStore(tmp_path / "store")
    assert (
        migrate(MigrationRequest(dev, pre, store=store, migration_id="rel-3")).status == "succeeded"
    )
    execute(pre, f"insert into {q(dialect, 'tickets')} (id, subject) values (1, 'urgent')")
    with pytest.raises(CheckFailed) as err:
        rollback(store, "rel-3", pre)
    assert err.value.problems == ["tickets: row (1) was added after the migration"]
    assert rows(pre, "tickets", "id", "subject") == [(1, "urgent")]
    assert rollback(store, "rel-3", pre, force=True).dropped == ("tickets",)


class _FailingExtras(FilesystemStore):
    """A store that takes backups but fails to keep what a migration wrote."""

    def put_extra(self, manifest: Manifest, key: str, data: bytes) -> None:
        raise Unreachable("store went away (injected)")


def test_a_record_that_cannot_be_stored_means_the_migration_did_not_happen(
    envs: tuple[str, str], tmp_path: Path
) -> None:
    dev, pre = envs
    before = _without_ledger(dump(pre))
    store = _FailingExtras(tmp_path / "store")
    result = migrate(MigrationRequest(dev, pre, store=store, migration_id="rel-4"))
    assert result.status == "rolled-back" and result.target_untouched
    assert _without_ledger(dump(pre)) == before
    assert rows(pre, "ferry_migrations", "id", "result") == [("rel-4", "rolled-back")]


def test_after_the_commit_nothing_says_failed(envs: tuple[str, str], tmp_path: Path) -> None:
    dev, pre = envs
    store = FilesystemStore(tmp_path / "store")

    def fault(step: str) -> None:
        if step == "committed":
            raise PermanentError("status write failed (injected)")

    result = migrate(MigrationRequest(dev, pre, store=store, migration_id="rel-5", fault=fault))
    assert result.status == "succeeded"
    assert result.warnings == ("after the commit: status write failed (injected)",)
    assert rows(pre, "ferry_migrations", "id", "result") == [("rel-5", "succeeded")]
    assert "tickets" in dump(pre)
    assert rollback(store, "rel-5", pre).dropped == ("tickets",)


class _UnreachableStore(FilesystemStore):
    def writer(self, environment: str, backup_id: str) -> Any:
        raise Unreachable("store unreachable (injected)")


def test_a_backup_that_cannot_be_taken_changes_nothing_and_is_temporary(
    envs: tuple[str, str], tmp_path: Path
) -> None:
    dev, pre = envs
    before = dump(pre)
    store = _UnreachableStore(tmp_path / "store")
    with pytest.raises(Unreachable):
        migrate(MigrationRequest(dev, pre, store=store, migration_id="rel-6"))
    after = dump(pre)
    assert after.pop("ferry_migrations", {"rows": []})["rows"] == []
    assert after == {t: v for t, v in before.items() if t != "ferry_migrations"}


def test_a_restore_records_which_migrations_it_undid(envs: tuple[str, str], tmp_path: Path) -> None:
    """Restoring the pre-migration backup undoes the migration: the ledger says so, and
    the same migration ID applies again instead of saying 'already applied'."""
    dev, pre = envs
    store = FilesystemStore(tmp_path / "store")
    first = migrate(MigrationRequest(dev, pre, store=store, migration_id="rel-7"))
    assert first.status == "succeeded" and first.backup_id
    restored = restore(store, first.backup_id, pre)
    assert restored.undone == ("rel-7",)
    assert "tickets" not in dump(pre)
    assert rows(pre, "ferry_migrations", "id", "result") == [("rel-7", "undone")]
    again = migrate(MigrationRequest(dev, pre, store=store, migration_id="rel-7"))
    assert again.status == "succeeded"
    assert "tickets" in dump(pre)
    assert rows(pre, "ferry_migrations", "id", "result") == [("rel-7", "succeeded")]


def test_a_failure_in_the_pre_migration_backup_writes_nothing(
    envs: tuple[str, str], tmp_path: Path
) -> None:
    """The backup reports its members to the fault hook (the node tier holds the
    operator's pod there to kill it); a failure there ends the migration unwritten."""
    dev, pre = envs
    before = _without_ledger(dump(pre))
    steps: list[str] = []

    def fault(step: str) -> None:
        steps.append(step)
        if step == "member:uiSchemas":
            raise PermanentError("the operator died in the backup (injected)")

    store = FilesystemStore(tmp_path / "store")
    with pytest.raises(PermanentError, match="died in the backup"):
        migrate(MigrationRequest(dev, pre, store=store, environment="pre", fault=fault))
    assert not [s for s in steps if s.startswith(("rows:", "insert:", "staged:"))], steps
    assert _without_ledger(dump(pre)) == before
