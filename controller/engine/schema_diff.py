"""Compare a source table's structure with the target's and list the operations.

Additions (tables, columns, indexes) and widening type changes are always planned.
Destructive operations — dropping a column, a narrowing or incompatible type change —
are planned only with ``allowDestructive``; otherwise they are reported, and refused
when rows would not fit. Extra tables in the target are reported, never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.engine.model import INTEGER_KINDS, Column, ColumnType, Index, Kind, TableSchema


@dataclass(frozen=True)
class CreateTable:
    table: TableSchema

    op = "create-table"

    def describe(self) -> str:
        return f"create table {self.table.name} ({len(self.table.columns)} columns)"

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "table": self.table.name,
            "columns": [c.name for c in self.table.columns],
        }


@dataclass(frozen=True)
class AddColumn:
    table: str
    column: Column

    op = "add-column"

    def describe(self) -> str:
        return f"add column {self.column.name} {self.column.type.describe()}"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "column": self.column.name, "type": self.column.type.describe()}


@dataclass(frozen=True)
class AlterColumnType:
    table: str
    column: Column  # the column as the source has it
    before: ColumnType
    destructive: bool

    op = "alter-column-type"

    def describe(self) -> str:
        flag = " (destructive)" if self.destructive else ""
        return (
            f"alter column {self.column.name} {self.before.describe()} → "
            f"{self.column.type.describe()}{flag}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "column": self.column.name,
            "from": self.before.describe(),
            "to": self.column.type.describe(),
            "destructive": self.destructive,
        }


@dataclass(frozen=True)
class DropColumn:
    table: str
    column: str

    op = "drop-column"

    def describe(self) -> str:
        return f"drop column {self.column} (destructive)"

    def to_dict(self) -> dict[str, Any]:
        return {"op": self.op, "column": self.column, "destructive": True}


@dataclass(frozen=True)
class AddIndex:
    table: str
    index: Index

    op = "add-index"

    def describe(self) -> str:
        kind = "unique index" if self.index.unique else "index"
        return f"add {kind} {self.index.name} ({', '.join(self.index.columns)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "index": self.index.name,
            "columns": list(self.index.columns),
            "unique": self.index.unique,
        }


SchemaOp = CreateTable | AddColumn | AlterColumnType | DropColumn | AddIndex


@dataclass(frozen=True)
class SchemaDiff:
    ops: tuple[SchemaOp, ...]
    warnings: tuple[str, ...]
    problems: tuple[str, ...]  # refused: data would not fit without a destructive change


_INT_RANK = {Kind.SMALLINT: 1, Kind.INTEGER: 2, Kind.BIGINT: 3}
_TEXTUAL = (Kind.STRING, Kind.TEXT)
_UNBOUNDED = 1 << 40


def _text_width(t: ColumnType) -> int:
    if t.kind is Kind.TEXT or t.length is None:
        return _UNBOUNDED
    return t.length


def compare_types(source: ColumnType, target: ColumnType) -> str:
    """``same``, ``widen`` (target must grow), ``narrower`` (source fits) or ``incompatible``."""
    if source.kind in INTEGER_KINDS and target.kind in INTEGER_KINDS:
        diff = _INT_RANK[source.kind] - _INT_RANK[target.kind]
        return "same" if diff == 0 else ("widen" if diff > 0 else "narrower")
    if source.kind in _TEXTUAL and target.kind in _TEXTUAL:
        s, t = _text_width(source), _text_width(target)
        return "same" if s == t else ("widen" if s > t else "narrower")
    if source.kind is Kind.DECIMAL and target.kind is Kind.DECIMAL:
        sp, ss = source.precision or 0, source.scale or 0
        tp, ts = target.precision or 0, target.scale or 0
        if (sp, ss) == (tp, ts) or not tp:
            return "same"
        return "widen" if sp - ss > tp - ts or ss > ts else "narrower"
    if {source.kind, target.kind} == {Kind.DATETIME, Kind.DATETIMETZ}:
        return "same"  # both hold the instants Ferry carries; the difference is reported
    if source.kind == target.kind:
        return "same"
    if source.kind in INTEGER_KINDS and target.kind in (Kind.DECIMAL, Kind.FLOAT, *_TEXTUAL):
        return "narrower"
    if source.kind is Kind.BOOLEAN and target.kind in INTEGER_KINDS:
        return "narrower"
    if target.kind is Kind.TEXT and source.kind in (Kind.JSON, Kind.UUID, Kind.STRING):
        return "narrower"
    return "incompatible"


@dataclass
class _Found:
    """What comparing one table collects: operations, warnings and refusals."""

    ops: list[SchemaOp]
    warnings: list[str]
    problems: list[str]


def _added(name: str, col: Column, found: _Found) -> None:
    if not col.nullable:
        col = Column(
            col.name,
            col.type,
            nullable=True,
            autoincrement=col.autoincrement,
            default=col.default,
        )
        found.warnings.append(
            f"{name}.{col.name}: added as NULL-able (the table has rows "
            f"and no default can be assumed)"
        )
    found.ops.append(AddColumn(name, col))


def _retyped(
    name: str,
    col: Column,
    existing: Column,
    found: _Found,
    *,
    allow_destructive: bool,
    moves_rows: bool,
    dynamic_types: bool,
) -> None:
    """A column both sides have: widen it, narrow or convert it (destructive), or say why
    not."""
    verdict = compare_types(col.type, existing.type)
    was, now = existing.type.describe(), col.type.describe()
    if dynamic_types and verdict != "same":
        found.warnings.append(
            f"{name}.{col.name}: declared {was} in the target, {now} in the source "
            "(SQLite keeps any value)"
        )
    elif verdict == "widen":
        found.ops.append(AlterColumnType(name, col, existing.type, destructive=False))
    elif verdict == "narrower" and col.type.kind != existing.type.kind:
        found.warnings.append(
            f"{name}.{col.name}: target type {was} differs from source {now} (source values fit)"
        )
    elif verdict in ("narrower", "incompatible") and allow_destructive:
        found.ops.append(AlterColumnType(name, col, existing.type, destructive=True))
    elif verdict == "narrower":
        found.warnings.append(
            f"{name}.{col.name}: target is wider ({was} vs {now}); narrowing it needs "
            "allowDestructive"
        )
    elif verdict == "incompatible":
        msg = (
            f"{name}.{col.name}: type differs (source {now}, target {was}); converting it "
            "needs allowDestructive"
        )
        (found.problems if moves_rows else found.warnings).append(msg)
    elif col.type.kind != existing.type.kind:
        found.warnings.append(f"{name}.{col.name}: source {now}, target {was}")


def _extra_columns(
    source: TableSchema, target: TableSchema, found: _Found, allow_destructive: bool
) -> None:
    source_cols = set(source.column_names)
    for col in target.columns:
        if col.name in source_cols:
            continue
        if allow_destructive:
            found.ops.append(DropColumn(source.name, col.name))
        else:
            found.warnings.append(
                f"{source.name}.{col.name}: extra column in the target, kept "
                "(dropping it needs allowDestructive)"
            )


def _new_indexes(source: TableSchema, target: TableSchema, found: _Found) -> None:
    have = {tuple(cols) for cols in target.unique_column_sets()}
    have |= {i.columns for i in target.indexes}
    target_cols = {c.name for c in target.columns} | set(source.column_names)
    for idx in (*source.uniques, *source.indexes):
        if idx.columns not in have and set(idx.columns) <= target_cols:
            found.ops.append(AddIndex(source.name, idx))
            have.add(idx.columns)


def diff_table(
    source: TableSchema,
    target: TableSchema | None,
    *,
    allow_destructive: bool,
    moves_rows: bool,
    dynamic_types: bool = False,
) -> SchemaDiff:
    """``dynamic_types``: the target (SQLite) stores any value in any column, so a type
    difference is reported but needs no change and blocks nothing."""
    if target is None:
        return SchemaDiff((CreateTable(source),), (), ())
    found = _Found([], [], [])
    for col in source.columns:
        existing = target.column(col.name)
        if existing is None:
            _added(source.name, col, found)
        else:
            _retyped(
                source.name,
                col,
                existing,
                found,
                allow_destructive=allow_destructive,
                moves_rows=moves_rows,
                dynamic_types=dynamic_types,
            )
    _extra_columns(source, target, found, allow_destructive)
    _new_indexes(source, target, found)
    return SchemaDiff(tuple(found.ops), tuple(found.warnings), tuple(found.problems))
