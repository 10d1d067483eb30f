"""Phases, condition types and reasons: defined once in ``controller/api``, listed in
``docs/reference/status.md``, and never spelled out again in the flows or handlers.

Argo CD's health checks and alerting rules read these words, so a reason added in code
but not in the document, a document row no code produces, or a string copy in a flow
that drifts from its enum are each a broken contract.
"""

from __future__ import annotations

import ast
import enum
import re
from pathlib import Path

import pytest

from controller.api.backup import BackupPhase
from controller.api.migration import MigrationPhase
from controller.api.phases import Phase
from controller.api.reasons import REASON_GROUPS, ConditionType, EventType
from controller.api.restore import RestorePhase

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reference" / "status.md"
PHASES: dict[str, type[Phase]] = {
    "Migration": MigrationPhase,
    "Backup": BackupPhase,
    "Restore": RestorePhase,
}
_CAMEL = re.compile(r"^[A-Z][A-Za-z0-9]*$")
_ROW = re.compile(r"^\|(.*)\|\s*$")


def _sections(text: str) -> dict[str, list[list[str]]]:
    """Table rows (cells, stripped) under each ``## heading``, header rows left out."""
    out: dict[str, list[list[str]]] = {}
    heading = ""
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            out[heading] = []
            continue
        match = _ROW.match(line)
        if match and heading:
            cells = [c.strip() for c in match.group(1).split("|")]
            if cells[0].startswith("---") or not any("`" in c for c in cells):
                continue  # separator or header row
            out[heading].append(cells)
    return out


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    assert match, f"expected one `value` in the cell {cell!r}"
    return match.group(1)


def _doc() -> dict[str, list[list[str]]]:
    return _sections(DOC.read_text(encoding="utf-8"))


def _reason_values() -> set[str]:
    return {m.value for group in REASON_GROUPS for m in group}


def _error_reasons() -> dict[str, set[str]]:
    """CamelCase reasons the errors carry: ``reason = "X"`` in a class body (the error
    tree) and ``reason="X"`` passed to a call, anywhere a status can show them (the CLI's
    own errors never reach a status)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "controller").rglob("*.py")):
        if path.parent.name == "cli":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            values: list[ast.expr] = []
            if isinstance(node, ast.keyword) and node.arg == "reason":
                values.append(node.value)
            elif isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == "reason" for t in stmt.targets
                    ):
                        values.append(stmt.value)
                    if (
                        isinstance(stmt, ast.AnnAssign)
                        and isinstance(stmt.target, ast.Name)
                        and stmt.target.id == "reason"
                        and stmt.value is not None
                    ):
                        values.append(stmt.value)
            for value in values:
                text = value.value if isinstance(value, ast.Constant) else None
                if isinstance(text, str) and _CAMEL.match(text):
                    found.setdefault(text, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_phase_of_every_kind_is_in_the_table_and_no_other() -> None:
    rows = _doc()["Phases"]
    listed = {(kind, _code(phase)): final == "yes" for kind, phase, final, _ in rows}
    expected = {(kind, p.value): p.finished for kind, enum_ in PHASES.items() for p in enum_}
    assert listed == expected


def test_every_condition_type_is_in_the_table_and_no_other() -> None:
    listed = [_code(row[0]) for row in _doc()["Condition types"]]
    assert sorted(listed) == sorted(t.value for t in ConditionType)


def test_every_reason_constant_is_in_the_table_once() -> None:
    listed = [_code(row[0]) for row in _doc()["Reasons of conditions and events"]]
    assert len(listed) == len(set(listed)), "a reason is listed twice"
    assert sorted(listed) == sorted(_reason_values())


def test_each_reason_value_is_defined_in_one_group_only() -> None:
    values = [m.value for group in REASON_GROUPS for m in group]
    assert len(values) == len(set(values))
    assert all(issubclass(g, enum.StrEnum) for g in REASON_GROUPS)


def test_every_error_reason_is_in_the_table_and_every_row_is_raised() -> None:
    listed = {_code(row[0]) for row in _doc()["Error reasons"]}
    raised = _error_reasons()
    assert sorted(set(raised) - listed) == [], "error reasons missing from the table"
    assert sorted(listed - set(raised)) == [], "table rows no error carries"


def test_the_error_scan_finds_reasons_in_adapters() -> None:
    """The scan itself must see what it is meant to (else the test above proves nothing)."""
    raised = _error_reasons()
    assert "controller/backups/keyring.py" in raised["SignatureMismatch"]
    assert "controller/errors.py" in raised["TargetBusy"]
    assert "controller/errors.py" in raised["Error"]


def _literals(folder: str) -> list[tuple[str, int, str]]:
    out = []
    for path in sorted((ROOT / "controller" / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.append((str(path.relative_to(ROOT)), node.lineno, node.value))
    return out


VOCABULARY = (
    _reason_values()
    | {t.value for t in ConditionType}
    | {t.value for t in EventType}
    | {p.value for enum_ in PHASES.values() for p in enum_}
)


@pytest.mark.parametrize("folder", ["flows", "handlers"])
def test_no_flow_or_handler_spells_a_phase_or_reason_as_a_string(folder: str) -> None:
    copies = [
        f"{p}:{line}: {value!r}" for p, line, value in _literals(folder) if value in VOCABULARY
    ]
    assert copies == []


def test_the_literal_scan_sees_string_constants() -> None:
    """A string the flows must keep (a kind name) is found, so the scan above can fail."""
    assert any(value == "Migration" for _, _, value in _literals("flows"))


@pytest.mark.parametrize(
    ("enum_", "value", "finished"),
    [
        (MigrationPhase, "Succeeded", True),
        (MigrationPhase, "RolledBack", True),
        (MigrationPhase, "Failed", True),
        (MigrationPhase, "Applying", False),
        (MigrationPhase, "Completed", False),  # a Backup's word, not a Migration's
        (BackupPhase, "Completed", True),
        (BackupPhase, "Failed", True),
        (BackupPhase, "Running", False),
        (BackupPhase, "RolledBack", False),
        (RestorePhase, "Reverted", True),
        (RestorePhase, "Completed", True),
        (RestorePhase, "Restoring", False),
        (RestorePhase, "Succeeded", False),
        (MigrationPhase, None, False),
        (MigrationPhase, "", False),
        (MigrationPhase, "succeeded", False),  # phases are case-sensitive
        (MigrationPhase, " Succeeded", False),
        (BackupPhase, 1, False),
        (BackupPhase, ["Completed"], False),
        (RestorePhase, {"phase": "Completed"}, False),
    ],
)
def test_a_status_phase_is_finished_only_when_its_kind_says_so(
    enum_: type[Phase], value: object, finished: bool
) -> None:
    assert enum_.is_finished(value) is finished
