"""``ferry diff``: open two sides, read each configuration table twice, compare.

The first pass indexes both sides' rows (key → digest, as the planner does), one table
at a time, so memory holds one table's two indexes at most. A second pass over the same
read snapshot picks the few changed rows that are listed, to say which columns differ.
Nothing is written, on either side.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.commands.planning import collections_of
from controller.commands.sources import open_source
from controller.engine.config_diff import (
    ConfigDiff,
    Scope,
    TableDiff,
    compare_indexes,
    compare_schema,
    config_scope,
    pick_rows,
    row_diff,
    row_plan,
)
from controller.engine.model import TableSchema
from controller.engine.profiles import Profile
from controller.engine.rowindex import build_index
from controller.engine.source import SnapshotSource
from controller.gitsource.snapshot_dir import SnapshotDirectory

_NOTED = 20  # table names named in a note


@dataclass(frozen=True)
class DiffOptions:
    profile: Profile = Profile.NOCOBASE
    tables: tuple[str, ...] = ()  # globs narrowing the configuration tables


def diff(src_spec: str, dst_spec: str, options: DiffOptions) -> ConfigDiff:
    """Compare what ``src_spec`` and ``dst_spec`` name (anything ``open_source`` opens)."""
    with open_source(src_spec) as src, open_source(dst_spec) as dst:
        return compare(src, dst, options)


def compare(src: SnapshotSource, dst: SnapshotSource, options: DiffOptions) -> ConfigDiff:
    s_schema, d_schema = src.schema(), dst.schema()
    collections: list[str] = []
    if options.profile is Profile.NOCOBASE:
        collections = collections_of(src, s_schema) + collections_of(dst, d_schema)
    scope = config_scope(
        options.profile, set(s_schema.tables) | set(d_schema.tables), collections, options.tables
    )
    both = [n for n in scope.categories if n in s_schema.tables and n in d_schema.tables]
    tables = tuple(_table(src, dst, s_schema.tables[n], d_schema.tables[n], scope) for n in both)
    return ConfigDiff(
        src=src.label,
        dst=dst.label,
        src_dialect=s_schema.dialect,
        dst_dialect=d_schema.dialect,
        profile=options.profile.value,
        only_in_src=tuple(n for n in scope.categories if n not in d_schema.tables),
        only_in_dst=tuple(n for n in scope.categories if n not in s_schema.tables),
        tables=tables,
        notes=_notes(scope, options.profile),
    )


def _notes(scope: Scope, profile: Profile) -> tuple[str, ...]:
    if not scope.left_out:
        return ()
    names = ", ".join(scope.left_out[:_NOTED])
    more = f" … and {len(scope.left_out) - _NOTED} more" if len(scope.left_out) > _NOTED else ""
    return (
        f"{len(scope.left_out)} table(s) are not configuration under the {profile.value} "
        f"profile and were not compared: {names}{more}",
    )


def _without_rows(source: SnapshotSource, table: str) -> bool:
    """A snapshot directory keeps rows only of the tables its export carried rows for;
    a table it holds as structure only has unknown rows, not zero rows."""
    return isinstance(source, SnapshotDirectory) and not source.has_rows(table)


def _skipped(src: SnapshotSource, dst: SnapshotSource, name: str, scope: Scope) -> str:
    if name not in scope.rows:
        category = scope.categories[name]
        return "the builders' data" if category == "user" else f"{category} data"
    for side, source in (("SRC", src), ("DST", dst)):
        if _without_rows(source, name):
            return f"{side} is a snapshot holding this table's structure only"
    return ""


def _table(
    src: SnapshotSource, dst: SnapshotSource, s: TableSchema, d: TableSchema, scope: Scope
) -> TableDiff:
    schema = compare_schema(s, d)
    category = scope.categories[s.name]
    skipped = _skipped(src, dst, s.name, scope)
    if skipped:
        return TableDiff(s.name, category, schema, None, skipped)
    plan = row_plan(s, d)
    if not plan.columns:
        return TableDiff(s.name, category, schema, None, "the two sides share no column")
    indexes = (
        build_index(plan.src_shape, src.batches(s.name, plan.columns)),
        build_index(plan.dst_shape, dst.batches(s.name, plan.columns)),
    )
    result = compare_indexes(*indexes)
    wanted = result.listed_changed()
    rows = (
        pick_rows(plan.src_shape, src.batches(s.name, plan.columns), wanted),
        pick_rows(plan.dst_shape, dst.batches(s.name, plan.columns), wanted),
    )
    return TableDiff(s.name, category, schema, row_diff(plan, result, indexes, rows))
