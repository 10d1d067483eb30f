"""How two environments' configuration differs: tables, schema and rows, without rules.

``ferry plan`` answers "what would a promotion change?"; ``ferry diff`` answers "how
do these two differ?", symmetrically and without a rules file. Both read rows through
:class:`~controller.engine.rowindex.RowShape` and compare them with
:func:`~controller.engine.rowdiff.diff_rows`, and both compare structure with
:mod:`~controller.engine.schema_diff`, so a diff and a plan never disagree on whether a
row or a column differs.

What is kept is bounded: per table the counts, the first :data:`LIMIT` keys of each
kind of difference and, for the first :data:`LIMIT` changed rows, which columns differ.
Values are shown shortened, and masked wherever the secret scanner would flag them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from controller.api.rules import Rule, RulesSpec
from controller.engine.catalog import Category
from controller.engine.model import Column, ColumnType, Kind, TableSchema
from controller.engine.profiles import Profile, classify
from controller.engine.rowdiff import diff_rows
from controller.engine.rowindex import CanonKey, RowIndex, RowShape
from controller.engine.rules import resolve_rules
from controller.engine.schema_diff import AddColumn, AddIndex, compare_types, diff_table
from controller.engine.secret_scan import secret_paths
from controller.engine.values import canonical, json_text
from controller.errors import InvalidInput

LIMIT = 20  # keys listed per table and kind of difference
MASK = "******"
_WIDTH = 60  # characters of a value shown


@dataclass(frozen=True)
class SchemaDifference:
    """One structural difference of a table present on both sides."""

    what: str  # "column" | "type" | "index" | "primary-key"
    name: str  # the column or index ("" for the primary key)
    src: str | None  # how SRC has it; None: SRC lacks it
    dst: str | None

    def describe(self) -> str:
        label = {"column": "column ", "type": "column ", "index": "index "}.get(self.what, "")
        subject = f"{label}{printable(self.name)}" if self.name else "primary key"
        if self.src is None:
            return f"{subject} only in DST: {self.dst}"
        if self.dst is None:
            return f"{subject} only in SRC: {self.src}"
        return f"{subject}: SRC {self.src}, DST {self.dst}"

    def to_dict(self) -> dict[str, Any]:
        return {"what": self.what, "name": self.name, "src": self.src, "dst": self.dst}


@dataclass(frozen=True)
class ColumnChange:
    column: str
    src: str  # the value as shown: shortened, masked when it holds a credential
    dst: str

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "src": self.src, "dst": self.dst}


@dataclass(frozen=True)
class RowChange:
    key: tuple[str, ...]  # the key's values as shown
    columns: tuple[ColumnChange, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"key": list(self.key), "columns": [c.to_dict() for c in self.columns]}


@dataclass(frozen=True)
class RowDiff:
    """Rows of one table compared by key, or as multisets when there is no common key."""

    key: tuple[str, ...]  # () → compared as multisets of whole rows
    compared: tuple[str, ...]  # the columns both sides have
    same: int
    only_src: int
    only_dst: int
    changed: int
    only_src_keys: tuple[tuple[str, ...], ...] = ()
    only_dst_keys: tuple[tuple[str, ...], ...] = ()
    changed_rows: tuple[RowChange, ...] = ()

    @property
    def equal(self) -> bool:
        return not (self.only_src or self.only_dst or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": list(self.key),
            "comparedColumns": len(self.compared),
            "same": self.same,
            "onlyInSrc": self.only_src,
            "onlyInDst": self.only_dst,
            "changed": self.changed,
            "onlyInSrcKeys": [list(k) for k in self.only_src_keys],
            "onlyInDstKeys": [list(k) for k in self.only_dst_keys],
            "changedRows": [r.to_dict() for r in self.changed_rows],
        }


@dataclass(frozen=True)
class TableDiff:
    table: str
    category: str
    schema: tuple[SchemaDifference, ...]
    rows: RowDiff | None  # None: rows not compared (see ``rows_skipped``)
    rows_skipped: str = ""  # why rows were not compared

    @property
    def equal(self) -> bool:
        return not self.schema and (self.rows is None or self.rows.equal)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "table": self.table,
            "category": self.category,
            "equal": self.equal,
            "schema": [s.to_dict() for s in self.schema],
            "rows": self.rows.to_dict() if self.rows is not None else None,
        }
        if self.rows_skipped:
            out["rowsNotCompared"] = self.rows_skipped
        return out


@dataclass(frozen=True)
class ConfigDiff:
    src: str  # labels, never a password
    dst: str
    src_dialect: str
    dst_dialect: str
    profile: str
    only_in_src: tuple[str, ...]  # configuration tables SRC has and DST lacks
    only_in_dst: tuple[str, ...]
    tables: tuple[TableDiff, ...]  # every configuration table both sides have
    notes: tuple[str, ...] = ()

    @property
    def equal(self) -> bool:
        return not self.only_in_src and not self.only_in_dst and all(t.equal for t in self.tables)

    @property
    def totals(self) -> dict[str, int]:
        rows = [t.rows for t in self.tables if t.rows is not None]
        return {
            "tablesOnlyInSrc": len(self.only_in_src),
            "tablesOnlyInDst": len(self.only_in_dst),
            "tablesDiffering": sum(1 for t in self.tables if not t.equal),
            "tablesEqual": sum(1 for t in self.tables if t.equal),
            "schemaDifferences": sum(len(t.schema) for t in self.tables),
            "rowsOnlyInSrc": sum(r.only_src for r in rows),
            "rowsOnlyInDst": sum(r.only_dst for r in rows),
            "rowsChanged": sum(r.changed for r in rows),
            "rowsSame": sum(r.same for r in rows),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "src": self.src,
            "dst": self.dst,
            "srcDialect": self.src_dialect,
            "dstDialect": self.dst_dialect,
            "profile": self.profile,
            "equal": self.equal,
            "totals": self.totals,
            "tablesOnlyInSrc": list(self.only_in_src),
            "tablesOnlyInDst": list(self.only_in_dst),
            "tables": [t.to_dict() for t in self.tables],
            "notes": list(self.notes),
        }


# --- which tables are configuration -------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The tables a diff compares under a profile, and whose rows it compares."""

    categories: dict[str, str]  # configuration table → its category
    rows: frozenset[str]  # tables whose rows are configuration
    left_out: tuple[str, ...]  # tables that are not configuration under the profile


