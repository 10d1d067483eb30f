"""A full promotion between PostgreSQL servers copies the source's COPY data straight
into a table that held no rows when planned (controller/db/writer.py,
``TableWriter.write_copied``); a table that held rows is staged and applied as before.
Either way a failure after the COPY leaves the target as it was."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa

from controller.api.rules import parse_rules
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions
from controller.db import staging
from controller.engine.profiles import Profile
from controller.errors import PermanentError
from tests.db.dbhelpers import dump, execute

MakeDb = Callable[..., str]
DDL = "create table items (id bigserial primary key, doc jsonb, note text, n integer)"
FILL = (
    "insert into items (id, doc, note, n) select i, jsonb_build_object('i', i, 'f', i / 3.0), "
    "'n' || i, i from generate_series({}, {}) i"
)
OPTIONS = PlanOptions(parse_rules({"user": "overwrite"}), Profile.GENERIC)


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which way each table's COPY data went: "table" (straight in) or "staged"."""
    seen: list[str] = []
    into, rows = staging.Staging.copy_into_table, staging.Staging.copy_rows

    def copy_into_table(self: staging.Staging, chunks: Iterator[bytes], **kw: Any) -> int:
        seen.append("table")
        return into(self, chunks, **kw)

    def copy_rows(self: staging.Staging, chunks: Iterator[bytes], **kw: Any) -> None:
        seen.append("staged")
        rows(self, chunks, **kw)

    monkeypatch.setattr(staging.Staging, "copy_into_table", copy_into_table)
    monkeypatch.setattr(staging.Staging, "copy_rows", copy_rows)
    return seen


def _pair(make_database: MakeDb, target_rows: int) -> tuple[str, str]:
    src, tgt = make_database("postgresql", "src"), make_database("postgresql", "tgt")
    execute(src, DDL, FILL.format(1, 3000))
    execute(tgt, DDL, *([FILL.format(1, target_rows)] if target_rows else []))
    return src, tgt


def test_into_an_empty_table_the_copy_goes_straight_in(
    make_database: MakeDb, paths: list[str]
) -> None:
    src, tgt = _pair(make_database, 0)
    result = migrate(MigrationRequest(src, tgt, OPTIONS))
    assert result.status == "succeeded", result.message
    assert result.plan is not None and result.plan.totals["insert"] == 3000
    assert paths == ["table"]
    assert dump(tgt)["items"]["rows"] == dump(src)["items"]["rows"]
    assert not plan_only(src, tgt, OPTIONS).plan.changes_anything
    execute(tgt, "insert into items (note) values ('next')")  # the sequence moved on
    engine = sa.create_engine(tgt)
    try:
        with engine.connect() as conn:
            assert (
                conn.execute(sa.text("select id from items where note = 'next'")).scalar() == 3001
            )
    finally:
        engine.dispose()


def test_a_table_that_held_rows_is_staged(make_database: MakeDb, paths: list[str]) -> None:
    src, tgt = _pair(make_database, 10)
    result = migrate(MigrationRequest(src, tgt, OPTIONS))
    assert result.status == "succeeded", result.message
    assert paths == ["staged"]
    assert dump(tgt)["items"]["rows"] == dump(src)["items"]["rows"]


def _fail_at(step: str, seen: list[str], at: str) -> None:
    seen.append(at)
    if at == step:
        raise PermanentError(f"injected at {at}")


@pytest.mark.parametrize("step", ["rows:items", "staged:items", "verify", "ledger"])
def test_a_failure_after_the_copy_into_the_table_leaves_it_untouched(
    make_database: MakeDb, paths: list[str], step: str
) -> None:
    """Every step after the COPY into the table, before the commit: the sequence fix,
    the verification, the ledger row."""
    src, tgt = _pair(make_database, 0)
    before = dump(tgt)
    seen: list[str] = []
    result = migrate(MigrationRequest(src, tgt, OPTIONS, fault=partial(_fail_at, step, seen)))
    assert paths == ["table"] and step in seen
    assert result.status == "rolled-back" and result.target_untouched, result.message
    after = dump(tgt)
    assert after.pop("ferry_migrations")["rows"]  # the failure is recorded, nothing else
    assert after == before


def test_a_row_another_session_adds_meanwhile_fails_the_copy(
    make_database: MakeDb, paths: list[str]
) -> None:
    """The table was empty when planned; a row written since by a session that ignores
    Ferry's lock makes the COPY fail (its key is taken) or the counts differ: nothing
    of the promotion stays."""
    src, tgt = _pair(make_database, 0)

    def fault(step: str) -> None:
        if step == "schema":  # after planning, before the rows are written
            execute(tgt, "insert into items (id, note) values (7, 'meanwhile')")

    result = migrate(MigrationRequest(src, tgt, OPTIONS, fault=fault))
    assert paths == ["table"]
    assert result.status == "rolled-back" and result.target_untouched, result.message
    assert "writing items: duplicate key value" in result.message
    engine = sa.create_engine(tgt)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text("select id, note from items")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [(7, "meanwhile")]
