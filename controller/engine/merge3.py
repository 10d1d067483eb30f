"""Three-way merge of one table's rows: the base, the source and the target, by key.

A merged release works like a merge in Git. The **base** is what this source last
promoted into this target, so a row the source has not touched since is not a change
by the source, even when another team changed it in the target meanwhile. For each key:

- the same on both sides: taken;
- changed on one side only (the other still equals the base): that side is taken,
  a deletion included;
- changed differently on both: merged column by column, each column by the same rule;
  a column both changed differently, or a row one side changed and the other deleted,
  is a **conflict**, resolved by the table's ``onConflict`` (``source``, ``target``)
  or left to block the migration (``fail``).

With no base (a source's first merge, independent installations) every key counts as
absent from the base: rows only one side has are kept, and a row both sides hold with
different values conflicts in every column that differs.

Pure: rows are mappings of compared columns to canonical values
(:func:`controller.engine.values.canonical`), so the same value read from two dialects
compares equal. Singleton tables (``systemSettings``) need nothing special: their one
row is merged column by column like any other.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.api.rules import OnConflict
from controller.engine.config_diff import MASK, is_secret, printable
from controller.engine.rowindex import CanonKey
from controller.engine.values import NULL

Row = Mapping[str, str]  # compared column → canonical value
Rows = Mapping[CanonKey, Row]
_MISSING = "\x00missing"  # a column the base row does not have: never equal to a value
_SHOWN = 80  # characters of a value shown in a conflict
# Masked wherever they appear in a column's name, not only as its last camelCase word:
# PostgreSQL folds unquoted names to lower case (smtpPassword → smtppassword), and a
# conflict shows values from three places. Showing fewer values is the safe mistake.
_SECRET_PARTS: tuple[str, ...] = ("password", "passwd", "pwd", "passphrase", "secret")
_SECRET_PARTS += ("token", "credential", "apikey", "privatekey", "authorization")


class Side(enum.StrEnum):
    SOURCE = "source"
    TARGET = "target"


@dataclass(frozen=True)
class Conflict:
    """One conflicting column of a row (``column`` None: the row itself, changed on one
    side and deleted on the other). Values are display texts, masked where the secret
    scanner flags them; "(absent)" for a row that does not exist on that side."""

    table: str
    key: CanonKey
    column: str | None
    base: str
    source: str
    target: str
    resolution: OnConflict

    @property
    def resolved(self) -> bool:
        return self.resolution is not OnConflict.FAIL

    def describe(self) -> str:
        where = f"column {self.column}" if self.column else "the row"
        return (
            f"table {self.table}, key {show_key(self.key)}, {where}: "
            f"base {self.base}, source {self.source}, target {self.target}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": [_body(v)[1] for v in self.key],
            "column": self.column,
            "base": self.base,
            "source": self.source,
            "target": self.target,
            "resolution": self.resolution.value,
        }


@dataclass(frozen=True)
class Merged:
    """A row of the merged table: ``side``'s row, with ``other`` columns taken from
    the other side."""

    side: Side
    other: frozenset[str] = frozenset()


@dataclass
class TableMerge:
    table: str
    rows: dict[CanonKey, Merged] = field(default_factory=dict)  # keys the result holds
    conflicts: list[Conflict] = field(default_factory=list)
    from_source: int = 0  # keys whose result is the source's (row or absence)
    from_target: int = 0
    merged: int = 0  # rows combined column by column

    @property
    def unresolved(self) -> list[Conflict]:
        return [c for c in self.conflicts if not c.resolved]


def _body(value: str) -> tuple[str, str]:
    """A canonical value's kind letter and text (``s:home`` → ``s``, ``home``)."""
    kind, _, body = value.partition(":")
    return kind, body


