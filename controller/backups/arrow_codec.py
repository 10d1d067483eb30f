"""Rows ↔ Arrow record batches, exactly, for every column kind Ferry carries.

Typed columns use the natural Arrow type (int64, bool, float64, timestamp[us, UTC],
date32, time64[us], large_string, large_binary); decimals are kept as their exact text
and JSON as its exact text. SQLite is dynamically typed: its columns are described by
the storage classes actually present, and a column holding several classes becomes a
dense union, so a restore writes back exactly the values that were read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa

from controller.engine.model import INTEGER_KINDS, Kind, TableSchema
from controller.errors import PermanentError

SQLITE_CLASSES = {
    "integer": pa.int64(),
    "real": pa.float64(),
    "text": pa.large_string(),
    "blob": pa.large_binary(),
}
_CLASS_OF = {int: "integer", float: "real", str: "text", bytes: "blob"}


def _typed(kind: Kind) -> pa.DataType:
    if kind in INTEGER_KINDS:
        return pa.int64()
    return {
        Kind.BOOLEAN: pa.bool_(),
        Kind.FLOAT: pa.float64(),
        Kind.DATE: pa.date32(),
        Kind.TIME: pa.time64("us"),
        Kind.DATETIME: pa.timestamp("us"),
        Kind.DATETIMETZ: pa.timestamp("us", tz="UTC"),
        Kind.BINARY: pa.large_binary(),
    }.get(kind, pa.large_string())


def arrow_schema(
    table: TableSchema, dialect: str, sqlite_classes: dict[str, set[str]] | None = None
) -> pa.Schema:
    """The Arrow schema of a table's member; SQLite needs the storage classes present."""
    fields = []
    for col in table.columns:
        if dialect == "sqlite":
            classes = sorted((sqlite_classes or {}).get(col.name, set()) - {"null"})
            if len(classes) > 1:
                arrow_type: pa.DataType = pa.dense_union(
                    [pa.field(c, SQLITE_CLASSES[c]) for c in classes]
                )
            else:
                arrow_type = SQLITE_CLASSES[classes[0]] if classes else pa.large_string()
        elif col.type.zoned_time:
            arrow_type = pa.large_string()
        else:
            arrow_type = _typed(col.type.kind)
        fields.append(pa.field(col.name, arrow_type, nullable=True))
    return pa.schema(fields)


def _to_arrow_value(value: Any, arrow_type: pa.DataType) -> Any:
    if value is None:
        return None
    if pa.types.is_large_string(arrow_type):
        if isinstance(value, (bytes, bytearray, memoryview)):
            raise PermanentError("binary value in a text column")
        if isinstance(value, (dt.datetime, dt.date, dt.time)):
            return value.isoformat()
        return value if isinstance(value, str) else str(value)
    if pa.types.is_timestamp(arrow_type) and isinstance(value, dt.datetime):
        if arrow_type.tz is None and value.tzinfo is not None:
            return value.astimezone(dt.UTC).replace(tzinfo=None)
        if arrow_type.tz is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
    if pa.types.is_boolean(arrow_type) and not isinstance(value, bool):
        return bool(value)
    return value


def _column(values: list[Any], arrow_type: pa.DataType) -> pa.Array:
    if pa.types.is_union(arrow_type):
        names = [arrow_type.field(i).name for i in range(arrow_type.num_fields)]
        codes = {name: i for i, name in enumerate(names)}
        children: list[list[Any]] = [[] for _ in names]
        type_ids, offsets = [], []
        for value in values:
            cls = _CLASS_OF.get(type(value), names[0]) if value is not None else names[0]
            code = codes[cls]
            type_ids.append(code)
            offsets.append(len(children[code]))
            children[code].append(value)
        arrays = [pa.array(children[i], type=arrow_type.field(i).type) for i in range(len(names))]
        return pa.UnionArray.from_dense(
            pa.array(type_ids, type=pa.int8()), pa.array(offsets, type=pa.int32()), arrays, names
        )
    return pa.array([_to_arrow_value(v, arrow_type) for v in values], type=arrow_type)


def record_batch(schema: pa.Schema, rows: Sequence[tuple[Any, ...]]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in schema]
    arrays = []
    for field, values in zip(schema, columns, strict=True):
        try:
            arrays.append(_column(list(values), field.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError) as err:
            raise PermanentError(f"column {field.name}: cannot encode a value: {err}") from err
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _from_arrow(value: Any, kind: Kind) -> Any:
    if value is None:
        return None
    if kind is Kind.DECIMAL and isinstance(value, str):
        return Decimal(value)
    return value


def rows_of(batch: pa.RecordBatch, table: TableSchema, dialect: str) -> list[tuple[Any, ...]]:
    """Back to raw values, as the database driver returned them at backup time."""
    columns = []
    for i, col in enumerate(table.columns):
        values = batch.column(i).to_pylist()
        if dialect != "sqlite":
            values = [_from_arrow(v, col.type.kind) for v in values]
        columns.append(values)
    return list(zip(*columns, strict=True)) if columns else []


def iter_rows(
    batches: Iterable[pa.RecordBatch], table: TableSchema, dialect: str
) -> Iterable[list[tuple[Any, ...]]]:
    for batch in batches:
        yield rows_of(batch, table, dialect)
