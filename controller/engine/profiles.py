"""Profiles classify every table of a database before any rule is applied.

``nocobase`` knows the built-in catalog and reads the builders' own collections from
the application's ``collections`` table; ``generic`` treats every table as a user
table. Ferry's ledger is internal under every profile.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from dataclasses import dataclass

from controller.api.rules import Rule
from controller.engine.catalog import Catalog, Category, nocobase_catalog
from controller.errors import InvalidInput

LEDGER_TABLE = "ferry_migrations"
# NocoBase's own bookkeeping and per-environment secrets: structure at most, never rows.
NOCOBASE_NEVER_MIGRATED = frozenset({"migrations", "environmentVariables", "environment_variables"})


class Profile(enum.StrEnum):
    NOCOBASE = "nocobase"
    GENERIC = "generic"


def parse_profile(value: str) -> Profile:
    try:
        return Profile(value)
    except ValueError:
        raise InvalidInput(f"unknown profile {value!r} (allowed: nocobase, generic)") from None


@dataclass(frozen=True)
class TableClass:
    table: str
    category: Category
    default_rule: Rule | None  # None: no default, a rule must name it
    allowed: frozenset[Rule]
    origin: str  # why: "catalog: Users", "collection", "generic" …

    @property
    def builtin(self) -> bool:
        return self.category in (Category.SYSTEM, Category.BUSINESS, Category.RUNTIME)


_ALL = frozenset(Rule)


def classify(
    profile: Profile,
    tables: Iterable[str],
    user_collections: Iterable[str] = (),
    catalog: Catalog | None = None,
) -> dict[str, TableClass]:
    result: dict[str, TableClass] = {}
    collections = set(user_collections)
    if profile is Profile.NOCOBASE:
        catalog = catalog or nocobase_catalog()
    for table in sorted(set(tables)):
        if table == LEDGER_TABLE:
            result[table] = TableClass(
                table, Category.INTERNAL, Rule.SKIP, frozenset({Rule.SKIP}), "ferry ledger"
            )
            continue
        if profile is Profile.GENERIC:
            result[table] = TableClass(table, Category.USER, None, _ALL, "generic")
            continue
        assert catalog is not None
        entry = catalog.lookup(table)
        if table in NOCOBASE_NEVER_MIGRATED:
            result[table] = TableClass(
                table,
                Category.SYSTEM,
                Rule.SCHEMA_ONLY,
                frozenset({Rule.SCHEMA_ONLY, Rule.SKIP}),
                "nocobase: never migrated",
            )
        elif entry is not None:
            result[table] = TableClass(
                table,
                entry.category,
                entry.default_rule,
                entry.allowed_rules,
                f"catalog: {entry.group}",
            )
        elif table in collections:
            result[table] = TableClass(table, Category.USER, None, _ALL, "collection")
        else:
            result[table] = TableClass(table, Category.UNKNOWN, None, _ALL, "unclassified")
    return result


def collection_tables(rows: Iterable[tuple[object, object]]) -> list[str]:
    """Table names of the builders' collections, from ``collections`` (name, options).

    A collection's table is its name unless ``options.tableName`` says otherwise.
    """
    names = []
    for name, options in rows:
        table = str(name)
        parsed: object = options
        if isinstance(options, str):
            try:
                parsed = json.loads(options)
            except ValueError:
                parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("tableName"), str):
            table = parsed["tableName"]
        names.append(table)
    return names
