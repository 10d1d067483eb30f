"""``ferry diff``'s engine: scope, schema and row differences, masking, rendering.

Two in-memory snapshots (the ``SnapshotSource`` protocol the engine reads, holding
rows as a database driver returns them) are compared through
``controller.commands.diff.compare``, the same function the command line runs.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.commands.diff import DiffOptions, compare
from controller.engine.config_diff import (
    LIMIT,
    MASK,
    ConfigDiff,
    compare_schema,
    config_scope,
    excerpts,
    show_value,
)
from controller.engine.model import Column, ColumnType, DatabaseSchema, Index, Kind, TableSchema
from controller.engine.profiles import Profile
from controller.engine.render_diff import diff_json, diff_markdown, diff_text
from controller.engine.source import Batch
from controller.errors import InvalidInput

INT = ColumnType(Kind.INTEGER)
BIG = ColumnType(Kind.BIGINT)
TEXT = ColumnType(Kind.TEXT)
S255 = ColumnType(Kind.STRING, length=255)
JSON = ColumnType(Kind.JSON)
TS = ColumnType(Kind.DATETIME)
TSZ = ColumnType(Kind.DATETIMETZ)


def table(name: str, *cols: tuple[str, ColumnType], pk: tuple[str, ...] = ("id",)) -> TableSchema:
    return TableSchema(name, tuple(Column(n, t) for n, t in cols), primary_key=pk)


@dataclass
class Memory:
    """Rows as dicts per table, streamed in small batches like a reader does."""

    tables: dict[str, TableSchema]
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    label: str = "mem"
    reads: Counter[str] = field(default_factory=Counter)

    def schema(self) -> DatabaseSchema:
        return DatabaseSchema("sqlite", "3", dict(self.tables))

    def batches(self, name: str, columns: Sequence[str]) -> Iterator[Batch]:
        self.reads[name] += 1
        rows = [tuple(r.get(c) for c in columns) for r in self.rows.get(name, [])]
        for i in range(0, len(rows), 3):
            yield rows[i : i + 3]


def diff_of(src: Memory, dst: Memory, profile: Profile = Profile.GENERIC) -> ConfigDiff:
    return compare(src, dst, DiffOptions(profile=profile))


ROLES = table("roles", ("id", INT), ("name", S255), ("options", JSON))


def roles(*rows: tuple[int, str, Any]) -> Memory:
    return Memory(
        {"roles": ROLES},
        {"roles": [{"id": i, "name": n, "options": o} for i, n, o in rows]},
    )


def test_rows_only_on_one_side_and_changed_columns() -> None:
    src = roles((1, "root", {"a": 1}), (2, "admin", {"a": 2}), (3, "new", None))
    dst = roles((1, "root", {"a": 1}), (2, "Admin", {"a": 3}), (4, "old", None))
    t = diff_of(src, dst).tables[0]
    assert t.rows is not None
    assert (t.rows.same, t.rows.only_src, t.rows.only_dst, t.rows.changed) == (1, 1, 1, 1)
    assert t.rows.only_src_keys == (("3",),) and t.rows.only_dst_keys == (("4",),)
    (change,) = t.rows.changed_rows
    assert change.key == ("2",)
    assert [(c.column, c.src, c.dst) for c in change.columns] == [
        ("name", '"admin"', '"Admin"'),
        ("options", '{"a":2}', '{"a":3}'),
    ]
    text = diff_text(diff_of(src, dst))
    assert "- id=3" in text and "+ id=4" in text
    assert '~ id=2: name: "admin" → "Admin"; options: {"a":2} → {"a":3}' in text


def test_equal_sides_and_values_equal_in_meaning() -> None:
    """Values that mean the same (a JSON text and its object, an integer and its
    string, a naive and a UTC datetime) are no difference: the planner's canonical forms."""
    t = table("t", ("id", INT), ("n", INT), ("j", JSON), ("at", TS))
    src = Memory(
        {"t": t},
        {"t": [{"id": 1, "n": 5, "j": '{"b": 1, "a": [1]}', "at": "2026-01-15 09:30:00"}]},
    )
    dst = Memory(
        {"t": t},
        {"t": [{"id": "1", "n": "5", "j": {"a": [1], "b": 1}, "at": "2026-01-15T09:30:00Z"}]},
    )
    diff = diff_of(src, dst)
    assert diff.equal and diff.totals["rowsSame"] == 1
    assert "equal: the configuration compared is the same" in diff_text(diff)
    assert "\n  roles" not in diff_text(diff, verbose=True)
    assert "t (by id): 0 only in SRC, 0 only in DST, 0 changed, 1 same" in diff_text(
        diff, verbose=True
    )


