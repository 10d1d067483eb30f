"""The on-disk layout of an exported configuration snapshot, and reading it back.

::

    DIR/ferry-snapshot.yaml        format, dialect, profile, naming, table list
    DIR/tables/<table>.yaml        schema, rule, key, JSON styles, rows sorted by key

A directory is a :class:`SnapshotDirectory` source for ``ferry plan/migrate``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.engine.model import DatabaseSchema, Kind, TableSchema
from controller.engine.source import Batch
from controller.errors import InvalidInput
from controller.gitsource import yamlcodec

FORMAT = 1
MANIFEST = "ferry-snapshot.yaml"
TABLES = "tables"


def table_file(root: Path, table: str) -> Path:
    if "/" in table or table.startswith("."):
        raise InvalidInput(f"table name {table!r} cannot be a file name")
    return root / TABLES / f"{table}.yaml"


@dataclass(frozen=True)
class Manifest:
    dialect: str
    server_version: str
    profile: str
    naming: str | None
    tables: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "dialect": self.dialect,
            "serverVersion": self.server_version,
            "profile": self.profile,
            "naming": self.naming,
            "tables": list(self.tables),
        }


def read_manifest(root: Path) -> Manifest:
    path = root / MANIFEST
    if not path.is_file():
        raise InvalidInput(f"{root} is not a Ferry snapshot directory (no {MANIFEST})")
    try:
        data = yamlcodec.load(path.read_text(encoding="utf-8"))
    except Exception as err:
        raise InvalidInput(f"{path}: not valid YAML: {err}") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInput(
            f"{path}: unsupported snapshot format {data.get('format')!r}"
            if isinstance(data, dict)
            else f"{path}: not a snapshot manifest"
        )
    return Manifest(
        dialect=str(data["dialect"]),
        server_version=str(data.get("serverVersion", "")),
        profile=str(data.get("profile", "generic")),
        naming=data.get("naming"),
        tables=tuple(data.get("tables") or ()),
    )


class SnapshotDirectory:
    """A snapshot directory as a planning source."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.manifest = read_manifest(root)
        self._schema: DatabaseSchema | None = None
        self._loaded: tuple[str, dict[str, Any]] | None = None

    @property
    def label(self) -> str:
        return str(self.root)

    def _table_data(self, table: str) -> dict[str, Any]:
        if self._loaded and self._loaded[0] == table:
            return self._loaded[1]
        path = table_file(self.root, table)
        try:
            data = yamlcodec.load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InvalidInput(f"{path}: listed in {MANIFEST} but missing") from None
        except Exception as err:
            raise InvalidInput(f"{path}: not valid YAML: {err}") from err
        if not isinstance(data, dict) or "schema" not in data:
            raise InvalidInput(f"{path}: not a table file")
        self._loaded = (table, data)
        return data

    def schema(self) -> DatabaseSchema:
        if self._schema is None:
            tables = {}
            for name in self.manifest.tables:
                try:
                    tables[name] = TableSchema.from_dict(self._table_data(name)["schema"])
                except (KeyError, TypeError, ValueError) as err:
                    raise InvalidInput(f"{table_file(self.root, name)}: bad schema: {err}") from err
            self._schema = DatabaseSchema(
                self.manifest.dialect, self.manifest.server_version, tables
            )
        return self._schema

    def has_rows(self, table: str) -> bool:
        return "rows" in self._table_data(table)

    def batches(self, table: str, columns: Sequence[str]) -> Iterator[Batch]:
        data = self._table_data(table)
        schema = self.schema().tables[table]
        styles = data.get("jsonStyle") or {}
        json_cols = {c.name for c in schema.columns if c.type.kind is Kind.JSON}
        batch: Batch = []
        for i, row in enumerate(data.get("rows") or []):
            if not isinstance(row, dict):
                raise InvalidInput(f"{table_file(self.root, table)}: row {i} is not a mapping")
            values = []
            for col in columns:
                value = row.get(col)
                if col in json_cols and value is not None:
                    value = yamlcodec.json_from_yaml(value, styles.get(col))
                values.append(value)
            batch.append(tuple(values))
            if len(batch) >= 2000:
                yield batch
                batch = []
        if batch:
            yield batch
