"""What a migration left behind, kept beside its pre-migration backup.

Inside the migration's transaction, before it commits, Ferry records for every table
the migration touched — row changes and schema operations alike — which rows it wrote
(with their digests after the write), which schema operations it applied, and what
values its added or altered columns held in the rows it did not write. A scoped
rollback reads this record to undo exactly the migration and to list what was edited
since; without it, a rollback refuses instead of restoring whole tables.

Format 2 (this one) is versioned; format 1, written before, kept only the digests of
the rows left in tables with row changes: it still decodes, as records whose deleted
rows are found in the backup.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import zstandard

from controller.engine.indexing import index_as
from controller.engine.model import ColumnType, TableSchema
from controller.engine.plan import KeySpec, TablePlan
from controller.engine.rowindex import CanonKey, RowIndex, row_digest
from controller.engine.schema_diff import AddColumn, AddIndex, AlterColumnType, DropColumn
from controller.engine.schema_diff import CreateTable as CreateTableOp
from controller.engine.source import SnapshotSource
from controller.engine.undo import (
    ADD_COLUMN,
    ADD_INDEX,
    ALTER_COLUMN,
    CREATE_TABLE,
    DROP_COLUMN,
    ColumnWatch,
    TableRecord,
)
from controller.errors import CheckFailed

FORMAT = 2
_CHUNK_ROWS = 10_000  # written rows per compressed chunk


def _op(op: object) -> tuple[str, str]:
    if isinstance(op, CreateTableOp):
        return CREATE_TABLE, op.table.name
    if isinstance(op, AddColumn):
        return ADD_COLUMN, op.column.name
    if isinstance(op, AlterColumnType):
        return ALTER_COLUMN, op.column.name
    if isinstance(op, DropColumn):
        return DROP_COLUMN, op.column
    assert isinstance(op, AddIndex), op
    return ADD_INDEX, op.index.name


def null_digest(ctype: ColumnType) -> str:
    return row_digest([None], [ctype]).hex()


def column_index(
    target: SnapshotSource, table: TableSchema, record: TableRecord, column: str
) -> RowIndex:
    """The rows of ``table`` keyed as ``record`` keys them, digesting ``column`` alone."""
    ks = KeySpec(record.key, (column,), record.pk, natural=False, pk_reassignable=False)
    return index_as(target, table, ks, record.types)


def _written(plan: TablePlan, before: RowIndex | None, after: RowIndex) -> dict[CanonKey, Any]:
    """Each row the plan wrote, with its digest after the write (None: deleted).

    A verified ``after`` index of a table compared in place holds only the rows of
    buckets that still differed; the rows it sets aside (``settled``) are identical to
    the source's in the database, and the plan read those in the same snapshot the
    write copied from, so each written row there holds the digest the plan recorded.
    Taking it from the plan spares a second entry per written row."""
    changes = plan.changes
    if changes is None:
        return {}
    rows = after.rows
    written: dict[CanonKey, str | None] = {}
    for planned in (changes.inserts, changes.update_digests):
        for key, digest in planned.items():
            entry = rows.get(key)
            if entry is None and not after.settled:
                raise KeyError(f"row {key!r} is neither in the target nor settled")
            written[key] = (digest if entry is None else entry.digest).hex()
    if changes.deletes and before is not None:
        by_raw = {entry.key: key for key, entry in before.rows.items()}
        written |= {by_raw[raw]: None for raw in changes.deletes if raw in by_raw}
    return written


def _watch(
    target: SnapshotSource, table: TableSchema, record: TableRecord, col: str, altered: bool
) -> ColumnWatch:
    index = column_index(target, table, record, col)
    if not record.key:
        keyless = {d.hex(): n for d, n in sorted(index.keyless.items())}
        fill = next(iter(keyless)) if len(keyless) == 1 else None
        return ColumnWatch(col, fill, keyless={} if fill else keyless, altered=altered)
    unwritten = {k: e.digest.hex() for k, e in index.rows.items() if k not in record.written}
    values = set(unwritten.values())
    if len(values) <= 1 and not altered:
        fill = values.pop() if values else null_digest(record.types[col])
        return ColumnWatch(col, fill)
    return ColumnWatch(col, None, rows=unwritten, altered=altered)


def record_table(
    target: SnapshotSource,
    plan: TablePlan,
    source: TableSchema | None,
    before: RowIndex | None,
    after: RowIndex | None,
) -> TableRecord:
    """What ``plan`` did to its table, read inside the migration's transaction."""
    now = target.schema().table(plan.table)
    assert now is not None, plan.table
    source = source or now
    types = {c.name: c.type for c in source.columns} | {
        c.name: c.type for c in now.columns if source.column(c.name) is None
    }
    ks = plan.keyspec
    record = TableRecord(
        table=plan.table,
        key=ks.key if ks else now.primary_key,
        compared=ks.compared if ks and after is not None else (),
        pk=now.primary_key,
        types=types,
        ops=tuple(_op(op) for op in plan.schema),
    )
    if after is not None and plan.changes is not None:
        if plan.changes.replace_all:
            keyless = {d.hex(): n for d, n in sorted(after.keyless.items())}
            record = replace(record, keyless_after=keyless)
        elif after.key_columns:
            record = replace(record, written=_written(plan, before, after))
    watched = [(c, False) for c in record.names(ADD_COLUMN)]
    watched += [(c, True) for c in record.names(ALTER_COLUMN)]
    if watched and not record.created:
        watches = tuple(_watch(target, now, record, c, altered) for c, altered in watched)
        record = replace(record, watches=watches)
    return record