def test_tables_only_on_one_side() -> None:
    src = Memory({"a": table("a", ("id", INT)), "b": table("b", ("id", INT))})
    dst = Memory({"b": table("b", ("id", INT)), "c": table("c", ("id", INT))})
    diff = diff_of(src, dst)
    assert (diff.only_in_src, diff.only_in_dst) == (("a",), ("c",))
    assert [t.table for t in diff.tables] == ["b"] and not diff.equal


def test_schema_differences_both_ways() -> None:
    src = TableSchema(
        "t",
        (Column("id", INT), Column("name", S255), Column("at", TSZ), Column("only_src", BIG)),
        primary_key=("id",),
        indexes=(Index("ix_name", ("name",)),),
    )
    dst = TableSchema(
        "t",
        (Column("id", BIG), Column("name", TEXT), Column("at", TS), Column("only_dst", TEXT)),
        primary_key=("id",),
        indexes=(Index("ix_other", ("only_dst",), unique=True),),
    )
    described = [d.describe() for d in compare_schema(src, dst)]
    assert described == [
        "column only_src only in SRC: bigint",
        "column only_dst only in DST: text",
        "column id: SRC integer, DST bigint",
        "column name: SRC string(255), DST text",
        "index ix_name only in SRC: (name)",
        "index ix_other only in DST: unique (only_dst)",
    ]
    assert compare_schema(src, src) == ()  # and datetime against datetimetz is none above


def test_rows_compared_on_common_columns_when_schema_differs() -> None:
    """A column only one side has is a schema difference, not a change of every row."""
    src_t = table("t", ("id", INT), ("a", TEXT), ("extra", TEXT))
    dst_t = table("t", ("id", INT), ("a", TEXT))
    src = Memory({"t": src_t}, {"t": [{"id": 1, "a": "x", "extra": "e"}]})
    dst = Memory({"t": dst_t}, {"t": [{"id": 1, "a": "x"}]})
    (t,) = diff_of(src, dst).tables
    assert t.rows is not None and t.rows.equal and t.rows.compared == ("id", "a")
    assert [d.what for d in t.schema] == ["column"] and not t.equal


def test_different_primary_keys_compare_as_multisets() -> None:
    src = Memory({"t": table("t", ("id", INT), ("k", TEXT))}, {"t": [{"id": 1, "k": "a"}]})
    dst = Memory(
        {"t": table("t", ("id", INT), ("k", TEXT), pk=("k",))}, {"t": [{"id": 1, "k": "a"}]}
    )
    (t,) = diff_of(src, dst).tables
    assert t.rows is not None and t.rows.key == () and t.rows.same == 1
    assert [d.what for d in t.schema] == ["primary-key"]
    assert "primary key: SRC (id), DST (k)" in diff_text(diff_of(src, dst))


def test_keyless_rows_are_multisets() -> None:
    t = table("t", ("v", TEXT), pk=())
    src = Memory({"t": t}, {"t": [{"v": "a"}, {"v": "a"}, {"v": "b"}]})
    dst = Memory({"t": t}, {"t": [{"v": "a"}, {"v": "b"}, {"v": "b"}, {"v": "c"}]})
    (td,) = diff_of(src, dst).tables
    assert td.rows is not None
    assert (td.rows.same, td.rows.only_src, td.rows.only_dst, td.rows.changed) == (2, 1, 2, 0)
    assert "no common key: whole rows compared" in diff_text(diff_of(src, dst))


