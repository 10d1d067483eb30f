"""The built-in table catalog of an application profile (NocoBase's, packaged as CSV).

The CSV is the reference list NocoBase documents: each built-in table's owner, its
category (system configuration, business data, runtime scratch) and the default
promotion rule. Tables can be named in camelCase or, when the application sets
``DB_UNDERSCORED``, in snake_case; lookups accept both.
"""

from __future__ import annotations

import csv
import enum
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from controller.api.rules import Rule


class Category(enum.StrEnum):
    SYSTEM = "system"  # configuration: promoted between environments
    BUSINESS = "business"  # users' runtime data: stays in its environment
    RUNTIME = "runtime"  # scratch: neither promoted nor backed up
    USER = "user"  # a collection the builders created
    INTERNAL = "internal"  # Ferry's own bookkeeping: never touched
    UNKNOWN = "unknown"  # nothing classifies it: reported, never silently dropped


@dataclass(frozen=True)
class CatalogEntry:
    table: str
    group: str
    category: Category
    default_rule: Rule
    backed_up: bool

    @property
    def allowed_rules(self) -> frozenset[Rule]:
        """Rules a promotion may use on this table.

        Tables whose documented default moves rows accept every data rule; tables
        documented as structure-only (bookkeeping, business data, runtime scratch)
        never have rows carried between environments.
        """
        if self.category is Category.RUNTIME:
            return frozenset({Rule.SCHEMA_ONLY, Rule.SKIP})
        if self.default_rule.moves_rows:
            return frozenset(Rule)
        return frozenset({Rule.SCHEMA_ONLY, Rule.SKIP})


def underscored(name: str) -> str:
    """``applicationPlugins`` → ``application_plugins`` (Sequelize's underscored naming)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, CatalogEntry]

    def lookup(self, table: str) -> CatalogEntry | None:
        entry = self.entries.get(table)
        if entry is None:
            entry = self._by_underscored().get(table)
        return entry

    def _by_underscored(self) -> dict[str, CatalogEntry]:
        return {underscored(name): e for name, e in self.entries.items()}

    def naming(self, tables: set[str]) -> str | None:
        """``camelCase`` or ``underscored``, judged from which spelling exists."""
        camel = [n for n in self.entries if n != underscored(n)]
        if any(n in tables for n in camel):
            return "camelCase"
        if any(underscored(n) in tables for n in camel):
            return "underscored"
        return None


def parse_catalog(text: str) -> Catalog:
    entries: dict[str, CatalogEntry] = {}
    for row in csv.DictReader(io.StringIO(text)):
        entries[row["table"]] = CatalogEntry(
            table=row["table"],
            group=row["group"],
            category=Category(row["data_category"]),
            default_rule=Rule(row["default_migration_rule"]),
            backed_up=row["backed_up"].strip().lower() == "yes",
        )
    return Catalog(entries)


@cache
def nocobase_catalog() -> Catalog:
    text = (
        resources.files("controller.engine")
        .joinpath("catalog/nocobase-builtin-tables.csv")
        .read_text(encoding="utf-8")
    )
    return parse_catalog(text)
