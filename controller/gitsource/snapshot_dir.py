"""The on-disk layout of an exported configuration snapshot, and reading it back.

::

    DIR/ferry-snapshot.yaml        format, dialect, profile, naming, table list
    DIR/tables/<table>.yaml        schema, rule, key, JSON styles, rows sorted by key

A directory is a :class:`SnapshotDirectory` source for ``ferry plan/migrate``.

Anyone who can open a pull request writes these files, so reading them is defensive:
only regular files inside the directory are read (no symlinks, nothing resolving
outside it), each within a size limit, YAML through :mod:`yamlcodec`'s strict loader,
every table's schema checked whole (:func:`TableSchema.from_dict`) before a database
is touched, and a table file must describe the table it is named after. Messages name
the file and what is wrong, never the file's content.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.engine.identifiers import name_problem
from controller.engine.model import DatabaseSchema, Kind, TableSchema
from controller.engine.source import Batch
from controller.engine.sqltypes import DIALECTS
from controller.errors import InvalidInput
from controller.gitsource import yamlcodec

FORMAT = 1
MANIFEST = "ferry-snapshot.yaml"
TABLES = "tables"


MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_TABLE_BYTES = yamlcodec.MAX_TEXT
_FILE_NAME_BYTES = 250  # 255 less ".yaml"


def table_file(root: Path, table: object) -> Path:
    """Where a table's file lives; InvalidInput when the name cannot be a file name."""
    problem = name_problem(table, None)
    if problem is not None:
        raise InvalidInput(f"{MANIFEST}: a table name {problem}")
    assert isinstance(table, str)
    if (
        any(ch in table for ch in "/\\")
        or table.startswith(".")
        or len(table.encode("utf-8")) > _FILE_NAME_BYTES
    ):
        raise InvalidInput(f"{MANIFEST}: table {table[:64]!r} cannot be a file name")
    return root / TABLES / f"{table}.yaml"


def read_inside(root: Path, path: Path, limit: int) -> bytes:
    """The bytes of the regular file ``path`` below ``root``: refused if it or a folder
    on the way is a symlink, if it resolves outside ``root``, or exceeds ``limit``."""
    base = root.resolve()
    relative = path.relative_to(root)
    current = base
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            raise InvalidInput(f"{path}: is a symbolic link (refused)")
    if not current.resolve().is_relative_to(base):
        raise InvalidInput(f"{path}: resolves outside the snapshot directory")
    try:
        fd = os.open(current, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as err:
        raise InvalidInput(f"{path}: cannot be read ({err.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise InvalidInput(f"{path}: not a regular file")
    with os.fdopen(fd, "rb") as handle:
        if info.st_size > limit:
            raise InvalidInput(f"{path}: larger than {limit} bytes")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidInput(f"{path}: larger than {limit} bytes")
    return data


def _load(root: Path, path: Path, limit: int) -> Any:
    data = read_inside(root, path, limit)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidInput(f"{path}: not UTF-8 text (byte {err.start})") from None
    try:
        return yamlcodec.load(text)
    except InvalidInput as err:
        raise InvalidInput(f"{path}: {err}") from None


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


def _str(data: dict[str, Any], key: str, default: str | None, path: Path) -> str | None:
    value = data.get(key, default)
    if value is not None and not isinstance(value, str):
        raise InvalidInput(f"{path}: {key} is not a string")
    return value


def read_manifest(root: Path) -> Manifest:
    path = root / MANIFEST
    if not path.is_file() and not path.is_symlink():
        raise InvalidInput(f"{root} is not a Ferry snapshot directory (no {MANIFEST})")
    data = _load(root, path, MAX_MANIFEST_BYTES)
    if not isinstance(data, dict):
        raise InvalidInput(f"{path}: not a snapshot manifest")
    if data.get("format") != FORMAT:
        raise InvalidInput(f"{path}: unsupported snapshot format (this Ferry reads {FORMAT})")
    dialect = data.get("dialect")
    if dialect not in DIALECTS:
        raise InvalidInput(f"{path}: dialect is not one of {', '.join(DIALECTS)}")
    tables = data.get("tables") or []
    if not isinstance(tables, list):
        raise InvalidInput(f"{path}: tables is not a list")
    for table in tables:
        table_file(root, table)
    if len(set(tables)) != len(tables):
        raise InvalidInput(f"{path}: a table is listed twice")
    server_version = data.get("serverVersion", "")
    return Manifest(
        dialect=str(dialect),
        server_version=str(server_version) if isinstance(server_version, (str, int)) else "",
        profile=_str(data, "profile", "generic", path) or "generic",
        naming=_str(data, "naming", None, path),
        tables=tuple(tables),
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
            data = _load(self.root, path, MAX_TABLE_BYTES)
        except FileNotFoundError:
            raise InvalidInput(f"{path}: listed in {MANIFEST} but missing") from None
        if not isinstance(data, dict) or not isinstance(data.get("schema"), dict):
            raise InvalidInput(f"{path}: not a table file")
        if data.get("table", table) != table:
            raise InvalidInput(f"{path}: describes another table than its name says")
        rows, styles = data.get("rows"), data.get("jsonStyle")
        if rows is not None and not isinstance(rows, list):
            raise InvalidInput(f"{path}: rows is not a list")
        if styles is not None and not (
            isinstance(styles, dict) and all(v in yamlcodec.JSON_STYLES for v in styles.values())
        ):
            raise InvalidInput(f"{path}: jsonStyle names an unknown style")
        self._loaded = (table, data)
        return data

    def schema(self) -> DatabaseSchema:
        """Every listed table's schema, checked whole against the snapshot's dialect."""
        if self._schema is None:
            tables = {}
            for name in self.manifest.tables:
                path = table_file(self.root, name)
                document = self._table_data(name)["schema"]
                try:
                    schema = TableSchema.from_dict(document, self.manifest.dialect)
                except InvalidInput as err:
                    raise InvalidInput(f"{path}: {err}") from None
                if schema.name != name:
                    raise InvalidInput(f"{path}: schema.name differs from the file's name")
                tables[name] = schema
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
                    try:
                        value = yamlcodec.json_from_yaml(value, styles.get(col))
                    except InvalidInput as err:
                        where = f"{table_file(self.root, table)}: row {i}"
                        raise InvalidInput(f"{where}, column {col[:64]!r}: {err}") from None
                values.append(value)
            batch.append(tuple(values))
            if len(batch) >= 2000:
                yield batch
                batch = []
        if batch:
            yield batch
