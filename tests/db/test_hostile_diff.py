"""Hostile and broken inputs to ``ferry diff``: refused in one line, nothing changed.

Each row runs the real command line in-process against real SQLite databases and a
real exported snapshot, through :func:`tests.hostile.assert_refused`: the exit code
(2 invalid input, 75 temporary), one ``error:`` line without a traceback, the words
that say why, and both databases, the snapshot and the row's own directory byte for
byte as they were. ``diff`` only reads; these rows prove a refusal reads nothing it
should not either (no SQLite file created, no password printed).
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from controller.cli.main import main
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_refused

PASSWORD = "hunter2-diff-secret"
VARS = {"HOOK_TOKEN": ("secret", "x"), "TICKET_WEBHOOK": ("plain", "y")}


@dataclass(frozen=True)
class World:
    dev: str
    pre: str
    snap: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("diffworld")
    dev, pre = f"sqlite:///{root}/dev.db", f"sqlite:///{root}/pre.db"
    shape.build(dev, app="dev", variables=VARS)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables=VARS)
    assert main(["migrate", "--source", dev, "--target", pre, "--no-backup"]) == 0
    snap = root / "snap"
    assert main(["export", "--source", dev, "--dir", str(snap)]) == 0
    return World(dev, pre, snap)


Edit = Callable[[Path], None]


def write(relative: str, content: str) -> Edit:
    return lambda root: (root / relative).write_text(content, encoding="utf-8")


def append(relative: str, content: str) -> Edit:
    def edit(root: Path) -> None:
        with (root / relative).open("a", encoding="utf-8") as f:
            f.write(content)

    return edit


def remove(relative: str) -> Edit:
    return lambda root: (root / relative).unlink()


def replace(relative: str, old: str, new: str) -> Edit:
    def edit(root: Path) -> None:
        path = root / relative
        text = path.read_text(encoding="utf-8")
        assert old in text, f"{old!r} not in {relative}"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")

    return edit


def row(command: str, says: str, *, id: str, code: int = 2, edit: Edit | None = None) -> Any:
    return pytest.param(command, says, code, edit, id=id)


ROLES = "tables/roles.yaml"
CASES = [
    row("diff {dev}", "required: DST", id="missing-dst"),
    row("diff", "required: SRC, DST", id="no-arguments"),
    row("diff {dev} {pre} {pre}", "unrecognized arguments", id="three-sides"),
    row("diff {dev} {pre} --format yaml", "invalid choice", id="unknown-format"),
    row("diff {dev} {pre} --profile nocobas", "invalid choice", id="unknown-profile"),
    row("diff {dev} {pre} --exit-code=1", "ignored explicit argument", id="exit-code-value"),
    row("diff {dev} {pre} --exit", "unrecognized arguments", id="abbreviated-option"),
    row("diff {dev} {pre} --tables rols", "'rols' matches no configuration table", id="typo-glob"),
    row("diff {dev} {pre} --tables ,", "no table name or glob", id="empty-glob-list"),
    row("diff {dev} {pre} --tables ''", "empty value", id="empty-tables"),
    row(
        "diff {dev} {pre} --tables ferry_migrations",
        "matches no configuration table",
        id="ledger-is-not-configuration",
    ),
    row(
        "diff {dev} {pre} --tables orders --tables 'roles,nope*'",
        "'nope*' matches no configuration table",
        id="one-bad-glob-among-good",
    ),
    row("diff {tmp}/nowhere {pre}", "neither a database URL nor a snapshot", id="no-such-dir"),
    row("diff {dev} sqlite:///{tmp}/absent.db", "never creates one", id="sqlite-file-absent"),
    row(
        f"diff {{dev}} postgresql+psycopg://ferry:{PASSWORD}@127.0.0.1:1/app",
        "unreachable",
        code=75,
        id="unreachable-server",
    ),
    row(
        f"diff {{dev}} postgresql+psycopg://u:{PASSWORD}@db:notaport/app",
        "port is not a number",
        id="url-bad-port",
    ),
    row("diff {dev} nosuchdriver://x/y", "unsupported database", id="unknown-driver"),
    row("diff 'git+https://git.example.com/x.git#rev=1' {pre}", "unknown: rev", id="git-param"),
    row("diff {dev} env:Not_A_Name", "Kubernetes names", id="env-bad-name"),
    row("diff {dev} a<ESC>b", "control character", id="control-character"),
    row(
        "diff {tmp}/snap {pre}",
        "not valid YAML",
        id="snap-table-not-yaml",
        edit=write(ROLES, "rows: [unclosed\n"),
    ),
    row("diff {tmp}/snap {pre}", "but missing", id="snap-table-missing", edit=remove(ROLES)),
    row(
        "diff {tmp}/snap {pre}",
        "not a Ferry snapshot",
        id="snap-manifest-missing",
        edit=remove("ferry-snapshot.yaml"),
    ),
    row(
        "diff {tmp}/snap {pre}",
        "not a table file",
        id="snap-table-not-a-mapping",
        edit=write(ROLES, "- just\n- a list\n"),
    ),
    row(
        "diff {tmp}/snap {pre}",
        "is not unique in the SRC",
        id="snap-duplicate-key",
        edit=replace(ROLES, "rows:\n- name: admin\n", "rows:\n- name: member\n"),
    ),
    row(
        "diff {tmp}/snap {pre}",
        "row 0 is not a mapping",
        id="snap-row-not-mapping",
        edit=replace(ROLES, "rows:\n", "rows:\n- 42\n"),
    ),
    row(
        "diff {tmp}/snap {pre}",
        "unknown kind",
        id="snap-bad-column-kind",
        edit=replace(ROLES, "kind: string", "kind: hologram"),
    ),
    row(
        "diff {tmp}/snap {pre}",
        "cannot be a file name",
        id="snap-table-outside",
        edit=replace("ferry-snapshot.yaml", "- roles\n", "- ../../../etc/passwd\n"),
    ),
]


@pytest.mark.parametrize(("command", "says", "code", "edit"), CASES)
def test_diff_refuses(
    world: World, tmp_path: Path, command: str, says: str, code: int, edit: Edit | None
) -> None:
    if edit is not None:
        shutil.copytree(world.snap, tmp_path / "snap")
        edit(tmp_path / "snap")
    argv = [
        arg.format(dev=world.dev, pre=world.pre, tmp=tmp_path).replace("<ESC>", "\x1b")
        for arg in shlex.split(command)
    ]
    watched = [world.dev, world.pre, world.snap, tmp_path, tmp_path / "absent.db"]
    outcome = assert_refused(argv, code, watched, says)
    assert PASSWORD not in outcome.stdout + outcome.stderr
    assert outcome.stdout == ""
