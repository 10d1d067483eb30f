"""After applying, prove the target holds what the plan promised.

Compares row indexes taken after the write with the source's and the target's before
it, under each table's rule. Any difference aborts the transaction.
"""

from __future__ import annotations

from controller.api.rules import Rule
from controller.engine.plan import Plan
from controller.engine.rowindex import RowIndex
from controller.errors import PermanentError


def _expected_problem(rule: Rule, src: RowIndex, before: RowIndex, after: RowIndex) -> str | None:
    if not src.key_columns:
        return None if after.keyless == src.keyless else "rows differ from the source"
    if rule is Rule.OVERWRITE:
        if after.rows.keys() != src.rows.keys():
            return f"{len(after.rows)} rows instead of {len(src.rows)}"
        for key, entry in src.rows.items():
            if after.rows[key].digest != entry.digest:
                return f"row {key!r} differs from the source"
        return None
    expected_keys = src.rows.keys() | before.rows.keys()
    if after.rows.keys() != expected_keys:
        return f"{len(after.rows)} rows instead of {len(expected_keys)}"
    for key, entry in src.rows.items():
        if rule is Rule.INSERT_IGNORE and key in before.rows:
            wanted = before.rows[key].digest
        else:
            wanted = entry.digest
        if after.rows[key].digest != wanted:
            return f"row {key!r} is not what the plan promised"
    return None


def verify(
    plan: Plan, source: dict[str, RowIndex], before: dict[str, RowIndex], after: dict[str, RowIndex]
) -> None:
    problems = []
    for table_plan in plan.tables:
        name = table_plan.table
        if name not in after:
            continue
        problem = _expected_problem(table_plan.rule, source[name], before[name], after[name])
        if problem:
            problems.append(f"{name}: {problem}")
    if problems:
        raise PermanentError(
            "verification after apply failed: " + "; ".join(problems), reason="VerificationFailed"
        )
