"""Write a deterministic, reviewable snapshot of a database's configuration."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from controller.engine.model import Kind, TableSchema
from controller.engine.rowindex import RowShape
from controller.engine.secret_scan import secret_paths
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
    schema: TableSchema,
    rule: str,
    key: Sequence[str],
    batches: Iterable[Batch] | None,
    secrets: list[str] | None = None,
) -> dict[str, Any]:
    """The YAML document of one table; literal credentials found are added to
    ``secrets`` as ``table[key].path`` (never their values)."""
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
        where = shape.raw_key(row) if key else ()
        for col, value in zip(schema.columns, row, strict=True):
            if secrets is not None:
                secrets += [
                    f"{schema.name}{list(where)}.{path}"
                    for path in secret_paths(col.name, value, col.type.kind is Kind.JSON)
                ]
            if col.type.kind is Kind.JSON and isinstance(value, str):
                value = yamlcodec.json_to_yaml(value, styles.get(col.name))
            item[col.name] = value
        out.append(item)
    doc["rows"] = out
    return doc


def write_snapshot(
    root: Path,
    manifest: Manifest,
    documents: Iterable[dict[str, Any]],
    accept: Callable[[], None] = lambda: None,
) -> int:
    """Replace the snapshot in ``root`` (other files there are left alone).

    Everything is written beside the old snapshot first; ``accept()`` may raise to keep
    the old one (for instance when a credential was found), else the new one replaces it.
    """
    staging = root / ".ferry-export"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / TABLES).mkdir(parents=True)
    try:
        count = 0
        for doc in documents:
            table_file(staging, doc["table"]).write_text(yamlcodec.dump(doc), encoding="utf-8")
            count += 1
        (staging / MANIFEST).write_text(yamlcodec.dump(manifest.to_dict()), encoding="utf-8")
        accept()
        shutil.rmtree(root / TABLES, ignore_errors=True)
        os.replace(staging / TABLES, root / TABLES)
        os.replace(staging / MANIFEST, root / MANIFEST)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return count
