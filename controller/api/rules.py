"""Migration rules: the ``spec.rules`` of a Migration and the CLI's ``--rules`` file.

The shape is ``{system, user, strict, allowDestructive, ignoreColumns, merge, tables:
[{match, rule, key, references, ignore, onConflict}]}``; ``references`` maps a column to
the table whose ID it holds, so that the column follows that table's rows when a natural
key matches them to other IDs. ``ignoreColumns`` (every table) and ``ignore`` (one
table) name columns that do not make a row "changed", such as audit timestamps that
differ between installations; a row updated for another reason still carries them.
``merge: threeWay`` merges each table against the base this source last promoted
(:mod:`controller.engine.merge3`); ``onConflict`` says which side a table's conflicts
take.
Parsing rejects unknown rule names, unknown fields, malformed globs and keys, naming
the offending value, because a typo in a promotion must never silently pick a default.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from controller.errors import InvalidInput


class Merge(enum.StrEnum):
    """How rows that exist on both sides are combined."""

    NONE = "none"  # the table's rule alone decides (the source's row wins)
    THREE_WAY = "threeWay"  # against the base this source last promoted (merge3)


class OnConflict(enum.StrEnum):
    """What a three-way merge does with a column both sides changed differently."""

    FAIL = "fail"  # listed in the plan, blocks the migration
    SOURCE = "source"
    TARGET = "target"


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
    if isinstance(value, str):
        try:
            return Rule(value)
        except ValueError:
            pass
    allowed = ", ".join(r.value for r in Rule)
    raise InvalidInput(f"{where}: unknown rule {_shown(value)} (allowed: {allowed})")


@dataclass(frozen=True)
class TableRule:
    """A per-table override: ``match`` is an exact table name or a glob."""

    match: str
    rule: Rule
    key: tuple[str, ...] = ()
    references: tuple[tuple[str, str], ...] = ()  # (column, referenced table), sorted
    ignore: tuple[str, ...] = ()  # columns not compared (on top of ignoreColumns)
    on_conflict: OnConflict = OnConflict.FAIL  # three-way merge only

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
    merge: Merge = Merge.NONE

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
        if self.merge is not Merge.NONE:
            out["merge"] = self.merge.value
        return out


def _table_rule_dict(rule: TableRule) -> dict[str, Any]:
    out: dict[str, Any] = {"match": rule.match, "rule": rule.rule.value}
    if rule.key:
        out["key"] = list(rule.key)
    if rule.references:
        out["references"] = dict(rule.references)
    if rule.ignore:
        out["ignore"] = list(rule.ignore)
    if rule.on_conflict is not OnConflict.FAIL:
        out["onConflict"] = rule.on_conflict.value
    return out


_TOP_FIELDS = {
    "system",
    "user",
    "strict",
    "allowDestructive",
    "ignoreColumns",
    "tables",
    "merge",
}
_TABLE_FIELDS = {"match", "rule", "key", "references", "ignore", "onConflict"}

# The CRD's limits (crds/ferry.dev_migrations.yaml), so a rules file the CLI accepts
# is one the API server accepts too, and no input is unbounded.
MAX_TABLES = 512
MAX_KEY = 16
MAX_IGNORE = 64
MAX_REFERENCES = 32
MAX_COLUMN = 128  # characters in a column name
MAX_TABLE = 253  # characters in a table name or glob
_SHOWN = 60  # characters of an offending value quoted back


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}… ({len(text)} characters)"


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    # Only the type: a whole wrong file (``--rules /etc/passwd``) is not echoed back.
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{where}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise InvalidInput(f"{where}: field names must be strings, got {_shown(key)}")
    return value


def _check_fields(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        known = ", ".join(sorted(allowed))
        names = ", ".join(_cut(u) for u in unknown[:3]) + (", …" if len(unknown) > 3 else "")
        raise InvalidInput(f"{where}: unknown field(s) {names} (allowed: {known})")


def _cut(name: str, limit: int = 40) -> str:
    """A field name as shown in an error: short, so a wrong file is not echoed back."""
    text = repr(name)[1:-1]
    return text if len(text) <= limit else f"{text[:limit]}…"


def _parse_bool(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    raise InvalidInput(f"{where}: expected true or false, got {_shown(value)}")


def _parse_glob(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{where}: expected a table name or glob, got {_shown(value)}")
    if len(value) > MAX_TABLE:
        raise InvalidInput(f"{where}: longer than {MAX_TABLE} characters: {_shown(value)}")
    if not _GLOB_OK.match(value) or not _brackets_balanced(value):
        raise InvalidInput(f"{where}: malformed table name or glob {_shown(value)}")
    return value


def _brackets_balanced(glob: str) -> bool:
    """Every ``[`` closes with a ``]`` before the next ``[``: a character class, as
    ``fnmatch`` reads it (an unclosed one would match a literal ``[``, not intended)."""
    depth = 0
    for i, ch in enumerate(glob):
        if ch == "[":
            if depth:
                return False
            depth = 1
            start = i
        elif ch == "]" and depth:
            if i == start + 1 or (i == start + 2 and glob[start + 1] == "!"):
                return False  # an empty class: '[]' or '[!]'
            depth = 0
        elif ch == "]":
            return False
    return depth == 0


def _parse_list(value: object, where: str, what: str, limit: int) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise InvalidInput(
            f"{where}: {what} must be a non-empty list of column names, got {_shown(value)}"
        )
    if len(value) > limit:
        raise InvalidInput(f"{where}: {what} lists {len(value)} columns (at most {limit})")
    return value


def _parse_column(value: object, where: str, what: str) -> str:
    if not isinstance(value, str) or not _COLUMN_OK.match(value) or len(value) > MAX_COLUMN:
        raise InvalidInput(f"{where}: bad {what} column {_shown(value)}")
    return value


def _parse_columns(
    value: object, where: str, what: str = "key", limit: int = MAX_KEY
) -> tuple[str, ...]:
    if value is None:
        return ()
    columns = [_parse_column(c, where, what) for c in _parse_list(value, where, what, limit)]
    if len(set(columns)) != len(columns):
        raise InvalidInput(f"{where}: {what} lists a column twice: {_shown(columns)}")
    return tuple(columns)


def _parse_references(value: object, where: str) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping) or not value:
        raise InvalidInput(
            f"{where}: references must map column names to table names, got {_shown(value)}"
        )
    if len(value) > MAX_REFERENCES:
        raise InvalidInput(f"{where}: {len(value)} references (at most {MAX_REFERENCES})")
    for column, table in value.items():
        _parse_column(column, where, "reference")
        if not isinstance(table, str) or not _TABLE_OK.match(table) or len(table) > MAX_TABLE:
            raise InvalidInput(f"{where}.{column}: bad table name {_shown(table)} (no globs here)")
    return tuple(sorted((str(c), str(t)) for c, t in value.items()))


_E = TypeVar("_E", bound=enum.StrEnum)


def _parse_choice(kind: type[_E], value: object, default: _E, where: str) -> _E:
    if value is None:
        return default
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            pass
    allowed = ", ".join(v.value for v in kind)
    raise InvalidInput(f"{where}: unknown value {_shown(value)} (allowed: {allowed})")


def _optional_rule(data: Mapping[str, Any], name: str) -> Rule | None:
    """An absent or null rule is the default; any other value must name a rule
    (``system: 0`` or ``system: ""`` used to be read as "not given")."""
    value = data.get(name)
    return None if value is None else parse_rule(value, f"rules.{name}")


def _parse_table(item: object, where: str) -> TableRule:
    item = _mapping(item, where)
    _check_fields(item, _TABLE_FIELDS, where)
    if "match" not in item or "rule" not in item:
        raise InvalidInput(f"{where}: 'match' and 'rule' are required")
    return TableRule(
        match=_parse_glob(item["match"], f"{where}.match"),
        rule=parse_rule(item["rule"], f"{where}.rule"),
        key=_parse_columns(item.get("key"), f"{where}.key"),
        references=_parse_references(item.get("references"), f"{where}.references"),
        ignore=_parse_columns(item.get("ignore"), f"{where}.ignore", "ignore", MAX_IGNORE),
        on_conflict=_parse_choice(
            OnConflict, item.get("onConflict"), OnConflict.FAIL, f"{where}.onConflict"
        ),
    )


def parse_rules(data: Mapping[str, Any] | None) -> RulesSpec:
    """Parse and validate a rules mapping; ``None`` gives the defaults.

    Any other value is untrusted input (a file, a custom resource): every way it can
    be wrong raises :class:`InvalidInput`, never another exception.
    """
    if data is None:
        return RulesSpec()
    data = _mapping(data, "rules")
    _check_fields(data, _TOP_FIELDS, "rules")
    tables_raw = data.get("tables")
    if tables_raw is None:
        tables_raw = []
    if not isinstance(tables_raw, list):
        raise InvalidInput(f"rules.tables: expected a list, got {_shown(tables_raw)}")
    if len(tables_raw) > MAX_TABLES:
        raise InvalidInput(f"rules.tables: {len(tables_raw)} entries (at most {MAX_TABLES})")
    tables = [_parse_table(item, f"rules.tables[{i}]") for i, item in enumerate(tables_raw)]
    return RulesSpec(
        system=_optional_rule(data, "system"),
        user=_optional_rule(data, "user") or Rule.SCHEMA_ONLY,
        strict=_parse_bool(data.get("strict", False), "rules.strict"),
        allow_destructive=_parse_bool(
            data.get("allowDestructive", False), "rules.allowDestructive"
        ),
        ignore_columns=_parse_columns(
            data.get("ignoreColumns"), "rules.ignoreColumns", "ignoreColumns", MAX_IGNORE
        ),
        tables=tuple(tables),
        merge=_parse_choice(Merge, data.get("merge"), Merge.NONE, "rules.merge"),
    )
