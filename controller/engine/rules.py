"""Resolve which rule, and which key, applies to every table.

Precedence: an override naming the table exactly, then the first glob that matches,
then the category default (``system`` for built-in configuration, ``user`` for the
builders' collections, the catalog's own default otherwise). A table nothing covers is
a warning (or, with ``strict``, an error); it is never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from controller.api.rules import OnConflict, Rule, RulesSpec, TableRule
from controller.engine.catalog import Category
from controller.engine.profiles import TableClass
from controller.errors import CheckFailed


@dataclass(frozen=True)
class Resolved:
    table: str
    rule: Rule
    key: tuple[str, ...]  # natural key from an override; empty means the primary key
    category: Category
    why: str
    references: tuple[tuple[str, str], ...] = ()  # (column, table) from an override
    ignore: tuple[str, ...] = ()  # columns not compared: ignoreColumns and the override's
    on_conflict: OnConflict = OnConflict.FAIL  # the override's, for a three-way merge


def _ignored(everywhere: tuple[str, ...], here: tuple[str, ...]) -> tuple[str, ...]:
    return everywhere + tuple(c for c in here if c not in everywhere)


def _allowed_text(allowed: frozenset[Rule]) -> str:
    return ", ".join(r.value for r in Rule if r in allowed)


def _override_for(table: str, spec: RulesSpec) -> tuple[int, TableRule] | None:
    for i, tr in enumerate(spec.tables):
        if not tr.is_glob and tr.match == table:
            return i, tr
    for i, tr in enumerate(spec.tables):
        if tr.is_glob and fnmatchcase(table, tr.match):
            return i, tr
    return None


def _default(cls: TableClass, spec: RulesSpec) -> tuple[Rule | None, str]:
    if cls.category is Category.SYSTEM:
        if spec.system is not None and spec.system in cls.allowed:
            return spec.system, "system default"
        return cls.default_rule, f"{cls.origin} default"
    if cls.category is Category.USER:
        return spec.user, "user default"
    if cls.category is Category.UNKNOWN:
        return None, "not covered"
    return cls.default_rule, f"{cls.origin} default"


def resolve_rules(
    classes: dict[str, TableClass], spec: RulesSpec
) -> tuple[dict[str, Resolved], list[str]]:
    """Return the resolution per table and the warnings; raise on refused rules."""
    resolved: dict[str, Resolved] = {}
    warnings: list[str] = []
    problems: list[str] = []
    used: set[int] = set()
    uncovered: list[str] = []
    for table, cls in sorted(classes.items()):
        if cls.category is Category.INTERNAL:
            continue
        hit = _override_for(table, spec)
        if hit is not None:
            i, tr = hit
            used.add(i)
            if tr.rule in cls.allowed:
                resolved[table] = Resolved(
                    table,
                    tr.rule,
                    tr.key,
                    cls.category,
                    f"rules.tables[{i}] ({tr.match})",
                    tr.references,
                    _ignored(spec.ignore_columns, tr.ignore),
                    tr.on_conflict,
                )
                continue
            msg = (
                f"rules.tables[{i}]: rule {tr.rule.value} is not allowed on table {table} "
                f"({cls.origin}; allowed: {_allowed_text(cls.allowed)})"
            )
            if not tr.is_glob:
                problems.append(msg)
                continue
            warnings.append(msg + "; the table keeps its default")
        rule, why = _default(cls, spec)
        if rule is None:
            uncovered.append(table)
            resolved[table] = Resolved(table, Rule.SKIP, (), cls.category, why)
            continue
        resolved[table] = Resolved(table, rule, (), cls.category, why, ignore=spec.ignore_columns)
    for i, tr in enumerate(spec.tables):
        if i not in used:
            warnings.append(f"rules.tables[{i}] ({tr.match}) matches no table")
    if uncovered:
        text = f"{len(uncovered)} table(s) covered by no rule or catalog: {', '.join(uncovered)}"
        if spec.strict:
            problems.append(text + " (strict mode)")
        else:
            warnings.append(text + "; they are skipped — name them in rules.tables")
    if problems:
        raise CheckFailed("; ".join(problems), problems=problems, reason="RuleRefused")
    return resolved, warnings