def config_scope(
    profile: Profile,
    tables: Iterable[str],
    collections: Iterable[str] = (),
    patterns: Sequence[str] = (),
) -> Scope:
    """``nocobase``: what a promotion carries by default, without rules: the structure
    of every built-in table and collection, the rows of the built-in configuration
    tables (never business rows nor the builders' collections' rows). ``generic``:
    every table, structure and rows. Ferry's ledger is never compared. ``patterns``
    (globs) narrow the result; one matching no configuration table is a mistake."""
    names = set(tables)
    classes = classify(profile, names, collections)
    kept: dict[str, Category]
    if profile is Profile.GENERIC:
        kept = {n: c.category for n, c in classes.items() if c.category is not Category.INTERNAL}
        rows = set(kept)
    else:
        resolved, _ = resolve_rules(classes, RulesSpec())
        kept = {n: r.category for n, r in resolved.items() if r.rule.syncs_schema}
        rows = {
            n for n, r in resolved.items() if r.rule.moves_rows and r.category is not Category.USER
        }
    for pattern in patterns:
        if not any(fnmatchcase(n, pattern) for n in kept):
            raise InvalidInput(
                f"--tables {printable(pattern)!r} matches no configuration table "
                f"(profile {profile.value}; --profile generic compares every table)"
            )
    if patterns:
        kept = {n: c for n, c in kept.items() if any(fnmatchcase(n, p) for p in patterns)}
    left_out = tuple(sorted(n for n in names if n not in kept and not _matched_out(n, patterns)))
    return Scope(
        {n: c.value for n, c in sorted(kept.items())}, frozenset(rows & set(kept)), left_out
    )


def _matched_out(name: str, patterns: Sequence[str]) -> bool:
    """A table the user's globs left out is not worth a note: they asked for that."""
    return bool(patterns) and not any(fnmatchcase(name, p) for p in patterns)


# --- showing values --------------------------------------------------------------------


def printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped, so a value
    or a name from a hostile source cannot forge lines or terminal sequences."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


def is_secret(column: str, value: Any) -> bool:
    """True when the secret scanner flags ``value`` under ``column``: JSON held in a
    text column is scanned as JSON too, so a nested ``password`` is never shown."""
    if secret_paths(column, value, is_json=False):
        return True
    return isinstance(value, str) and bool(secret_paths(column, value, is_json=True))


