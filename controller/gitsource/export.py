"""Write a deterministic, reviewable snapshot of a database's configuration."""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from controller.engine.model import Kind, TableSchema
from controller.engine.rowindex import RowShape
from controller.engine.source import Batch
from controller.gitsource import yamlcodec
from controller.gitsource.snapshot_dir import MANIFEST, TABLES, Manifest, table_file


def _json_styles(schema: TableSchema, rows: list[tuple[Any, ...]]) -> dict[str, str]:
    styles = {}
    for i, col in enumerate(schema.columns):
        if col.type.kind is not Kind.JSON:
            continue
        counts: dict[str, int] = {}
        for row in rows:
            if isinstance(row[i], str):
                style = yamlcodec.json_style_of(row[i])
                if style:
                    counts[style] = counts.get(style, 0) + 1
        if counts:
            styles[col.name] = max(sorted(counts), key=lambda s: counts[s])
    return styles


def table_document(
    schema: TableSchema, rule: str, key: Sequence[str], batches: Iterable[Batch] | None
) -> dict[str, Any]:
    doc: dict[str, Any] = {"table": schema.name, "rule": rule}
    if key:
        doc["key"] = list(key)
    doc["schema"] = schema.to_dict()
    if batches is None:
        return doc
    rows = [row for batch in batches for row in batch]
    types = [c.type for c in schema.columns]
    shape = RowShape(
        schema.name,
        schema.column_names,
        types,
        key_columns=key,
        compared_columns=schema.column_names,
        pk_columns=schema.primary_key,
        side="source",
    )
    if key:
        rows.sort(key=lambda r: shape.canon_key(shape.raw_key(r)))
    else:
        rows.sort(key=shape.digest)
    styles = _json_styles(schema, rows)
    if styles:
        doc["jsonStyle"] = styles
    out = []
    for row in rows:
        item = {}
        for col, value in zip(schema.columns, row, strict=True):
            if col.type.kind is Kind.JSON and isinstance(value, str):
                value = yamlcodec.json_to_yaml(value, styles.get(col.name))
            item[col.name] = value
        out.append(item)
    doc["rows"] = out
    return doc


def write_snapshot(root: Path, manifest: Manifest, documents: Iterable[dict[str, Any]]) -> int:
    """Replace the snapshot in ``root`` (other files there are left alone)."""
    tables_dir = root / TABLES
    if tables_dir.exists():
        shutil.rmtree(tables_dir)
    tables_dir.mkdir(parents=True)
    count = 0
    for doc in documents:
        table_file(root, doc["table"]).write_text(yamlcodec.dump(doc), encoding="utf-8")
        count += 1
    (root / MANIFEST).write_text(yamlcodec.dump(manifest.to_dict()), encoding="utf-8")
    return count
