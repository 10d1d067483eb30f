"""A dialect-neutral description of a database's schema.

Column types are reduced to a *kind* (integer, text, json, datetimetz …) that every
supported dialect can express, plus the dialect's own spelling (``native``) so a copy
between two databases of the same dialect keeps the exact type.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


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
        return ColumnType(
            kind=Kind(data["kind"]),
            length=data.get("length"),
            precision=data.get("precision"),
            scale=data.get("scale"),
            variant=data.get("variant"),
            native=data.get("native", ""),
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
        return Column(
            name=data["name"],
            type=ColumnType.from_dict(data["type"]),
            nullable=bool(data.get("nullable", True)),
            autoincrement=bool(data.get("autoincrement", False)),
            default=data.get("default"),
        )


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
    def from_dict(data: dict[str, Any]) -> TableSchema:
        def idx(d: dict[str, Any]) -> Index:
            return Index(d["name"], tuple(d["columns"]), bool(d.get("unique", False)))

        return TableSchema(
            name=data["name"],
            columns=tuple(Column.from_dict(c) for c in data["columns"]),
            primary_key=tuple(data.get("primaryKey", ())),
            uniques=tuple(idx(u) for u in data.get("uniques", ())),
            indexes=tuple(idx(i) for i in data.get("indexes", ())),
        )


@dataclass(frozen=True)
class DatabaseSchema:
    dialect: str  # "sqlite" | "postgresql" | "mysql"
    server_version: str
    tables: dict[str, TableSchema] = field(default_factory=dict)

    def table(self, name: str) -> TableSchema | None:
        return self.tables.get(name)
