"""A dialect-neutral description of a database's schema.

Column types are reduced to a *kind* (integer, text, json, datetimetz …) that every
supported dialect can express, plus the dialect's own spelling (``native``) so a copy
between two databases of the same dialect keeps the exact type.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from controller.errors import InvalidInput

MAX_SIZE = 2**31 - 1


def fields(data: object, what: str, allowed: set[str]) -> dict[str, Any]:
    """``data`` as a mapping with only ``allowed`` keys (unknown keys are refused, so
    a misspelt field is never silently ignored)."""
    if not isinstance(data, dict):
        raise InvalidInput(f"{what}: not a mapping")
    unknown = [k for k in data if k not in allowed]
    if unknown:
        raise InvalidInput(f"{what}: unknown field(s) {[str(k)[:40] for k in unknown[:5]]}")
    return data


def _size(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SIZE:
        raise InvalidInput(f"type: {what} is not a whole number from 0 to {MAX_SIZE}")
    return value


class Kind(enum.StrEnum):
    SMALLINT = "smallint"
    INTEGER = "integer"
    BIGINT = "bigint"
    BOOLEAN = "boolean"
    FLOAT = "float"
    DECIMAL = "decimal"
    STRING = "string"
    TEXT = "text"
    BINARY = "binary"
    DATE = "date"
    TIME = "time"
    DATETIME = "datetime"
    DATETIMETZ = "datetimetz"
    JSON = "json"
    UUID = "uuid"
    OTHER = "other"


INTEGER_KINDS = (Kind.SMALLINT, Kind.INTEGER, Kind.BIGINT)


@dataclass(frozen=True)
class ColumnType:
    kind: Kind
    length: int | None = None  # strings
    precision: int | None = None  # decimals
    scale: int | None = None
    variant: str | None = None  # e.g. "jsonb" for PostgreSQL JSONB
    native: str = ""  # the source dialect's spelling, e.g. "VARCHAR(255)"

    @property
    def zoned_time(self) -> bool:
        """A time of day with a UTC offset (PostgreSQL ``timetz``), which no driver's
        ``time`` value and no Arrow type carries: backups keep it as the server's text."""
        native = self.native.upper()
        return self.kind is Kind.TIME and ("WITH TIME ZONE" in native or "TIMETZ" in native)

    def describe(self) -> str:
        if self.kind is Kind.STRING and self.length:
            return f"string({self.length})"
        if self.kind is Kind.DECIMAL and self.precision is not None:
            return f"decimal({self.precision},{self.scale or 0})"
        if self.variant:
            return f"{self.kind.value}:{self.variant}"
        return self.kind.value

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value}
        for name in ("length", "precision", "scale", "variant"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.native:
            out["native"] = self.native
        return out

    @staticmethod
    def from_dict(data: dict[str, Any]) -> ColumnType:
        """Structure only; :func:`controller.engine.schema_check.check_table` checks the
        spelling against the dialect."""
        data = fields(data, "type", {"kind", "length", "precision", "scale", "variant", "native"})
        kinds = {k.value for k in Kind}
        if data.get("kind") not in kinds:
            raise InvalidInput("type: unknown kind")
        variant = data.get("variant")
        if variant not in (None, "jsonb"):
            raise InvalidInput("type: unknown variant")
        native = data.get("native", "")
        if not isinstance(native, str):
            raise InvalidInput("type: native is not a string")
        return ColumnType(
            kind=Kind(data["kind"]),
            length=_size(data.get("length"), "length"),
            precision=_size(data.get("precision"), "precision"),
            scale=_size(data.get("scale"), "scale"),
            variant=variant,
            native=native,
        )


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    nullable: bool = True
    autoincrement: bool = False
    default: str | None = None  # SQL text of a server default, informative only

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type.to_dict(),
            "nullable": self.nullable,
        }
        if self.autoincrement:
            out["autoincrement"] = True
        if self.default is not None:
            out["default"] = self.default
        return out

    @staticmethod
    def from_dict(data: dict[str, Any]) -> Column:
        data = fields(data, "column", {"name", "type", "nullable", "autoincrement", "default"})
        name = data.get("name")
        if not isinstance(name, str):
            raise InvalidInput("column: name is not a string")
        shown = name[:64]  # messages only; the full name is checked by check_table
        flags = (data.get("nullable", True), data.get("autoincrement", False))
        if not all(isinstance(f, bool) for f in flags):
            raise InvalidInput(f"column {shown!r}: nullable and autoincrement are true or false")
        default = data.get("default")
        if default is not None and not isinstance(default, str):
            raise InvalidInput(f"column {shown!r}: default is not a string")
        try:
            ctype = ColumnType.from_dict(data.get("type"))  # type: ignore[arg-type]
        except InvalidInput as err:
            raise InvalidInput(f"column {shown!r}: {err}") from None
        return Column(name, ctype, nullable=flags[0], autoincrement=flags[1], default=default)


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]
    unique: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "columns": list(self.columns), "unique": self.unique}


@dataclass(frozen=True)
class TableSchema:
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    uniques: tuple[Index, ...] = ()  # unique constraints (as opposed to unique indexes)
    indexes: tuple[Index, ...] = ()

    def column(self, name: str) -> Column | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def unique_column_sets(self) -> list[tuple[str, ...]]:
        """Column sets guaranteed unique: the primary key, constraints, unique indexes."""
        sets = [self.primary_key] if self.primary_key else []
        sets += [u.columns for u in self.uniques]
        sets += [i.columns for i in self.indexes if i.unique]
        return sets

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": [c.to_dict() for c in self.columns],
            "primaryKey": list(self.primary_key),
            "uniques": [u.to_dict() for u in self.uniques],
            "indexes": [i.to_dict() for i in self.indexes],
        }

    @staticmethod
    def from_dict(
        data: dict[str, Any], dialect: str | None = None, *, spelling: bool = True
    ) -> TableSchema:
        """A table read from a snapshot or a backup manifest: untrusted, so every field
        is checked here, before anything connects (names, types and defaults against
        ``dialect``; None: against any supported dialect). InvalidInput names the table
        and column, never a value."""
        from controller.engine.schema_check import table_from_dict

        return table_from_dict(data, dialect, spelling=spelling)


@dataclass(frozen=True)
class DatabaseSchema:
    dialect: str  # "sqlite" | "postgresql" | "mysql"
    server_version: str
    tables: dict[str, TableSchema] = field(default_factory=dict)

    def table(self, name: str) -> TableSchema | None:
        return self.tables.get(name)