def test_listing_is_bounded_and_says_how_many_more() -> None:
    n = LIMIT + 7
    src = roles(*[(i, f"r{i}", None) for i in range(n)])
    dst = roles(*[(i, f"R{i}", None) for i in range(n)], *[(1000 + i, "x", None) for i in range(n)])
    (t,) = diff_of(src, dst).tables
    assert t.rows is not None
    assert len(t.rows.changed_rows) == LIMIT and len(t.rows.only_dst_keys) == LIMIT
    assert (t.rows.changed, t.rows.only_dst) == (n, n)
    text = diff_text(diff_of(src, dst))
    assert text.count("… and 7 more") == 2
    assert text.count("\n    ~ ") == LIMIT


def test_only_listed_rows_are_read_again() -> None:
    """The second pass runs once per side and table, and only when a row changed."""
    src = roles((1, "a", None))
    dst = roles((1, "b", None))
    diff_of(src, dst)
    assert (src.reads["roles"], dst.reads["roles"]) == (2, 2)
    same_a, same_b = roles((1, "a", None)), roles((1, "a", None))
    diff_of(same_a, same_b)
    assert (same_a.reads["roles"], same_b.reads["roles"]) == (1, 1)


SECRETS = [  # (column, value, a fragment of the secret that must never be printed)
    ("password", "hunter2-literal", "hunter2"),
    ("options", '{"auth": {"clientSecret": "cs-literal-9876"}}', "9876"),
    ("options", {"nested": [{"apiKey": "ak-literal-5555"}]}, "5555"),
    ("url", "postgres://app:pw-literal-4321@db/app", "4321"),
    ("note", "AKIAABCDEFGHIJKLMNOP", "ABCDEFGHIJ"),
    ("description", '{"smtp": {"pass": "x", "password": "mail-pw-2468"}}', "2468"),
]


@pytest.mark.parametrize(("column", "value", "fragment"), SECRETS)
def test_secret_values_are_masked_everywhere(column: str, value: Any, fragment: str) -> None:
    t = table("t", ("id", INT), (column, JSON if column == "options" else TEXT))
    src = Memory({"t": t}, {"t": [{"id": 1, column: value}]})
    dst = Memory({"t": t}, {"t": [{"id": 1, column: "{{$env.REF}}"}]})
    diff = diff_of(src, dst)
    (change,) = diff.tables[0].rows.changed_rows  # type: ignore[union-attr]
    assert change.columns[0].src == MASK and "$env.REF" in change.columns[0].dst
    for out in (diff_text(diff), diff_json(diff), diff_markdown(diff)):
        assert MASK in out and fragment not in out


def test_a_secret_shaped_key_is_masked() -> None:
    t = table("tokens", ("token", TEXT), ("v", INT), pk=("token",))
    src = Memory({"tokens": t}, {"tokens": [{"token": "ghp_" + "a" * 36, "v": 1}]})
    dst = Memory({"tokens": t}, {"tokens": []})
    out = diff_text(diff_of(src, dst))
    assert f"- token={MASK}" in out and "ghp_" not in out


def test_long_values_are_shown_where_they_differ() -> None:
    a = json.dumps({"x": "y" * 200, "z": "before"})
    b = json.dumps({"x": "y" * 200, "z": "after"})
    sa, sb = excerpts(show_value("schema", a, JSON), show_value("schema", b, JSON))
    assert "before" in sa and "after" in sb and sa.startswith("…") and len(sa) < 100


def test_hostile_names_and_values_cannot_forge_output() -> None:
    name = "t\x1b[31m|`</details><script>"
    t = table(name, ("id", INT), ("v", TEXT))
    src = Memory({name: t}, {name: [{"id": 1, "v": "a\nb\x1b]0;x\x07 | ``` </details>"}]})
    dst = Memory({name: t}, {name: [{"id": 1, "v": "<img src=x onerror=alert(1)>"}]})
    diff = diff_of(src, dst)
    text, md = diff_text(diff), diff_markdown(diff)
    assert "\x1b" not in text + md and "\x07" not in text + md
    assert all(line.startswith(("Diff", "  ")) for line in text.split("\n"))
    outside_code = re.sub(r"(`+).+?\1", "", md)  # code spans show their text verbatim
    for own in ("<details>", "<summary>", "</summary>", "</details>"):
        outside_code = outside_code.replace(own, "")
    assert "<" not in outside_code and ">" not in outside_code.replace("→", "")
    table_rows = [line for line in md.split("\n") if line.startswith("| `")]
    assert len(table_rows) == 1 and len(re.findall(r"(?<!\\)\|", table_rows[0])) == 7
    assert json.loads(diff_json(diff))["tables"][0]["table"] == name


