"""Schema sync: additions always, destructive changes only when allowed."""

from __future__ import annotations

from controller.engine.model import Column, ColumnType, Index, Kind, TableSchema
from controller.engine.schema_diff import (
    AddColumn,
    AddIndex,
    AlterColumnType,
    CreateTable,
    DropColumn,
    compare_types,
    diff_table,
)

S = ColumnType(Kind.STRING, length=50)
S255 = ColumnType(Kind.STRING, length=255)
TXT = ColumnType(Kind.TEXT)
INT = ColumnType(Kind.INTEGER)
BIG = ColumnType(Kind.BIGINT)
JSON = ColumnType(Kind.JSON)


def table(*cols: tuple[str, ColumnType], indexes: tuple[Index, ...] = ()) -> TableSchema:
    return TableSchema("t", tuple(Column(n, t) for n, t in cols), ("id",), indexes=indexes)


def test_compare_types() -> None:
    assert compare_types(S255, S) == "widen"
    assert compare_types(S, S255) == "narrower"
    assert compare_types(TXT, S255) == "widen"
    assert compare_types(BIG, INT) == "widen"
    assert compare_types(JSON, INT) == "incompatible"
    assert compare_types(ColumnType(Kind.DATETIME), ColumnType(Kind.DATETIMETZ)) == "same"


def test_missing_table_is_created() -> None:
    src = table(("id", INT))
    assert diff_table(src, None, allow_destructive=False, moves_rows=True).ops == (
        CreateTable(src),
    )


def test_additions_and_widening_are_planned() -> None:
    src = table(("id", INT), ("a", S255), ("b", TXT), indexes=(Index("ix_b", ("a",)),))
    tgt = table(("id", INT), ("a", S))
    ops = diff_table(src, tgt, allow_destructive=False, moves_rows=True).ops
    assert [type(op) for op in ops] == [AlterColumnType, AddColumn, AddIndex]
    assert isinstance(ops[0], AlterColumnType) and not ops[0].destructive


def test_destructive_changes_need_permission() -> None:
    src = table(("id", INT), ("a", S))
    tgt = table(("id", INT), ("a", S255), ("extra", INT))
    safe = diff_table(src, tgt, allow_destructive=False, moves_rows=True)
    assert safe.ops == () and len(safe.warnings) == 2 and not safe.problems
    allowed = diff_table(src, tgt, allow_destructive=True, moves_rows=True)
    assert [type(op) for op in allowed.ops] == [AlterColumnType, DropColumn]


def test_incompatible_type_refused_when_rows_move() -> None:
    src = table(("id", INT), ("a", JSON))
    tgt = table(("id", INT), ("a", INT))
    refused = diff_table(src, tgt, allow_destructive=False, moves_rows=True)
    assert refused.problems and "allowDestructive" in refused.problems[0]
    assert not diff_table(src, tgt, allow_destructive=False, moves_rows=False).problems
