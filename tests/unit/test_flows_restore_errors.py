"""The Restore flow's failures while and before writing, reached for real: a write the
database refuses (RestoreFailed), a target another connection holds (busy: retried), a
backup the target cannot take (Incompatible) or that is another database's
(ForeignDatabase, unless ``spec.force``), a Backup whose Environment has no store, and a
baseline that cannot be recorded after a restore that completed.

SQLite files and a FilesystemStore in ``tmp_path``, the in-memory cluster.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup
from controller.db import ledger
from controller.errors import TemporaryError
from tests.fixtures import nocobase_shape as shape
from tests.unit.fake_cluster import FakeCluster
from tests.unit.test_flows_restore import (
    assert_failed,
    assert_waiting,
    conditions,
    environment,
    events,
    restore,
    run,
)


@pytest.fixture
def backup_id(url: str, store: Path) -> str:
    manifest, _ = create_backup(url, FilesystemStore(store), environment="prod")
    return manifest.id


def sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


def sql(url: str, *statements: str) -> None:
    with sqlite3.connect(sqlite_path(url)) as conn:
        for statement in statements:
            conn.execute(statement)


def dump(url: str) -> dict[str, list[str]]:
    """Every row of every table, and every table's DDL, in a stable order."""
    with sqlite3.connect(sqlite_path(url)) as conn:
        master = sorted(conn.execute("select type, name, sql from sqlite_master"))
        names = [name for kind, name, _ in master if kind == "table"]
        out = {n: sorted(map(repr, conn.execute(f'select * from "{n}"'))) for n in names}
        return {"": [repr(m) for m in master], **out}


def store_entries(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())


# -- writing fails -------------------------------------------------------------------------


