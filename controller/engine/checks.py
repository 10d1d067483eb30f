"""Checks that must pass before anything is changed.

Each check returns the problems it found (all of them, so a user fixes everything in
one round) instead of stopping at the first; :func:`require` turns them into one
:class:`CheckFailed`.
"""

from __future__ import annotations

from collections.abc import Iterable

from controller.engine.model import DatabaseSchema, Kind
from controller.errors import CheckFailed


def missing_variables(referenced: Iterable[str], available: Iterable[str]) -> list[str]:
    return sorted(set(referenced) - set(available))


def variables_problems(referenced: set[str], available: frozenset[str] | None) -> list[str]:
    if not referenced:
        return []
    if available is None:
        return [
            f"migrated rows reference variables ({', '.join(sorted(referenced))}) but the "
            "target's variables are unknown: pass --variables FILE"
        ]
    missing = missing_variables(referenced, available)
    if missing:
        return [f"variables missing in the target: {', '.join(missing)}"]
    return []


def compatibility_problems(
    source: DatabaseSchema,
    target: DatabaseSchema,
    tables: Iterable[str],
    *,
    source_naming: str | None,
    target_naming: str | None,
) -> list[str]:
    problems: list[str] = []
    if source_naming and target_naming and source_naming != target_naming:
        problems.append(
            f"table naming differs: source uses {source_naming}, target uses "
            f"{target_naming} (DB_UNDERSCORED must match)"
        )
    if source.dialect != target.dialect:
        for name in sorted(tables):
            table = source.table(name)
            if table is None:
                continue
            for col in table.columns:
                if col.type.kind is Kind.OTHER:
                    problems.append(
                        f"{name}.{col.name}: type {col.type.native or 'unknown'} of "
                        f"{source.dialect} has no {target.dialect} equivalent"
                    )
    return problems


def require(problems: list[str], *, reason: str = "CheckFailed") -> None:
    if problems:
        raise CheckFailed("; ".join(problems), problems=problems, reason=reason)
