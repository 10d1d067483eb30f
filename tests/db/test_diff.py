"""`ferry diff` against real databases: every kind of difference, on every dialect.

Two NocoBase-shaped environments differ the way they do in practice: a builder's
unpromoted work in ``dev`` (a new collection with its table, fields, pages, a role, a
workflow step), hand edits in ``pre``, a column added on one side, business rows that
differ (and are not configuration). The diff must name each, and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.cli.main import main
from tests.db.dbhelpers import execute, q
from tests.fixtures import nocobase_shape as shape

MakeDb = Callable[..., str]
SECRET = "smtp-pw-ZQ81"


def _envs(dialect: str, make_database: MakeDb) -> tuple[str, str]:
    dev, pre = make_database(dialect, "dev"), make_database(dialect, "pre")
    shape.build(dev, app="same")
    shape.build(pre, app="same")
    shape.builder_changes(dev)
    roles, settings = q(dialect, "roles"), q(dialect, "systemSettings")
    execute(
        pre,
        f"UPDATE {roles} SET title = 'Members' WHERE name = 'member'",
        f"DELETE FROM {roles} WHERE name = 'root'",
        f'UPDATE {settings} SET options = \'{{"smtp": {{"password": "{SECRET}"}}}}\'',
        f"UPDATE {q(dialect, 'users')} SET nickname = 'edited in pre'",
        f"ALTER TABLE {q(dialect, 'workflows')} ADD COLUMN {q(dialect, 'color')} VARCHAR(20)",
    )
    return dev, pre


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["diff", *argv])
    captured = capsys.readouterr()
    assert captured.err == ""
    return code, captured.out


def _table(out: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in out["tables"] if t["table"] == name)


def test_diff_names_every_difference(
    dialect: str, make_database: MakeDb, capsys: pytest.CaptureFixture[str]
) -> None:
    dev, pre = _envs(dialect, make_database)
    code, text = _run(capsys, dev, pre, "--format", "json")
    out = json.loads(text)
    assert code == 0 and out["equal"] is False
    assert (out["tablesOnlyInSrc"], out["tablesOnlyInDst"]) == (["tickets"], [])
    differing = sorted(t["table"] for t in out["tables"] if not t["equal"])
    assert differing == [
        "collections",
        "desktopRoutes",
        "fields",
        "flow_nodes",
        "roles",
        "systemSettings",
        "uiSchemas",
        "workflows",
    ]
    roles = _table(out, "roles")["rows"]
    assert (roles["onlyInSrc"], roles["onlyInDst"], roles["changed"], roles["same"]) == (2, 0, 1, 1)
    assert roles["onlyInSrcKeys"] == [['"root"'], ['"support"']]
    assert roles["changedRows"] == [
        {
            "key": ['"member"'],
            "columns": [{"column": "title", "src": '"Member"', "dst": '"Members"'}],
        }
    ]
    (settings,) = _table(out, "systemSettings")["rows"]["changedRows"]
    assert {"column": "options", "src": "{}", "dst": "******"} in settings["columns"]
    assert _table(out, "workflows")["schema"] == [
        {"what": "column", "name": "color", "src": None, "dst": "string(20)"}
    ]
    assert _table(out, "workflows")["rows"]["changed"] == 0  # a new empty column: schema only
    users = _table(out, "users")
    assert users["rows"] is None and users["rowsNotCompared"] == "business data"
    fields = _table(out, "fields")["rows"]
    assert fields["onlyInSrc"] == 4 and fields["onlyInSrcKeys"][0] == ['"f-tickets-0"']
    for fmt in ("text", "markdown", "json"):
        code, shown = _run(capsys, dev, pre, "--format", fmt)
        assert code == 0 and SECRET not in shown and "edited in pre" not in shown
    assert _run(capsys, dev, pre, "--exit-code")[0] == 1


def test_diff_of_one_side_with_itself_is_equal(
    dialect: str, make_database: MakeDb, capsys: pytest.CaptureFixture[str]
) -> None:
    dev, _ = _envs(dialect, make_database)
    code, text = _run(capsys, dev, dev, "--exit-code", "--profile", "generic")
    assert code == 0
    assert "equal: the configuration compared is the same on both sides" in text


def test_snapshot_against_environments(
    dialect: str, make_database: MakeDb, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An export of ``dev`` equals ``dev`` and differs from ``pre`` exactly as ``dev`` does."""
    dev, pre = _envs(dialect, make_database)
    snap = tmp_path / "snap"
    assert main(["export", "--source", dev, "--dir", str(snap)]) == 0
    capsys.readouterr()
    code, text = _run(capsys, str(snap), dev, "--exit-code")
    assert code == 0, text
    from_db = json.loads(_run(capsys, dev, pre, "--format", "json")[1])
    from_snap = json.loads(_run(capsys, str(snap), pre, "--format", "json")[1])
    for key in ("tablesOnlyInSrc", "tablesOnlyInDst", "totals"):
        assert from_snap[key] == from_db[key]
    assert [t["rows"] for t in from_snap["tables"]] == [t["rows"] for t in from_db["tables"]]
    generic = json.loads(
        _run(capsys, str(snap), dev, "--profile", "generic", "--format", "json")[1]
    )
    orders = _table(generic, "orders")
    assert orders["rows"] is None
    assert orders["rowsNotCompared"] == "SRC is a snapshot holding this table's structure only"


def test_across_dialects_values_compare_by_meaning(
    dialect: str, make_database: MakeDb, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same application on SQLite and on ``dialect``: equal, except what the server
    really stores differently (MariaDB's DATETIME keeps no fraction of a second)."""
    lite, other = f"sqlite:///{tmp_path}/lite.db", make_database(dialect, "other")
    shape.build(lite)
    shape.build(other)
    out = json.loads(_run(capsys, lite, other, "--format", "json")[1])
    assert out["totals"]["schemaDifferences"] == 0 and out["tablesOnlyInSrc"] == []
    changed = {
        c["column"]
        for t in out["tables"]
        for r in (t["rows"] or {}).get("changedRows", [])
        for c in r["columns"]
    }
    assert changed == ({"createdAt", "updatedAt"} if dialect == "mysql" else set())
    assert out["equal"] is (dialect != "mysql")


def test_tables_globs_and_markdown(
    dialect: str, make_database: MakeDb, capsys: pytest.CaptureFixture[str]
) -> None:
    dev, pre = _envs(dialect, make_database)
    code, md = _run(capsys, dev, pre, "--tables", "rol*,systemSettings", "--format", "markdown")
    assert code == 0
    assert "| `roles` | 0 | 2 | 0 | 1 | 1 |" in md
    assert "| `systemSettings` | 0 | 0 | 0 | 1 | 0 |" in md
    assert [line.split(" | ")[0] for line in md.split("\n") if line.startswith("| `")] == [
        "| `roles`",
        "| `systemSettings`",
    ]
    assert "only in SRC: " not in md  # the tickets table is not among the globs
    assert '- `~ name="member": title: "Member" → "Members"`' in md