def _show(column: str | None, value: str | None) -> str:
    if value is None:
        return "(absent)"
    if value == NULL:
        return "NULL"
    if value == _MISSING:
        return "(no such column)"
    kind, body = _body(value)
    folded = (column or "").lower().replace("_", "")
    if is_secret(column or "", body) or any(p in folded for p in _SECRET_PARTS):
        return MASK
    if kind == "x":
        text = f"<{len(body) // 2} bytes>"
    elif kind == "s":
        text = json.dumps(body, ensure_ascii=False)
    else:
        text = body
    text = printable(text)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def show_key(key: CanonKey) -> str:
    """A key as the plan shows it: its values, quoted, cut at 40 characters."""
    return "(" + ", ".join(repr(_body(v)[1])[:40] for v in key) + ")"


def _take(result: TableMerge, key: CanonKey, side: Side, row: Row | None) -> None:
    if side is Side.SOURCE:
        result.from_source += 1
    else:
        result.from_target += 1
    if row is not None:
        result.rows[key] = Merged(side)


def _columns(
    result: TableMerge,
    key: CanonKey,
    rows: tuple[Row | None, Row, Row],
    on_conflict: OnConflict,
) -> None:
    """Both sides changed the row differently: merge it column by column."""
    base, source, target = rows
    from_target: set[str] = set()
    for column in sorted(set(source) | set(target)):
        s, t = source.get(column, NULL), target.get(column, NULL)
        b = base.get(column, _MISSING) if base is not None else _MISSING
        if t in (s, b):
            continue
        if b == s:
            from_target.add(column)
            continue
        result.conflicts.append(
            Conflict(
                result.table,
                key,
                column,
                _show(column, None if base is None else b),
                _show(column, s),
                _show(column, t),
                on_conflict,
            )
        )
        if on_conflict is OnConflict.TARGET:
            from_target.add(column)
    result.merged += 1
    result.rows[key] = Merged(Side.SOURCE, frozenset(from_target))


def _row_conflict(
    result: TableMerge,
    key: CanonKey,
    rows: tuple[Row | None, Row | None, Row | None],
    on_conflict: OnConflict,
) -> None:
    """One side changed the row, the other deleted it (the base holds it)."""
    _, source, target = rows
    src, tgt = ("(deleted)" if row is None else "(changed)" for row in (source, target))
    result.conflicts.append(Conflict(result.table, key, None, "(the row)", src, tgt, on_conflict))
    side = Side.SOURCE if on_conflict is OnConflict.SOURCE else Side.TARGET
    _take(result, key, side, source if side is Side.SOURCE else target)


def merge_table(
    table: str,
    base: Rows | None,
    source: Rows,
    target: Rows,
    on_conflict: OnConflict = OnConflict.FAIL,
) -> TableMerge:
    """Merge one table. ``base`` None: no base for this (source, target) pair."""
    base = base or {}
    result = TableMerge(table)
    for key in sorted(set(source) | set(target)):
        b, s, t = base.get(key), source.get(key), target.get(key)
        if s == t:
            _take(result, key, Side.SOURCE, s)
        elif b == s:
            _take(result, key, Side.TARGET, t)
        elif b == t:
            _take(result, key, Side.SOURCE, s)
        elif s is None or t is None:
            _row_conflict(result, key, (b, s, t), on_conflict)
        else:
            _columns(result, key, (b, s, t), on_conflict)
    return result


def resolve(
    merge: TableMerge,
    source: Mapping[CanonKey, Sequence[Any]],
    target: Mapping[CanonKey, Sequence[Any]],
    columns: Sequence[str],
) -> list[tuple[Any, ...]]:
    """The merged table's raw rows (in ``columns`` order), from both sides' raw rows."""
    out: list[tuple[Any, ...]] = []
    for key, merged in sorted(merge.rows.items()):
        own, other = (source, target) if merged.side is Side.SOURCE else (target, source)
        row = list(own[key])
        if merged.other:
            theirs = other[key]
            row = [
                theirs[i] if c in merged.other else v
                for i, (c, v) in enumerate(zip(columns, row, strict=True))
            ]
        out.append(tuple(row))
    return out
