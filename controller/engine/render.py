"""Render a plan as text (terminals), JSON (machines) and Markdown (pull requests)."""

from __future__ import annotations

import json

from controller.engine.plan import MergeInfo, Plan, TablePlan

_CONFLICTS_SHOWN = 20  # per table in text and Markdown; JSON carries up to 100


def _merge_lines(table: str, m: MergeInfo) -> list[str]:
    """A merged table's provenance and its conflicts, each with its resolution."""
    lines = [
        f"{table}: three-way merge against base {m.base}: {m.from_source} from the source, "
        f"{m.from_target} from the target, {m.merged} combined column by column, "
        f"{len(m.conflicts)} conflict(s) (onConflict: {m.on_conflict.value})"
    ]
    for c in m.conflicts[:_CONFLICTS_SHOWN]:
        took = c.resolution.value if c.resolved else "UNRESOLVED"
        lines.append(f"  conflict [{took}] {c.describe()}")
    if len(m.conflicts) > _CONFLICTS_SHOWN:
        lines.append(f"  … and {len(m.conflicts) - _CONFLICTS_SHOWN} more")
    return lines


def _schema_text(t: TablePlan) -> str:
    return "; ".join(op.describe() for op in t.schema)


def plan_json(plan: Plan) -> str:
    return json.dumps(plan.to_dict(), indent=2, sort_keys=False)


def plan_text(plan: Plan, *, verbose: bool = False) -> str:
    lines = [f"Plan {plan.digest}", f"  {plan.source_dialect} → {plan.target_dialect}"]
    width = max((len(t.table) for t in plan.tables), default=5)
    lines.append(
        f"  {'TABLE':<{width}}  {'RULE':<13} {'INSERT':>7} {'UPDATE':>7} "
        f"{'DELETE':>7} {'SAME':>7}  SCHEMA"
    )
    for t in plan.tables:
        if not verbose and not t.changes_anything:
            continue
        lines.append(
            f"  {t.table:<{width}}  {t.rule.value:<13} {t.insert:>7} {t.update:>7} "
            f"{t.delete:>7} {t.unchanged:>7}  {_schema_text(t)}"
        )
    totals = plan.totals
    unchanged_tables = sum(1 for t in plan.tables if not t.changes_anything)
    lines.append(
        f"  total: {totals['insert']} insert, {totals['update']} update, "
        f"{totals['delete']} delete, {totals['schema']} schema change(s); "
        f"{unchanged_tables} table(s) unchanged"
    )
    if not plan.changes_anything:
        lines.append("  nothing to change: the target already matches")
    for t in plan.tables:
        if t.merge is not None and (verbose or t.changes_anything or t.merge.conflicts):
            lines += [f"  merge: {line}" for line in _merge_lines(t.table, t.merge)]
    for w in plan.warnings:
        lines.append(f"  warning: {w}")
    for n in plan.notes:
        lines.append(f"  note: {n}")
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def plan_markdown(plan: Plan, *, title: str = "Ferry plan") -> str:
    totals = plan.totals
    out = [
        f"### {title}",
        "",
        f"`{plan.digest}` — {plan.source_dialect} → {plan.target_dialect}: "
        f"**{totals['insert']}** insert, **{totals['update']}** update, "
        f"**{totals['delete']}** delete, **{totals['schema']}** schema change(s)",
        "",
    ]
    changed = [t for t in plan.tables if t.changes_anything]
    if changed:
        out += [
            "| table | rule | insert | update | delete | unchanged | schema |",
            "|---|---|---:|---:|---:|---:|---|",
        ]
        for t in changed:
            out.append(
                f"| `{t.table}` | {t.rule.value} | {t.insert} | {t.update} | {t.delete} "
                f"| {t.unchanged} | {_md_cell(_schema_text(t))} |"
            )
    else:
        out.append("Nothing to change: the target already matches.")
    if plan.warnings:
        out += ["", "<details><summary>Warnings</summary>", ""]
        out += [f"- {_md_cell(w)}" for w in plan.warnings]
        out += ["", "</details>"]
    merged = [t for t in plan.tables if t.merge is not None and t.merge.conflicts]
    if merged:
        out += ["", "<details><summary>Merge conflicts</summary>", ""]
        for t in merged:
            assert t.merge is not None
            out += [f"- {_md_cell(line.strip())}" for line in _merge_lines(t.table, t.merge)]
        out += ["", "</details>"]
    for n in plan.notes:
        out += ["", f"> {n}"]
    return "\n".join(out) + "\n"
