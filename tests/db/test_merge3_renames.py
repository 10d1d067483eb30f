"""A row renamed since the base (its natural key changed) merges as one changed row on
every dialect, paired through the IDs a base of format 2 records; a base of format 1
still merges by key, as before, and says nothing it cannot know."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace

import pytest
import zstandard

from controller.api.rules import Rule, TableRule
from controller.commands import merging
from controller.engine.merge3 import Rows
from controller.errors import CheckFailed
from tests.db import test_merge3
from tests.db.dbhelpers import rows
from tests.db.test_merge3 import Release, _options

release = test_merge3.release  # the fixture: a target, two teams, each with its base


def _format_1(migration_id: str, tables: Mapping[str, Rows], ids: object = None) -> bytes:
    """A base as format 1 stored it: rows by key, no IDs."""
    doc = {
        "format": 1,
        "migration": migration_id,
        "tables": {
            n: [[list(k), dict(v)] for k, v in sorted(r.items())] for n, r in tables.items()
        },
    }
    return zstandard.ZstdCompressor().compress(json.dumps(doc, sort_keys=True).encode())


def _b_edits_home(rel: Release, column: str, value: str) -> None:
    rel.sql(rel.b, f"update `pages` set {column} = '{value}' where name = 'home'")
    assert rel.promote(rel.b).status == "succeeded"


def test_a_rename_on_one_side_and_an_edit_on_the_other_merge_as_one_row(
    release: Release,
) -> None:
    rel = release
    _b_edits_home(rel, "body", "b1")
    rel.sql(rel.a, "update `pages` set name = 'start' where name = 'home'")
    result = rel.promote(rel.a)
    assert result.status == "succeeded", result.message
    assert rel.pages() == {
        "start": ("Home", "b1"),  # A's name, B's body: one row, merged column by column
        "about": ("About", "a0"),
        "contact": ("Contact", "c0"),
    }
    assert dict(rows(rel.target, "pages", "name", "id"))["start"] == 1  # the row keeps its ID
    assert result.plan is not None
    pages = result.plan.table("pages")
    assert pages is not None and pages.merge is not None
    # merged as one row; written, as rows matched by a natural key are, under its new
    # key: the old key's row deleted, the new one inserted with the same ID
    assert (pages.merge.merged, pages.merge.conflicts) == (1, ())
    assert (pages.insert, pages.update, pages.delete) == (1, 0, 1)
    # promoted again: the new base holds the new name, nothing is left to do
    assert not rel.plan(rel.a, _options()).changes_anything


def test_a_rename_and_an_edit_of_one_column_on_both_sides_conflict_in_that_column(
    release: Release,
) -> None:
    rel = release
    _b_edits_home(rel, "title", "Home B")
    rel.sql(rel.a, "update `pages` set name = 'start', title = 'Start' where name = 'home'")
    with pytest.raises(CheckFailed) as refused:
        rel.plan(rel.a, _options())
    assert refused.value.reason == "MergeConflict"
    assert refused.value.problems == [
        'table pages, key (\'home\'), column title: base "Home", source "Start", target "Home B"'
    ]


def test_renamed_on_both_sides_differently_is_a_conflict_on_the_key_column(
    release: Release,
) -> None:
    rel = release
    _b_edits_home(rel, "name", "main")
    rel.sql(rel.a, "update `pages` set name = 'start' where name = 'home'")
    with pytest.raises(CheckFailed) as refused:
        rel.plan(rel.a, _options())
    assert refused.value.problems == [
        'table pages, key (\'home\'), column name: base "home", source "start", target "main"'
    ]


def test_a_rename_onto_a_key_another_row_holds_is_merged_by_key_and_the_plan_says_so(
    release: Release,
) -> None:
    """A renames home to about's name after deleting about: pairing by ID and by key
    would disagree, so the rows are merged by key, as with a base of format 1."""
    rel = release
    rel.sql(
        rel.a,
        "delete from `pages` where name = 'about'",
        "update `pages` set name = 'about' where name = 'home'",
    )
    plan = rel.plan(rel.a, _options())
    assert (
        "pages: renamed since the base, but another row holds the old or new key, so merged "
        "by key: ('home')"
    ) in plan.warnings


def test_a_table_whose_ids_another_table_keys_on_is_merged_by_key(release: Release) -> None:
    """``blocks`` are keyed by (their page's ID, name): their rows were paired by keys
    made of the page IDs as they were, so a renamed page is not re-paired by ID."""
    rel = release
    pk = "integer primary key"
    for url in (rel.target, rel.a, rel.b):
        rel.sql(
            url,
            f"create table `blocks` (id {pk}, pageid integer, name varchar(40), body varchar(40))",
            "insert into `blocks` values (1, 1, 'intro', 'x')",
        )
    blocks = TableRule(
        "blocks", Rule.UPSERT, key=("pageid", "name"), references=(("pageid", "pages"),)
    )
    options = replace(
        _options(), rules=replace(_options().rules, tables=(*_options().rules.tables, blocks))
    )
    assert rel.promote(rel.a, options).status == "noop"  # a base that holds blocks
    rel.sql(rel.a, "update `pages` set name = 'start' where name = 'home'")
    plan = rel.plan(rel.a, options)
    assert (
        "pages: renamed since the base, but another table's key holds its IDs, so merged "
        "by key: ('home')"
    ) in plan.warnings


def test_a_base_of_format_1_still_merges_by_key(
    release: Release, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its rows have no IDs: A's rename is a deletion of home, which B changed: the
    conflict on the row that merging by key has always reported, never a guess."""
    rel = release
    monkeypatch.setattr(merging, "encode_base", _format_1)
    assert rel.promote(rel.a).status == "noop"  # A's base is now of format 1
    monkeypatch.undo()
    _b_edits_home(rel, "body", "b1")
    rel.sql(rel.a, "update `pages` set name = 'start' where name = 'home'")
    with pytest.raises(CheckFailed) as refused:
        rel.plan(rel.a, _options())
    assert refused.value.problems == [
        "table pages, key ('home'), the row: base (the row), source (deleted), target (changed)"
    ]
