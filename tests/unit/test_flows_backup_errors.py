"""The Backup flow's failures while taking the backup, reached for real: a database that
cannot be read (a damaged table: BackupFailed; a file that is no database at all), a
store that cannot take a backup (StoreUnusable), and a store whose key Secret is
malformed. Each fails once, with the reason in the condition and the event, and leaves
nothing in the store.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.unit.fake_cluster import FakeCluster
from tests.unit.test_flows_backup import (
    assert_failed,
    backup,
    environment,
    run,
    stored,
)


def damage_table(url: str, table: str) -> None:
    """Overwrite the root page of ``table``: the file opens, the schema reads, the
    table's rows do not (``database disk image is malformed``)."""
    path = url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        (page_size,) = conn.execute("pragma page_size").fetchone()
        (root,) = conn.execute(
            "select rootpage from sqlite_master where name = ?", (table,)
        ).fetchone()
    with open(path, "r+b") as f:
        f.seek((root - 1) * page_size)
        f.write(b"\xff" * page_size)


@pytest.mark.parametrize("table", ["uiSchemas", "roles"])
def test_a_table_that_cannot_be_read_fails_the_backup(url: str, store: Path, table: str) -> None:
    damage_table(url, table)
    out = run(FakeCluster(environment(url, store), backup()))
    assert_failed(out, "BackupFailed", f"reading {table} from sqlite:///")
    assert out.status["message"].endswith("database disk image is malformed")
    assert stored(store) == []  # the partial backup was removed


def test_a_file_that_is_no_database_fails_the_backup(url: str, store: Path) -> None:
    Path(url.removeprefix("sqlite:///")).write_bytes(b"not a database " * 512)
    out = run(FakeCluster(environment(url, store), backup()))
    # The database's own refusal names the fault, not the table selection.
    assert_failed(out, "NotADatabase", "reading the schema of sqlite:///")
    assert out.status["message"].endswith("file is not a database")
    assert stored(store) == []


@pytest.mark.parametrize("under", ["file", "file/deeper"])
def test_a_store_under_a_regular_file_is_unusable(url: str, tmp_path: Path, under: str) -> None:
    (tmp_path / "file").write_text("a regular file where a directory should be\n")
    root = tmp_path / under
    out = run(FakeCluster(environment(url, root), backup()))
    assert_failed(out, "StoreUnusable", f"backup store {root} cannot take a backup: ")
    assert (tmp_path / "file").read_text() == "a regular file where a directory should be\n"


def keyed_environment(url: str, store: Path) -> dict[str, Any]:
    env = environment(url, store)
    env["spec"]["backups"]["store"]["keyFrom"] = {
        "secretKeyRef": {"name": "store-key", "key": "keyring"}
    }
    return env


@pytest.mark.parametrize(
    "value",
    ["", "short", "{not json", '{"keys": {}, "current": "k1"}'],
)
def test_a_malformed_store_key_fails_without_showing_it(url: str, store: Path, value: str) -> None:
    cluster = FakeCluster(
        keyed_environment(url, store), backup(), secrets={"store-key": {"keyring": value}}
    )
    out = run(cluster)
    assert_failed(out, "InvalidEnvironment", "Secret ns/store-key key keyring")
    if len(value) > 3:
        assert value not in out.status["message"]
    assert stored(store) == []