_QUOTED = (Kind.STRING, Kind.TEXT, Kind.OTHER)


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def show_value(column: str, value: Any, ctype: ColumnType | None = None) -> str:
    """The full display text of one value (see :func:`excerpts` for shortening).

    Text is quoted, so ``"1"`` and ``1`` or a trailing space are visible; JSON held as
    text is shown as JSON; a date, number or boolean a driver returns as text (SQLite)
    is shown unquoted, as another dialect's driver shows the same value."""
    if is_secret(column, value):
        return MASK
    if value is None:
        return "NULL"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(bytes(value))} bytes>"
    kind = ctype.kind if ctype is not None else Kind.TEXT
    if kind is Kind.JSON and isinstance(value, str):
        value = _json_or_text(value)
    if isinstance(value, (dict, list)):
        return printable(json_text(value))
    if isinstance(value, str) and kind in _QUOTED:
        return printable(json.dumps(value, ensure_ascii=False))
    return printable(str(value))


def _shorten(text: str, start: int) -> str:
    head = "…" if start > 0 else ""
    body = text[start : start + _WIDTH]
    return head + body + ("…" if start + _WIDTH < len(text) else "")


def excerpts(src: str, dst: str) -> tuple[str, str]:
    """Both display texts shortened around where they first differ, so two long UI
    schemas that differ deep inside show the difference, not the same first line."""
    if MASK in (src, dst) or (len(src) <= _WIDTH and len(dst) <= _WIDTH):
        return src, dst
    common = 0
    for a, b in zip(src, dst, strict=False):
        if a != b:
            break
        common += 1
    start = max(0, common - _WIDTH // 3)
    return _shorten(src, start), _shorten(dst, start)


def short(text: str) -> str:
    return text if len(text) <= _WIDTH else _shorten(text, 0)


def show_key(
    columns: Sequence[str], types: Sequence[ColumnType], raw: Sequence[Any]
) -> tuple[str, ...]:
    return tuple(short(show_value(c, v, t)) for c, t, v in zip(columns, types, raw, strict=True))


# --- schema --------------------------------------------------------------------------


def _columns_only_in(a: TableSchema, b: TableSchema) -> list[Column]:
    ops = diff_table(a, b, allow_destructive=False, moves_rows=False).ops
    return [op.column for op in ops if isinstance(op, AddColumn)]


def _indexes_only_in(a: TableSchema, b: TableSchema) -> list[tuple[str, str]]:
    ops = diff_table(a, b, allow_destructive=False, moves_rows=False).ops
    return [
        (op.index.name, ("unique " if op.index.unique else "") + _cols(op.index.columns))
        for op in ops
        if isinstance(op, AddIndex)
    ]


def _types_differ(a: Column, b: Column) -> bool:
    return compare_types(a.type, b.type) != "same" or compare_types(b.type, a.type) != "same"


def compare_schema(src: TableSchema, dst: TableSchema) -> tuple[SchemaDifference, ...]:
    """Columns only on one side, changed types, indexes only on one side, the primary
    key: schema_diff's own comparison run in both directions (a type difference a
    promotion would not act on, such as ``datetime`` against ``datetimetz``, is none)."""
    out = [
        SchemaDifference("column", c.name, c.type.describe(), None)
        for c in _columns_only_in(src, dst)
    ]
    out += [
        SchemaDifference("column", c.name, None, c.type.describe())
        for c in _columns_only_in(dst, src)
    ]
    for col in src.columns:
        other = dst.column(col.name)
        if other is not None and _types_differ(col, other):
            out.append(
                SchemaDifference("type", col.name, col.type.describe(), other.type.describe())
            )
    if src.primary_key != dst.primary_key:
        out.append(
            SchemaDifference("primary-key", "", _cols(src.primary_key), _cols(dst.primary_key))
        )
    out += [SchemaDifference("index", n, cols, None) for n, cols in _indexes_only_in(src, dst)]
    out += [SchemaDifference("index", n, None, cols) for n, cols in _indexes_only_in(dst, src)]
    return tuple(out)


def _cols(columns: Sequence[str]) -> str:
    return "(" + ", ".join(columns) + ")" if columns else "none"


# --- rows ----------------------------------------------------------------------------


@dataclass(frozen=True)
class RowPlan:
    """How one table's rows are read from both sides: the columns both have, hashed
    with SRC's types (as the planner reads a target), keyed by the primary key when both
    sides have the same one, otherwise compared as multisets."""

    columns: tuple[str, ...]
    key: tuple[str, ...]
    src_shape: RowShape
    dst_shape: RowShape
    types: tuple[ColumnType, ...]

    def show_key(self, raw: Sequence[Any]) -> tuple[str, ...]:
        types = [self.types[self.columns.index(c)] for c in self.key]
        return show_key(self.key, types, raw)


def row_plan(src: TableSchema, dst: TableSchema) -> RowPlan:
    columns = tuple(c.name for c in src.columns if dst.column(c.name) is not None)
    types = tuple(c.type for c in src.columns if c.name in columns)
    key = src.primary_key if src.primary_key == dst.primary_key else ()
    if not set(key) <= set(columns):
        key = ()

    def shape(side: str) -> RowShape:
        return RowShape(
            src.name,
            columns,
            types,
            key_columns=key,
            compared_columns=columns,
            pk_columns=key,
            side=side,
        )

    return RowPlan(columns, key, shape("SRC"), shape("DST"), types)


@dataclass
class RowCompare:
    """The first pass's result: counts, and the keys whose rows are listed."""

    same: int
    only_src: list[CanonKey]
    only_dst: list[CanonKey]
    changed: list[CanonKey]
    keyless: tuple[int, int, int] = (0, 0, 0)  # (same, only SRC, only DST) without a key

    def listed_changed(self) -> set[CanonKey]:
        return set(self.changed[:LIMIT])


def compare_indexes(src: RowIndex, dst: RowIndex) -> RowCompare:
    """Compare by key through the planner's ``diff_rows`` (an overwrite, which reports
    every difference); without a key, as multisets of row digests."""
    if not src.key_columns:
        only_src = src.keyless - dst.keyless
        only_dst = dst.keyless - src.keyless
        same = src.count - only_src.total()
        return RowCompare(same, [], [], [], (same, only_src.total(), only_dst.total()))
    changes = diff_rows(Rule.OVERWRITE, src, dst, natural_key=False, pk_reassignable=False)
    dst_only = sorted(k for k in dst.rows if k not in src.rows)
    return RowCompare(changes.unchanged, sorted(changes.inserts), dst_only, sorted(changes.updates))


def pick_rows(
    shape: RowShape, batches: Iterable[Sequence[tuple[Any, ...]]], wanted: set[CanonKey]
) -> dict[CanonKey, tuple[Any, ...]]:
    """The rows of ``wanted`` keys from a second pass over the same snapshot: only those
    few are ever held whole."""
    found: dict[CanonKey, tuple[Any, ...]] = {}
    if not wanted:
        return found
    for batch in batches:
        for row in batch:
            key = shape.canon_key(shape.raw_key(row))
            if key in wanted:
                found[key] = tuple(row)
    return found


def _column_changes(plan: RowPlan, src: tuple[Any, ...], dst: tuple[Any, ...]) -> RowChange:
    changes = []
    for i, (column, ctype) in enumerate(zip(plan.columns, plan.types, strict=True)):
        if canonical(src[i], ctype) != canonical(dst[i], ctype):
            a, b = excerpts(show_value(column, src[i], ctype), show_value(column, dst[i], ctype))
            changes.append(ColumnChange(column, a, b))
    key_pos = [plan.columns.index(c) for c in plan.key]
    return RowChange(plan.show_key([src[i] for i in key_pos]), tuple(changes))


def row_diff(
    plan: RowPlan,
    result: RowCompare,
    indexes: tuple[RowIndex, RowIndex],
    rows: tuple[Mapping[CanonKey, tuple[Any, ...]], Mapping[CanonKey, tuple[Any, ...]]],
) -> RowDiff:
    """Assemble one table's :class:`RowDiff` from the first pass (``result``) and the
    rows the second pass picked (``rows``, SRC and DST, by canonical key)."""
    if not plan.key:
        same, only_src, only_dst = result.keyless
        return RowDiff((), plan.columns, same, only_src, only_dst, 0)
    src_index, dst_index = indexes

    def keys(found: list[CanonKey], index: RowIndex) -> tuple[tuple[str, ...], ...]:
        return tuple(plan.show_key(index.rows[k].key) for k in found[:LIMIT])

    changed = tuple(
        _column_changes(plan, rows[0][k], rows[1][k])
        for k in result.changed[:LIMIT]
        if k in rows[0] and k in rows[1]
    )
    return RowDiff(
        plan.key,
        plan.columns,
        result.same,
        len(result.only_src),
        len(result.only_dst),
        len(result.changed),
        keys(result.only_src, src_index),
        keys(result.only_dst, dst_index),
        changed,
    )