def encode(migration_id: str, records: list[TableRecord]) -> bytes:
    """The record, compressed: ``json.dumps(doc, sort_keys=True)`` of the document
    :func:`decode` reads, byte for byte. The written rows (one per row a promotion
    inserted: the bulk of it) are encoded and compressed a chunk at a time instead of
    being built into the document and its text first."""
    marks = {r.table: f"ferry-written-{secrets.token_hex(16)}" for r in records}
    doc = {
        "format": FORMAT,
        "migration": migration_id,
        "tables": {r.table: _record_doc(r, marks[r.table]) for r in records},
    }
    text = json.dumps(doc, sort_keys=True)
    written = {json.dumps(marks[r.table]): r.written for r in records}
    pattern = re.compile("|".join(re.escape(m) for m in written) or "(?!)")
    compressor = zstandard.ZstdCompressor().compressobj()
    out, at = [], 0
    for found in pattern.finditer(text):
        out.append(compressor.compress(text[at : found.start()].encode()))
        out += [compressor.compress(c.encode()) for c in _written_json(written[found.group()])]
        at = found.end()
    out.append(compressor.compress(text[at:].encode()))
    out.append(compressor.flush())
    return b"".join(out)


def _written_json(written: dict[CanonKey, str | None]) -> Iterator[str]:
    """``json.dumps`` of ``[[list(key), digest], ...]`` sorted by key, in chunks."""
    keys = sorted(written)
    yield "["
    for i in range(0, len(keys), _CHUNK_ROWS):
        part = ", ".join(json.dumps([list(k), written[k]]) for k in keys[i : i + _CHUNK_ROWS])
        yield (", " if i else "") + part
    yield "]"


def _record_doc(r: TableRecord, written: Any) -> dict[str, Any]:
    return {
        "key": list(r.key),
        "compared": list(r.compared),
        "pk": list(r.pk),
        "types": {c: t.to_dict() for c, t in r.types.items()},
        "ops": [list(op) for op in r.ops],
        "written": written,  # encode: a mark in the text, where it streams the rows
        "keylessAfter": r.keyless_after,
        "watches": [
            {
                "column": w.column,
                "fill": w.fill,
                "rows": [[list(k), d] for k, d in sorted(w.rows.items())],
                "keyless": w.keyless,
                "altered": w.altered,
            }
            for w in r.watches
        ],
    }


def decode(data: bytes, where: str) -> dict[str, TableRecord]:
    """Records by table; a post-state that cannot be read is refused, naming ``where``."""
    try:
        doc = json.loads(zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 31))
        if isinstance(doc, dict) and doc.get("format") == FORMAT:
            return {t: _record(t, r) for t, r in doc["tables"].items()}
        if isinstance(doc, dict) and "format" not in doc:
            return {t: _record_v1(t, r) for t, r in doc.items()}
        raise ValueError(f"unknown format {doc.get('format') if isinstance(doc, dict) else '?'}")
    except (ValueError, KeyError, TypeError, AttributeError, zstandard.ZstdError) as err:
        raise CheckFailed(
            f"{where} cannot be read ({err}); nothing was rolled back",
            reason="PostStateUnreadable",
        ) from err


def _identity(table: str, t: dict[str, Any]) -> dict[str, Any]:
    """The fields both formats share: how the table's rows are keyed and digested."""
    return {
        "table": table,
        "key": tuple(t["key"]),
        "compared": tuple(t["compared"]),
        "pk": tuple(t["pk"]),
        "types": {c: ColumnType.from_dict(v) for c, v in t["types"].items()},
    }


def _record(table: str, t: dict[str, Any]) -> TableRecord:
    return TableRecord(
        **_identity(table, t),
        ops=tuple((str(op), str(name)) for op, name in t["ops"]),
        written={tuple(k): d for k, d in t["written"]},
        keyless_after=t["keylessAfter"],
        watches=tuple(
            ColumnWatch(
                w["column"],
                w["fill"],
                rows={tuple(k): d for k, d in w["rows"]},
                keyless=dict(w["keyless"]),
                altered=bool(w["altered"]),
            )
            for w in t["watches"]
        ),
    )


def _record_v1(table: str, t: dict[str, Any]) -> TableRecord:
    """Format 1 kept every row the table held after the migration: all count as written
    (an edit to any of them since is listed), and backup rows missing from them were
    deleted by the migration."""
    keyless = dict(t["keyless"]) if not t["key"] else None
    return TableRecord(
        **_identity(table, t),
        written={tuple(k): d for k, d in t["rows"]},
        keyless_after=keyless,
        complete=False,
    )