def a_ledger_that_refuses_updates(url: str, backup_id: str) -> None:
    """A migration recorded after the backup (so the restore marks it undone), and a
    trigger that refuses that mark: the restore's last write, in its transaction."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        ledger.ensure(conn)
        ledger.record(
            conn,
            ledger.LedgerEntry(
                id="ns.later.12345678",
                digest="sha256:" + "0" * 64,
                source_fingerprint="sha256:" + "1" * 64,
                result="succeeded",
                backup_id=None,
                started_at="2999-01-01T00:00:00.000+00:00",
                finished_at="2999-01-01T00:00:01.000+00:00",
                summary={"changedTables": ["roles"]},
            ),
        )
    engine.dispose()
    sql(
        url,
        "create trigger ledger_frozen before update on ferry_migrations "
        "begin select raise(abort, 'the ledger is frozen'); end",
    )


def test_a_write_the_database_refuses_is_reverted_and_changes_nothing(
    url: str, store: Path, backup_id: str
) -> None:
    sql(url, "delete from roles")
    a_ledger_that_refuses_updates(url, backup_id)
    before = dump(url)
    cluster = FakeCluster(environment("prod", url, store), restore(backup=backup_id))
    out = run(cluster)
    # Failed while writing, and the transaction rolled back: the target is as it was.
    assert_failed(out, "RestoreFailed", "restore failed: writing the ledger: ", "Reverted")
    assert out.status["message"].endswith(
        "the ledger is frozen; the target is unchanged (the transaction was rolled back)"
    )
    assert dump(url) == before
    assert ("patch_status", "Environment", "prod") not in cluster.calls
    # Finished: the next pass leaves it alone.
    body = cluster.get("Restore", "ns", "r")
    assert body is not None
    assert run(cluster).status == {} and cluster.get("Restore", "ns", "r") == body


@contextmanager
def held(url: str) -> Iterator[None]:
    """Another writer holds the database (``BEGIN IMMEDIATE``) for the duration."""
    conn = sqlite3.connect(sqlite_path(url), isolation_level=None)
    try:
        conn.execute("begin immediate")
        yield
        conn.execute("rollback")
    finally:
        conn.close()


@pytest.mark.parametrize("retry", [0, 3])
def test_a_target_another_writer_holds_is_retried(
    url: str, store: Path, backup_id: str, retry: int
) -> None:
    sql(url, "delete from roles")
    before = dump(url)
    cluster = FakeCluster(environment("prod", url, store), restore(backup=backup_id))
    with held(url):
        out = run(cluster, retry=retry)
    delay = 15.0 if retry == 0 else 40.0  # backoff: at least the error's 15 s, doubling
    assert_waiting(out, "TargetBusy", "restore failed: ", delay, phase="Pending")
    assert "the database is busy (database is locked)" in out.status["message"]
    assert out.status["message"].endswith("(the transaction was rolled back)")
    assert dump(url) == before
    # Once the other writer is gone the retry completes.
    done = run(cluster)
    assert done.status["phase"] == "Completed", done.status
    assert dump(url) != before


# -- refusals before writing ---------------------------------------------------------------


def test_a_backup_of_a_newer_application_is_incompatible(
    url: str, store: Path, backup_id: str
) -> None:
    with sqlite3.connect(sqlite_path(url)) as conn:
        (version,) = conn.execute('select "value" from "applicationVersion"').fetchone()
        conn.execute('update "applicationVersion" set "value" = \'0.1.0\'')
    before, entries = dump(url), store_entries(store)
    cluster = FakeCluster(environment("prod", url, store), restore(backup=backup_id))
    out = run(cluster)
    assert_failed(
        out,
        "Incompatible",
        f"backup {backup_id} is of application version {version}, newer than the target's 0.1.0",
    )
    assert dump(url) == before
    assert store_entries(store) == entries  # not even a safety backup was taken


def foreign_backup(tmp_path: Path, store: Path) -> str:
    other = f"sqlite:///{tmp_path}/other.db"
    shape.build(other, app="other", seed=5)
    manifest, _ = create_backup(other, FilesystemStore(store), environment="prod")
    return manifest.id


def test_a_backup_of_another_database_is_refused_unless_forced(
    tmp_path: Path, url: str, store: Path
) -> None:
    backup = foreign_backup(tmp_path, store)
    before, entries = dump(url), store_entries(store)
    cluster = FakeCluster(environment("prod", url, store), restore(backup=backup))
    out = run(cluster)
    assert_failed(out, "ForeignDatabase", f"backup {backup} was taken from ")
    assert out.status["message"].endswith(
        "restoring would replace the target's tables with another database's "
        "(use --force to restore into it anyway)"
    )
    assert dump(url) == before and store_entries(store) == entries
    cluster.add(restore("forced", backup=backup, force=True))
    forced = run(cluster, "forced")
    assert forced.status["phase"] == "Completed", forced.status
    assert conditions(forced)["Restored"][:2] == ("True", "Restored")
    assert forced.status["safetyBackup"]["id"]
    assert dump(url) != before


def test_a_backup_into_an_empty_target_needs_no_force(tmp_path: Path, store: Path) -> None:
    backup = foreign_backup(tmp_path, store)
    empty = f"sqlite:///{tmp_path}/empty.db"
    sqlite3.connect(sqlite_path(empty)).close()
    cluster = FakeCluster(environment("prod", empty, store), restore(backup=backup))
    assert run(cluster).status["phase"] == "Completed"


def test_a_backup_object_whose_environment_has_no_store_fails(url: str) -> None:
    before = dump(url)
    cluster = FakeCluster(
        environment("prod", url, None),
        {
            "kind": "Backup",
            "metadata": {"name": "b"},
            "spec": {"environment": "prod"},
            "status": {"phase": "Completed", "id": "20260328T110000000Z-abc"},
        },
        restore(backup="b"),
    )
    out = run(cluster)
    assert_failed(out, "NoBackupStore", "Environment prod has no spec.backups.store")
    assert dump(url) == before


# -- after the restore ---------------------------------------------------------------------


class RefusingEnvironmentStatus(FakeCluster):
    """The API server refuses the Environment's status patch (a conflict, RBAC)."""

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        if kind == "Environment":
            self.calls.append(("refused patch_status", kind, name))
            raise TemporaryError(f"Kubernetes API: patching {kind} {namespace}/{name}: 409")
        super().patch_status(kind, namespace, name, status)


def test_a_baseline_that_cannot_be_recorded_leaves_the_restore_completed(
    url: str, store: Path, backup_id: str
) -> None:
    sql(url, "delete from roles")
    cluster = RefusingEnvironmentStatus(environment("prod", url, store), restore(backup=backup_id))
    env_before = cluster.get("Environment", "ns", "prod")
    out = run(cluster)
    assert out.status["phase"] == "Completed", out.status
    assert conditions(out)["Ready"][:2] == ("True", "Restored")
    assert events(out) == [("Normal", "Restored")]
    assert ("refused patch_status", "Environment", "prod") in cluster.calls
    assert cluster.get("Environment", "ns", "prod") == env_before
    assert shape.row_counts(url)["roles"] > 0
