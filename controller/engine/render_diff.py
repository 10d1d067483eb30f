"""Render a :class:`ConfigDiff` as text (terminals), JSON (machines), Markdown (PRs).

Every name and value reaching these renderers was made printable and masked by
:mod:`controller.engine.config_diff`; Markdown additionally escapes what a pull-request
page would read as markup, so a value can neither break the table nor inject HTML:
names and values go into code spans (shown verbatim), and into HTML only escaped.
"""

from __future__ import annotations

import html
import json
import re

from controller.engine.config_diff import ConfigDiff, RowDiff, TableDiff, printable

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")
_TICKS = re.compile(r"`+")


def diff_json(diff: ConfigDiff) -> str:
    return json.dumps(diff.to_dict(), indent=2)


def _more(shown: int, total: int) -> list[str]:
    return [f"… and {total - shown} more"] if total > shown else []


def _key(columns: tuple[str, ...], values: tuple[str, ...]) -> str:
    return ", ".join(f"{printable(c)}={v}" for c, v in zip(columns, values, strict=True))


def _counts(rows: RowDiff) -> str:
    return (
        f"{rows.only_src} only in SRC, {rows.only_dst} only in DST, {rows.changed} changed, "
        f"{rows.same} same"
    )


def _row_lines(rows: RowDiff) -> list[str]:
    """One line per listed row: ``-`` only in SRC, ``+`` only in DST, ``~`` changed."""
    lines = [f"- {_key(rows.key, k)}" for k in rows.only_src_keys]
    lines += _more(len(rows.only_src_keys), rows.only_src)
    lines += [f"+ {_key(rows.key, k)}" for k in rows.only_dst_keys]
    lines += _more(len(rows.only_dst_keys), rows.only_dst)
    for change in rows.changed_rows:
        cols = "; ".join(f"{printable(c.column)}: {c.src} → {c.dst}" for c in change.columns)
        lines.append(f"~ {_key(rows.key, change.key)}: {cols}")
    lines += _more(len(rows.changed_rows), rows.changed)
    return lines


def _headline(t: TableDiff) -> str:
    name = printable(t.table)
    if t.rows is None:
        return f"{name}: rows not compared ({t.rows_skipped})"
    how = (
        f"by {', '.join(map(printable, t.rows.key))}"
        if t.rows.key
        else "no common key: whole rows compared"
    )
    return f"{name} ({how}): {_counts(t.rows)}"


def diff_text(diff: ConfigDiff, *, verbose: bool = False) -> str:
    lines = [
        f"Diff {printable(diff.src)} → {printable(diff.dst)}",
        f"  {diff.src_dialect} → {diff.dst_dialect}, profile {diff.profile}, "
        f"{len(diff.tables)} table(s) on both sides",
    ]
    if diff.only_in_src:
        lines.append("  tables only in SRC: " + ", ".join(map(printable, diff.only_in_src)))
    if diff.only_in_dst:
        lines.append("  tables only in DST: " + ", ".join(map(printable, diff.only_in_dst)))
    for t in diff.tables:
        if t.equal and not verbose:
            continue
        lines.append(f"  {_headline(t)}")
        lines += [f"    {s.describe()}" for s in t.schema]
        if t.rows is not None:
            lines += [f"    {line}" for line in _row_lines(t.rows)]
    lines.append("  " + _summary(diff))
    lines += [f"  note: {printable(n)}" for n in diff.notes]
    return "\n".join(lines)


def _summary(diff: ConfigDiff) -> str:
    if diff.equal:
        return "equal: the configuration compared is the same on both sides"
    n = diff.totals
    return (
        f"total: {n['tablesOnlyInSrc']} table(s) only in SRC, {n['tablesOnlyInDst']} only "
        f"in DST, {n['tablesDiffering']} differing ({n['schemaDifferences']} schema "
        f"difference(s); rows: {n['rowsOnlyInSrc']} only in SRC, {n['rowsOnlyInDst']} only "
        f"in DST, {n['rowsChanged']} changed), {n['tablesEqual']} equal"
    )


def _md(text: str) -> str:
    """Text that GitHub's Markdown shows as written: no markup, no HTML, one line."""
    return _MD_SPECIAL.sub(r"\\\1", printable(text))


def _code(text: str, *, in_table: bool = False) -> str:
    """A code span GitHub shows verbatim (no markup, no HTML): fenced by more backticks
    than the text's longest run of them; in a table, ``|`` must still be escaped."""
    text = printable(text)
    fence = "`" * (max((len(m) for m in _TICKS.findall(text)), default=0) + 1)
    if in_table:
        text = text.replace("|", "\\|")
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_table(t: TableDiff) -> str:
    r = t.rows
    name = _code(t.table, in_table=True)
    if r is None:
        return f"| {name} | {len(t.schema)} | n/a | n/a | n/a | n/a |"
    return f"| {name} | {len(t.schema)} | {r.only_src} | {r.only_dst} | {r.changed} | {r.same} |"


def _md_details(t: TableDiff) -> list[str]:
    items = [f"- {_code(s.describe())}" for s in t.schema]
    if t.rows is None:
        items.append(f"- rows not compared: {_md(t.rows_skipped)}")
    else:
        items += [f"- {_code(line)}" for line in _row_lines(t.rows)]
    return [
        "",
        f"<details><summary>{html.escape(printable(t.table))}</summary>",
        "",
        *items,
        "",
        "</details>",
    ]


def diff_markdown(diff: ConfigDiff, *, title: str = "Ferry diff") -> str:
    out = [
        f"### {_md(title)}",
        "",
        f"{_code(diff.src)} → {_code(diff.dst)} ({diff.src_dialect} → {diff.dst_dialect}, "
        f"profile {diff.profile}): {_summary(diff)}",
    ]
    if diff.only_in_src:
        out += ["", "Tables only in SRC: " + ", ".join(map(_code, diff.only_in_src))]
    if diff.only_in_dst:
        out += ["", "Tables only in DST: " + ", ".join(map(_code, diff.only_in_dst))]
    differing = [t for t in diff.tables if not t.equal]
    if differing:
        out += [
            "",
            "| table | schema | only in SRC | only in DST | changed | same |",
            "|---|---:|---:|---:|---:|---:|",
            *map(_md_table, differing),
        ]
        for t in differing:
            out += _md_details(t)
    for n in diff.notes:
        out += ["", f"> {_md(n)}"]
    return "\n".join(out) + "\n"