def test_scope_nocobase_configuration_only() -> None:
    tables = ["roles", "uiSchemas", "users", "orders", "stray", "ferry_migrations", "migrations"]
    tables += ["lcCheckpoints", "environmentVariables"]
    scope = config_scope(Profile.NOCOBASE, tables, collections=["orders"])
    assert set(scope.categories) == set(tables) - {"stray", "ferry_migrations"}
    assert scope.rows == {"roles", "uiSchemas"}  # not business, user, bookkeeping or secrets
    assert scope.left_out == ("ferry_migrations", "stray")
    generic = config_scope(Profile.GENERIC, tables)
    assert generic.rows == set(tables) - {"ferry_migrations"}


def test_scope_tables_globs_narrow_and_typos_are_refused() -> None:
    tables = ["roles", "rolesResources", "uiSchemas", "users"]
    scope = config_scope(Profile.NOCOBASE, tables, patterns=["roles*", "users"])
    assert set(scope.categories) == {"roles", "rolesResources", "users"}
    with pytest.raises(InvalidInput, match="rols"):
        config_scope(Profile.NOCOBASE, tables, patterns=["rols"])
    with pytest.raises(InvalidInput, match="no configuration table"):
        config_scope(Profile.NOCOBASE, [*tables, "stray"], patterns=["stray"])


def test_business_rows_are_not_compared_under_nocobase() -> None:
    users = table("users", ("id", INT), ("password", TEXT))
    src = Memory({"users": users}, {"users": [{"id": 1, "password": "a"}]})
    dst = Memory({"users": users}, {"users": [{"id": 2, "password": "b"}]})
    diff = diff_of(src, dst, Profile.NOCOBASE)
    (t,) = diff.tables
    assert t.rows is None and t.rows_skipped == "business data" and diff.equal
    assert src.reads["users"] == 0
    assert not diff_of(src, dst, Profile.GENERIC).equal


keyed = st.dictionaries(st.integers(0, 30), st.sampled_from(["a", "b", None]), max_size=25)


@settings(max_examples=80, deadline=None)
@given(keyed, keyed)
def test_counts_follow_set_arithmetic_and_swap_with_the_sides(
    a: dict[int, str | None], b: dict[int, str | None]
) -> None:
    src, dst = (
        roles(*[(k, "n", v) for k, v in a.items()]),
        roles(*[(k, "n", v) for k, v in b.items()]),
    )
    rows = diff_of(src, dst).tables[0].rows
    back = diff_of(dst, src).tables[0].rows
    assert rows is not None and back is not None
    assert rows.only_src == len(a.keys() - b.keys()) and rows.only_dst == len(b.keys() - a.keys())
    assert rows.changed == sum(1 for k in a.keys() & b.keys() if a[k] != b[k])
    assert rows.same == len(a.keys() & b.keys()) - rows.changed
    assert (back.only_src, back.only_dst, back.changed) == (
        rows.only_dst,
        rows.only_src,
        rows.changed,
    )
    assert diff_of(src, src).equal


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from("abc"), max_size=12), st.lists(st.sampled_from("abc"), max_size=12))
def test_keyless_counts_are_multiset_differences(a: list[str], b: list[str]) -> None:
    t = table("t", ("v", TEXT), pk=())
    src = Memory({"t": t}, {"t": [{"v": v} for v in a]})
    dst = Memory({"t": t}, {"t": [{"v": v} for v in b]})
    rows = diff_of(src, dst).tables[0].rows
    assert rows is not None
    assert rows.only_src == (Counter(a) - Counter(b)).total()
    assert rows.only_dst == (Counter(b) - Counter(a)).total()
    assert rows.same == (Counter(a) & Counter(b)).total()
