"""An index of a table's rows: key → row hash, built from streamed batches.

Plans compare two indexes instead of two copies of the data, so memory grows with the
number of rows, not with their size: each row costs its key, its primary key and a
16-byte digest (about 0.6 KB with Python's object overhead, measured in bench/), so a
table of large UI schemas costs no more than a table of integers.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.engine.model import ColumnType, Kind
from controller.engine.values import canonical, canonicalizer, env_references
from controller.errors import InvalidInput

CanonKey = tuple[str, ...]
_ABSENT = ColumnType(kind=Kind.TEXT)  # a column the target lacks reads as NULL


@dataclass(frozen=True, slots=True)
class RowEntry:
    digest: bytes
    key: tuple[Any, ...]  # raw values of the key columns, as the database returned them
    pk: tuple[Any, ...]  # raw values of the primary key columns


@dataclass
class RowIndex:
    """Rows of one table as seen through ``key_columns`` and ``compared_columns``."""

    table: str
    key_columns: tuple[str, ...]
    compared_columns: tuple[str, ...]
    rows: dict[CanonKey, RowEntry] = field(default_factory=dict)
    keyless: Counter[bytes] = field(default_factory=Counter)  # used when there is no key
    env_refs: set[str] = field(default_factory=set)
    # Rows not held in ``rows`` because the other side holds the very same ones (found
    # by in-database digests, :mod:`controller.engine.buckets`): unchanged by any rule.
    settled: int = 0
    # (modulus, buckets) whose rows are held, when in-database digests chose them
    buckets: list[tuple[int, tuple[int, ...]]] | None = None

    @property
    def count(self) -> int:
        if self.key_columns:
            return len(self.rows) + self.settled
        return sum(self.keyless.values())

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        if self.key_columns:
            for key in sorted(self.rows):
                h.update(repr(key).encode())
                h.update(self.rows[key].digest)
        else:
            for digest in sorted(self.keyless.elements()):
                h.update(digest)
        return h.hexdigest()


def row_digest(values: Sequence[Any], types: Sequence[ColumnType]) -> bytes:
    """16-byte BLAKE2b of the canonical values, each followed by a unit separator."""
    return _digest([canonical(v, t) for v, t in zip(values, types, strict=True)])


def _digest(canonical_values: list[str]) -> bytes:
    text = "\x1f".join(canonical_values) + "\x1f"
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class RowShape:
    """Where a row's key, primary key and compared values sit, and how to hash them.

    Both the planner (building indexes) and the writer (checking that a row is still
    the one planned) use the same shape, so they can never disagree on a digest.
    ``compared_columns`` may name columns absent from ``columns`` (a column the
    migration will add): they count as NULL, which is what adding them yields.
    """

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        types: Sequence[ColumnType],
        *,
        key_columns: Sequence[str],
        compared_columns: Sequence[str],
        pk_columns: Sequence[str],
        side: str,
    ) -> None:
        pos = {name: i for i, name in enumerate(columns)}
        ctype = dict(zip(columns, types, strict=True))
        missing = [c for c in key_columns if c not in pos]
        if missing:
            raise InvalidInput(
                f"table {table}: key column(s) {', '.join(missing)} not in the {side}"
            )
        self.table = table
        self.side = side
        self.key_columns = tuple(key_columns)
        self.compared_columns = tuple(compared_columns)
        self._cmp = [(pos.get(c), canonicalizer(ctype.get(c, _ABSENT))) for c in compared_columns]
        self._all = [(i, canon) for i, canon in self._cmp if i is not None]
        if len(self._all) != len(self._cmp):
            self._all = []  # a column this side lacks: :meth:`digest` reads it as NULL
        self._key_pos = [pos[c] for c in key_columns]
        self._key_canon = [canonicalizer(ctype[c]) for c in key_columns]
        self._pk_pos = [pos[c] for c in pk_columns if c in pos]
        # Usually the key is the primary key: its entry then holds one tuple, not two.
        self.pk_is_key = self._pk_pos == self._key_pos

    def digest(self, row: Sequence[Any]) -> bytes:
        if self._all:
            return _digest([canon(row[i]) for i, canon in self._all])
        return _digest([canon(row[i] if i is not None else None) for i, canon in self._cmp])

    def raw_key(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[i] for i in self._key_pos)

    def canon_key(self, raw_key: Sequence[Any]) -> CanonKey:
        return tuple(canon(v) for v, canon in zip(raw_key, self._key_canon, strict=True))

    def pk(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[i] for i in self._pk_pos)


def build_index(
    shape: RowShape, batches: Iterable[Sequence[tuple[Any, ...]]], *, scan_env: bool = False
) -> RowIndex:
    """Index streamed rows (tuples in the shape's ``columns`` order)."""
    index = RowIndex(shape.table, shape.key_columns, shape.compared_columns)
    for batch in batches:
        for row in batch:
            digest = shape.digest(row)
            if scan_env:
                for value in row:
                    index.env_refs.update(env_references(value))
            if not shape.key_columns:
                index.keyless[digest] += 1
                continue
            raw_key = shape.raw_key(row)
            canon = shape.canon_key(raw_key)
            if canon in index.rows:
                raise InvalidInput(
                    f"table {shape.table}: key ({', '.join(shape.key_columns)}) is not unique "
                    f"in the {shape.side}: {_show_key(raw_key)} appears more than once"
                )
            pk = raw_key if shape.pk_is_key else shape.pk(row)
            index.rows[canon] = RowEntry(digest, raw_key, pk)
    return index


def _show_key(key: tuple[Any, ...]) -> str:
    return "(" + ", ".join(repr(v)[:60] for v in key) + ")"
