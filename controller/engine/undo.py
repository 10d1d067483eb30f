"""What a rollback may undo: the rows and schema a migration wrote, and nothing else.

A migration leaves a :class:`TableRecord` for every table it touched (rows written,
schema operations, the values its added or altered columns held). Comparing that
record with the table as it is now is pure: it yields the *later edits* — rows the
migration wrote that were changed since, values written since into what it added —
and the :class:`TableUndo` that puts back exactly what the migration changed. Rows the
migration never wrote are never part of an undo, whatever happened to them since.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from controller.engine.model import ColumnType, TableSchema
from controller.engine.rowindex import CanonKey, RowIndex

ADD_COLUMN, ALTER_COLUMN, DROP_COLUMN = "add-column", "alter-column-type", "drop-column"
ADD_INDEX, CREATE_TABLE = "add-index", "create-table"


@dataclass(frozen=True)
class ColumnWatch:
    """The values one added or altered column held after the migration, in the rows the
    migration did not write: one common value (``fill``, a row digest of that column
    alone), else each row's own (``rows``; ``keyless`` where the table has no key)."""

    column: str
    fill: str | None
    rows: dict[CanonKey, str] = field(default_factory=dict)
    keyless: dict[str, int] = field(default_factory=dict)
    # An altered column keeps the values of rows added since (its type goes back, they
    # stay): only the rows it held then can have been edited, so each is recorded.
    altered: bool = False


@dataclass(frozen=True)
class TableRecord:
    """What one migration did to one table."""

    table: str
    key: tuple[str, ...]  # how written rows are identified (empty: keyless table)
    compared: tuple[str, ...]  # what the post digests of written rows cover
    pk: tuple[str, ...]
    types: dict[str, ColumnType]  # how keys and values were canonicalised
    ops: tuple[tuple[str, str], ...] = ()  # (op, column or index name) in applied order
    written: dict[CanonKey, str | None] = field(default_factory=dict)  # None: deleted
    keyless_after: dict[str, int] | None = None  # a keyless table whose rows were replaced
    watches: tuple[ColumnWatch, ...] = ()
    # False for records of format 1, which kept the rows left after the migration but
    # not which it deleted: those are the backup's rows missing from ``written``.
    complete: bool = True

    @property
    def created(self) -> bool:
        return any(op == CREATE_TABLE for op, _ in self.ops)

    def names(self, op: str) -> list[str]:
        return [name for kind, name in self.ops if kind == op]


@dataclass(frozen=True)
class LaterEdit:
    """A change made after the migration that its rollback would discard."""

    table: str
    key: str  # the row, as shown to a user ("" for a whole table)
    column: str  # "" for the whole row
    what: str

    def __str__(self) -> str:
        where = f"{self.table}: row {self.key}" if self.key else self.table
        col = f" column {self.column}" if self.column else ""
        return f"{where}{col} {self.what}"


def show_key(key: CanonKey) -> str:
    return "(" + ", ".join(part.split(":", 1)[-1] for part in key) + ")"


def written_edits(record: TableRecord, now: RowIndex) -> list[LaterEdit]:
    """Rows the migration wrote that are no longer as it left them."""
    if record.keyless_after is not None:
        current = {d.hex(): n for d, n in now.keyless.items()}
        if current != record.keyless_after:
            return [
                LaterEdit(
                    record.table, "", "", "has rows changed after the migration (it has no key)"
                )
            ]
        return []
    edits = []
    for key, digest in sorted(record.written.items()):
        entry = now.rows.get(key)
        if digest is None:
            if entry is not None:
                edits.append(
                    LaterEdit(
                        record.table, show_key(key), "", "was added again after the migration"
                    )
                )
        elif entry is None:
            edits.append(
                LaterEdit(record.table, show_key(key), "", "was deleted after the migration")
            )
        elif entry.digest.hex() != digest:
            edits.append(
                LaterEdit(record.table, show_key(key), "", "was changed after the migration")
            )
    return edits


def created_edits(record: TableRecord, now: RowIndex) -> list[LaterEdit]:
    """Rows in a table the migration created that it did not write: all of them go
    when the table is dropped."""
    if not record.key:
        if record.keyless_after is None and now.count:
            what = f"holds {now.count} row(s) written since; dropping the table discards them"
            return [LaterEdit(record.table, "", "", what)]
        return []
    return [
        LaterEdit(record.table, show_key(key), "", "was added after the migration")
        for key in sorted(now.rows)
        if key not in record.written
    ]


def watch_edits(
    record: TableRecord, watch: ColumnWatch, now: RowIndex, null_digest: str
) -> list[LaterEdit]:
    """Values of an added or altered column written since, in rows the migration did not
    write (those are covered by their row digest). A row added since counts when its
    value is neither NULL nor the column's common value."""
    usual = {watch.fill, null_digest}
    if not now.key_columns:
        current = {d.hex(): n for d, n in now.keyless.items()}
        changed = current != watch.keyless if watch.keyless else bool(set(current) - usual)
        what = "holds values written after the migration (the table has no key)"
        return [LaterEdit(record.table, "", watch.column, what)] if changed else []
    edits = []
    for key in sorted(now.rows):
        if key in record.written:
            continue
        digest = now.rows[key].digest.hex()
        before = watch.rows.get(key)
        if before is None and watch.altered:
            continue
        if digest == before or (before is None and digest in usual):
            continue
        edits.append(
            LaterEdit(record.table, show_key(key), watch.column, "was written after the migration")
        )
    return edits


@dataclass(frozen=True)
class TableRevert:
    """The concrete steps that put one table back: rows as the backup has them
    (``columns`` order), then the schema operations reversed (``ops``, last first)."""

    table: str
    key: tuple[str, ...]
    columns: tuple[str, ...]
    delete: list[tuple[Any, ...]]  # current key values of rows the migration inserted
    update: list[tuple[Any, ...]]  # backup rows of rows that exist now
    insert: list[tuple[Any, ...]]  # backup rows of rows that are gone
    ops: tuple[tuple[str, str], ...]
    before: TableSchema  # the table as the backup has it
    replace_all: bool = False  # keyless: every row goes, the backup's come back
