"""Migration rules: the ``spec.rules`` of a Migration and the CLI's ``--rules`` file.

The shape is ``{system, user, strict, allowDestructive, ignoreColumns, tables: [{match,
rule, key, references, ignore}]}``; ``references`` maps a column to the table whose ID
it holds, so that the column follows that table's rows when a natural key matches them
to other IDs. ``ignoreColumns`` (every table) and ``ignore`` (one table) name columns
that do not make a row "changed", such as audit timestamps that differ between
installations; a row updated for another reason still carries them.
Parsing rejects unknown rule names, unknown fields, malformed globs and keys, naming
the offending value, because a typo in a promotion must never silently pick a default.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from controller.errors import InvalidInput


class Rule(enum.StrEnum):
    OVERWRITE = "overwrite"
    UPSERT = "upsert"
    INSERT_IGNORE = "insert-ignore"
    SCHEMA_ONLY = "schema-only"
    SKIP = "skip"

    @property
    def moves_rows(self) -> bool:
        return self in (Rule.OVERWRITE, Rule.UPSERT, Rule.INSERT_IGNORE)

    @property
    def syncs_schema(self) -> bool:
        return self is not Rule.SKIP


ALL_RULES: tuple[Rule, ...] = tuple(Rule)
_GLOB_OK = re.compile(r"^[A-Za-z0-9_$.*?\[\]!-]+$")
_COLUMN_OK = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_TABLE_OK = re.compile(r"^[A-Za-z0-9_$.-]+$")


def parse_rule(value: object, where: str) -> Rule:
    try:
        return Rule(str(value))
    except ValueError:
        allowed = ", ".join(r.value for r in Rule)
        raise InvalidInput(f"{where}: unknown rule {value!r} (allowed: {allowed})") from None


@dataclass(frozen=True)
class TableRule:
    """A per-table override: ``match`` is an exact table name or a glob."""

    match: str
    rule: Rule
    key: tuple[str, ...] = ()
    references: tuple[tuple[str, str], ...] = ()  # (column, referenced table), sorted
    ignore: tuple[str, ...] = ()  # columns not compared (on top of ignoreColumns)

    @property
    def is_glob(self) -> bool:
        return any(ch in self.match for ch in "*?[")


@dataclass(frozen=True)
class RulesSpec:
    system: Rule | None = None  # None: each built-in table's catalog default
    user: Rule = Rule.SCHEMA_ONLY
    strict: bool = False
    allow_destructive: bool = False
    ignore_columns: tuple[str, ...] = ()  # columns never compared, in every table
    tables: tuple[TableRule, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "user": self.user.value,
            "strict": self.strict,
            "allowDestructive": self.allow_destructive,
        }
        if self.system is not None:
            out["system"] = self.system.value
        if self.ignore_columns:
            out["ignoreColumns"] = list(self.ignore_columns)
        out["tables"] = [_table_rule_dict(t) for t in self.tables]
        return out


def _table_rule_dict(rule: TableRule) -> dict[str, Any]:
    out: dict[str, Any] = {"match": rule.match, "rule": rule.rule.value}
    if rule.key:
        out["key"] = list(rule.key)
    if rule.references:
        out["references"] = dict(rule.references)
    if rule.ignore:
        out["ignore"] = list(rule.ignore)
    return out


_TOP_FIELDS = {"system", "user", "strict", "allowDestructive", "ignoreColumns", "tables"}
_TABLE_FIELDS = {"match", "rule", "key", "references", "ignore"}


def _check_fields(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        raise InvalidInput(f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {known})")


def _parse_bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidInput(f"{where}: expected true or false, got {value!r}")


def _parse_glob(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where}: expected a table name or glob, got {value!r}")
    if not _GLOB_OK.match(value) or value.count("[") != value.count("]"):
        raise InvalidInput(f"{where}: malformed table name or glob {value!r}")
    return value


def _parse_columns(value: object, where: str, what: str = "key") -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not value:
        raise InvalidInput(
            f"{where}: {what} must be a non-empty list of column names, got {value!r}"
        )
    for col in value:
        if not isinstance(col, str) or not _COLUMN_OK.match(col):
            raise InvalidInput(f"{where}: bad {what} column {col!r}")
    if len(set(value)) != len(value):
        raise InvalidInput(f"{where}: {what} lists a column twice: {value!r}")
    return tuple(value)


def _parse_references(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not value:
        raise InvalidInput(
            f"{where}: references must map column names to table names, got {value!r}"
        )
    for column, table in value.items():
        if not isinstance(column, str) or not _COLUMN_OK.match(column):
            raise InvalidInput(f"{where}: bad column name {column!r}")
        if not isinstance(table, str) or not _TABLE_OK.match(table):
            raise InvalidInput(f"{where}.{column}: bad table name {table!r} (no globs here)")
    return tuple(sorted((str(c), str(t)) for c, t in value.items()))


def parse_rules(data: Mapping[str, Any] | None) -> RulesSpec:
    """Parse and validate a rules mapping; ``None`` gives the defaults."""
    if data is None:
        return RulesSpec()
    if not isinstance(data, Mapping):
        raise InvalidInput(f"rules: expected a mapping, got {type(data).__name__}")
    _check_fields(data, _TOP_FIELDS, "rules")
    system = parse_rule(data["system"], "rules.system") if data.get("system") else None
    user = parse_rule(data.get("user", Rule.SCHEMA_ONLY.value), "rules.user")
    tables_raw = data.get("tables") or []
    if not isinstance(tables_raw, list):
        raise InvalidInput("rules.tables: expected a list")
    tables: list[TableRule] = []
    for i, item in enumerate(tables_raw):
        where = f"rules.tables[{i}]"
        if not isinstance(item, Mapping):
            raise InvalidInput(f"{where}: expected a mapping, got {item!r}")
        _check_fields(item, _TABLE_FIELDS, where)
        if "match" not in item or "rule" not in item:
            raise InvalidInput(f"{where}: 'match' and 'rule' are required")
        tables.append(
            TableRule(
                match=_parse_glob(item["match"], f"{where}.match"),
                rule=parse_rule(item["rule"], f"{where}.rule"),
                key=_parse_columns(item.get("key"), f"{where}.key"),
                references=_parse_references(item.get("references"), f"{where}.references"),
                ignore=_parse_columns(item.get("ignore"), f"{where}.ignore", "ignore"),
            )
        )
    return RulesSpec(
        system=system,
        user=user,
        strict=_parse_bool(data.get("strict", False), "rules.strict"),
        allow_destructive=_parse_bool(
            data.get("allowDestructive", False), "rules.allowDestructive"
        ),
        ignore_columns=_parse_columns(
            data.get("ignoreColumns"), "rules.ignoreColumns", "ignoreColumns"
        ),
        tables=tuple(tables),
    )
