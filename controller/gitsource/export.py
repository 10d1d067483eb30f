"""Write a deterministic, reviewable snapshot of a database's configuration."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from controller.engine.model import Kind, TableSchema
from controller.engine.rowindex import RowShape
from controller.engine.secret_scan import secret_paths
from controller.engine.source import Batch
from controller.errors import InvalidInput
from controller.gitsource import yamlcodec
from controller.gitsource.snapshot_dir import (
    MANIFEST,
    TABLES,
    Manifest,
    read_manifest,
    table_file,
)


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


def _previous_tables(root: Path) -> tuple[str, ...]:
    """Tables the snapshot already in ``root`` lists: the files an earlier export wrote."""
    if not (root / MANIFEST).is_file():
        return ()
    try:
        return read_manifest(root).tables
    except InvalidInput:
        return ()  # not a manifest Ferry can read: its files are not known to be Ferry's


def _refuse_links(root: Path) -> None:
    for path in (root / TABLES, root / MANIFEST):
        if path.is_symlink():
            raise InvalidInput(f"{path}: is a symbolic link; export writes only real files")
    if (root / TABLES).exists() and not (root / TABLES).is_dir():
        raise InvalidInput(f"{root / TABLES}: exists and is not a directory")


def write_snapshot(
    root: Path,
    manifest: Manifest,
    documents: Iterable[dict[str, Any]],
    accept: Callable[[], None] = lambda: None,
) -> int:
    """Replace the snapshot in ``root``; only files Ferry wrote are replaced or removed.

    Everything is written to a fresh staging folder first; ``accept()`` may raise to
    keep the old snapshot (for instance when a credential was found). Then each table
    file is moved into place, table files the previous manifest listed and the new one
    does not are removed, and the manifest is moved last. Other files in ``tables/``
    (notes, a README) are left alone.
    """
    root.mkdir(parents=True, exist_ok=True)
    _refuse_links(root)
    old = _previous_tables(root)
    staging = Path(tempfile.mkdtemp(prefix=".ferry-export-", dir=root))
    try:
        (staging / TABLES).mkdir()
        written = []
        for doc in documents:
            table_file(staging, doc["table"]).write_text(yamlcodec.dump(doc), encoding="utf-8")
            written.append(doc["table"])
        (staging / MANIFEST).write_text(yamlcodec.dump(manifest.to_dict()), encoding="utf-8")
        accept()
        (root / TABLES).mkdir(exist_ok=True)
        for table in written:
            os.replace(table_file(staging, table), table_file(root, table))
        for table in set(old) - set(written):
            stale = table_file(root, table)
            if stale.is_file() and not stale.is_symlink():
                stale.unlink()
        os.replace(staging / MANIFEST, root / MANIFEST)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return len(written)
