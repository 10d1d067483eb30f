"""After applying, prove the target holds what the plan promised.

Compares row indexes taken after the write with the source's and the target's before
it, under each table's rule. Any difference aborts the transaction.
"""

from __future__ import annotations

from controller.api.rules import Rule
from controller.engine.plan import Plan
from controller.engine.rowindex import RowIndex
from controller.errors import PermanentError


def _expected_problem(
    rule: Rule, src: RowIndex, before: RowIndex, after: RowIndex, kept: int
) -> str | None:
    """Indexes may be partial (``settled`` rows set aside by in-database digests, which
    are the same on both sides): ``src`` and ``after`` then hold the same buckets of
    the key space, ``before`` those the plan read (every row it changes or keeps), so
    counts are checked over the whole tables (``kept``: target rows the rule keeps)
    and rows over the buckets held."""
    if not src.key_columns:
        return None if after.keyless == src.keyless else "rows differ from the source"
    expected = src.count if rule is Rule.OVERWRITE else src.count + kept
    if after.count != expected:
        return f"{after.count} rows instead of {expected}"
    for key, entry in src.rows.items():
        now = after.rows.get(key)
        if rule is Rule.OVERWRITE:
            if now is None or now.digest != entry.digest:
                return f"row {key!r} differs from the source"
            continue
        wanted = entry.digest
        if rule is Rule.INSERT_IGNORE and key in before.rows:
            wanted = before.rows[key].digest
        if now is None or now.digest != wanted:
            return f"row {key!r} is not what the plan promised"
    for key, now in after.rows.items():
        if key in src.rows:
            continue
        was = before.rows.get(key) if rule is not Rule.OVERWRITE else None
        if was is None or was.digest != now.digest:
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
        problem = _expected_problem(
            table_plan.rule, source[name], before[name], after[name], table_plan.kept
        )
        if problem:
            problems.append(f"{name}: {problem}")
    if problems:
        raise PermanentError(
            "verification after apply failed: " + "; ".join(problems), reason="VerificationFailed"
        )
