"""Generate docs/reference/crds.md from the CRD schemas in crds/ (the single source).

``python hack/gen_crd_reference.py`` writes the file; ``--check`` fails when it is stale
(run by ``make lint``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "reference" / "crds.md"


def _type(node: dict[str, Any]) -> str:
    kind = str(node.get("type", "object" if "properties" in node else "any"))
    if kind == "array":
        return f"[]{_type(node.get('items') or {})}"
    return kind


def _constraints(node: dict[str, Any]) -> str:
    parts = []
    if "enum" in node:
        parts.append("one of " + ", ".join(f"`{v}`" for v in node["enum"]))
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`".replace("|", "\\|"))
    for key, label in (
        ("minimum", "≥"),
        ("maximum", "≤"),
        ("maxLength", "max length"),
        ("maxItems", "max items"),
    ):
        if key in node:
            parts.append(f"{label} {node[key]}")
    if "default" in node:
        parts.append(f"default `{node['default']}`")
    for rule in node.get("x-kubernetes-validations") or []:
        parts.append(f"rule: {rule.get('message') or rule['rule']}")
    return "; ".join(parts).replace("\n", " ")


def _rows(node: dict[str, Any], path: str, required: bool) -> list[str]:
    desc = " ".join(str(node.get("description", "")).split()).replace("|", "\\|")
    rows = (
        [
            f"| `{path}` | {_type(node)} | {'yes' if required else ''} | {desc} | "
            f"{_constraints(node)} |"
        ]
        if path
        else []
    )
    props = node.get("properties") or {}
    needed = set(node.get("required") or [])
    for name in props:
        rows += _rows(props[name], f"{path}.{name}" if path else name, name in needed)
    items = node.get("items")
    if isinstance(items, dict) and items.get("properties"):
        needed = set(items.get("required") or [])
        for name, child in items["properties"].items():
            rows += _rows(child, f"{path}[].{name}", name in needed)
    return rows


def _columns(version: dict[str, Any]) -> list[str]:
    """The ``kubectl get`` columns: printer columns are part of the contract a user reads
    (and scripts parse), so they are generated too rather than described by hand."""
    columns = version.get("additionalPrinterColumns") or []
    if not columns:
        return []
    out = [
        "### kubectl get columns",
        "",
        "| column | from | type | shown |",
        "|---|---|---|---|",
    ]
    for col in columns:
        shown = "`-o wide`" if col.get("priority", 0) else "always"
        desc = " ".join(str(col.get("description", "")).split()).replace("|", "\\|")
        source = f"`{col['jsonPath']}`" + (f" ({desc})" if desc else "")
        out.append(f"| {col['name']} | {source} | {col['type']} | {shown} |")
    return [*out, ""]


def render() -> str:
    out = [
        "# CRD reference",
        "",
        "Generated from `crds/` by `hack/gen_crd_reference.py`; `make lint` checks it is "
        "current. Do not edit by hand.",
        "",
        "Every field, constraint, validation rule and `kubectl get` column of every kind. "
        "How the kinds work together and what the operator does with them: "
        "[../crds.md](../crds.md).",
        "",
    ]
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        names = crd["spec"]["names"]
        version = crd["spec"]["versions"][0]
        schema = version["schema"]["openAPIV3Schema"]
        out += [
            f"## {names['kind']}",
            "",
            f"`{crd['spec']['group']}/{version['name']}`, namespaced; short names: "
            f"{', '.join(names.get('shortNames', []))}; categories: "
            f"{', '.join(names.get('categories', []))}.",
            "",
        ]
        if schema.get("description"):
            out += [" ".join(str(schema["description"]).split()), ""]
        out += _columns(version)
        for part in ("spec", "status"):
            node = (schema.get("properties") or {}).get(part)
            if not node:
                continue
            out += [
                f"### {part}",
                "",
                "| field | type | required | description | constraints |",
                "|---|---|---|---|---|",
            ]
            out += _rows(node, part, False)
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(
                f"{OUT.relative_to(ROOT)} is stale: run python hack/gen_crd_reference.py",
                file=sys.stderr,
            )
            return 1
        return 0
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
