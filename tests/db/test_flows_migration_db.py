"""The Migration flow's branches that only a real PostgreSQL or MariaDB server reaches:
a type conflict the schema refuses (SQLite keeps any value in any column, so there it
is a warning), and a failure after MariaDB committed schema changes with no backup to
restore (there the transaction cannot undo everything: ApplyFailed)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.db.dbhelpers import dump, execute, q
from tests.unit.fake_cluster import FakeCluster
from tests.unit.test_flows_migration import READY, conditions_of, migration
from tests.unit.test_flows_migration_errors import fail_at, run

MakeDb = Callable[..., str]
GENERIC_RULES = {"user": "overwrite"}


def generic_env(name: str, dialect: str, url: str) -> dict[str, Any]:
    return {
        "kind": "Environment",
        "metadata": {"name": name},
        "spec": {
            "stage": "development",
            "profile": "generic",
            "database": {"dialect": dialect, "url": url},
        },
        "status": READY,
    }


def two_databases(
    make_database: MakeDb, dialect: str, source: tuple[str, str], target_type: str
) -> tuple[FakeCluster, str]:
    """``items`` in both; the source's ``amount`` is ``source`` (type, literal) and it
    has a ``note`` column the target lacks."""
    source_type, value = source
    src, tgt = make_database(dialect, "src"), make_database(dialect, "tgt")
    t = q(dialect, "items")
    execute(
        src,
        f"create table {t} (id integer primary key, amount {source_type}, note varchar(20))",
        f"insert into {t} values (1, {value}, 'new')",
    )
    execute(
        tgt,
        f"create table {t} (id integer primary key, amount {target_type})",
        f"insert into {t} values (1, 5)",
    )
    cluster = FakeCluster(generic_env("dev", dialect, src), generic_env("pre", dialect, tgt))
    return cluster, tgt


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_a_type_conflict_without_allow_destructive_is_refused(
    dialect: str, make_database: MakeDb
) -> None:
    cluster, tgt = two_databases(make_database, dialect, ("varchar(10)", "'abc'"), "integer")
    before = dump(tgt)
    cluster.add(migration("m", rules=GENERIC_RULES))
    status, events, delay = run(cluster, "m")
    assert status["phase"] == "Failed", status
    assert status["message"] == (
        "items.amount: type differs (source string(10), target integer); "
        "converting it needs allowDestructive"
    )
    assert conditions_of(status)["Stalled"] == ("True", "SchemaConflict")
    assert conditions_of(status)["Applied"] == ("False", "SchemaConflict")
    assert events == [("Warning", "SchemaConflict", status["message"])]
    assert delay is None and "plan" not in status
    assert dump(tgt) == before
    # With allowDestructive the same promotion goes through.
    cluster.add(migration("m2", rules={**GENERIC_RULES, "allowDestructive": True}))
    assert run(cluster, "m2")[0]["phase"] == "Succeeded"


def test_a_failure_after_mariadb_committed_schema_without_a_backup_is_apply_failed(
    make_database: MakeDb,
) -> None:
    cluster, tgt = two_databases(make_database, "mysql", ("integer", "7"), "integer")
    cluster.add(migration("m", rules=GENERIC_RULES, backup={"skip": True}))
    status, events, delay = run(cluster, "m", fail_at("verify"))
    message = (
        "failpoint verify: injected failure; schema changes were committed by "
        "MySQL/MariaDB before the failure and no pre-migration backup was taken; "
        "row changes were rolled back"
    )
    assert status["phase"] == "Failed", status
    assert status["message"] == message
    for condition in ("Stalled", "Ready", "Applied"):
        assert conditions_of(status)[condition][1] == "ApplyFailed"
    assert conditions_of(status)["Stalled"][0] == "True"
    assert events == [("Warning", "ApplyFailed", message)]
    assert delay is None
    assert status["backup"] == {"skipped": "spec.backup.skip"}
    # What the message says: the new column exists, the rows are as they were.
    after = dump(tgt)
    assert [c for c, _ in after["items"]["columns"]] == ["id", "amount", "note"]
    assert after["items"]["rows"] == [(1, 5, None)]
