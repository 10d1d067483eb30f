"""Progress on stderr: a bar per phase on a terminal, nothing off one or with JSON.

The ``ferry`` command runs as a separate process whose stderr is, or is not, a
pseudo-terminal (``pty``): whether stderr is a terminal is what decides, so nothing
short of a real one proves it. stdout is always a pipe, and must hold only the result.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures import nocobase_shape as shape
from tests.harness.cluster import REPO_ROOT
from tests.harness.pytest_plugin import DatabaseFactory

VARS = {"HOOK_TOKEN": ("secret", "x"), "TICKET_WEBHOOK": ("plain", "y")}
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
HIDE_CURSOR, SHOW_CURSOR = "\x1b[?25l", "\x1b[?25h"


@dataclass
class Run:
    code: int
    stdout: str
    raw_stderr: str

    @property
    def lines(self) -> list[str]:
        """Every state the terminal was drawn in, escape codes removed."""
        text = ANSI.sub("", self.raw_stderr)
        return [" ".join(part.split()) for part in re.split(r"[\r\n]+", text) if part.strip()]

    def phase(self, label: str) -> tuple[int, int, str]:
        """The last drawing of phase ``label``: (done, total, the rest of the line)."""
        drawn = [m for line in self.lines if (m := PHASE.match(line)) and m["label"] == label]
        assert drawn, f"no {label!r} bar in {self.lines}"
        last = drawn[-1]
        return int(last["done"]), int(last["total"]), last["rest"]


PHASE = re.compile(
    r"^(?P<label>planning|backing up|applying|restoring) [━╸╺ ]*"
    r"(?P<done>\d+)/(?P<total>\d+) tables ?(?P<rest>.*)$"
)


def ferry(*args: str, tty: bool, timeout: float = 120) -> Run:
    """``python -m controller ARGS`` with stderr on a pseudo-terminal (``tty``) or a pipe."""
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "160"}
    env.pop("FORCE_COLOR", None)
    env.pop("TTY_COMPATIBLE", None)
    command = [sys.executable, "-m", "controller", *args]
    if not tty:
        done = subprocess.run(
            command,
            check=False,
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(done.returncode, done.stdout, done.stderr)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks: list[bytes] = []
    try:
        while True:
            ready, _, _ = select.select([master], [], [], timeout)
            assert ready, f"ferry {args} wrote nothing for {timeout}s"
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        code = proc.wait(timeout=timeout)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return Run(code, out, b"".join(chunks).decode(errors="replace"))


@pytest.fixture
def app(dialect: str, make_database: DatabaseFactory) -> str:
    url = make_database(dialect, hint="progress")
    shape.build(url, app="dev", variables=VARS)
    return url


@pytest.fixture
def envs(tmp_path: Path) -> tuple[str, str]:
    dev, pre = f"sqlite:///{tmp_path}/dev.db", f"sqlite:///{tmp_path}/pre.db"
    shape.build(dev, app="dev", variables=VARS)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables=VARS)
    return dev, pre


def _backup(url: str, store: Path, *extra: str, tty: bool) -> Run:
    return ferry("backup", "create", "--database", url, "--store", str(store), *extra, tty=tty)


def _summary(run: Run) -> tuple[int, int]:
    """(tables, rows) from ``backup ID: N table(s), M row(s), ...``."""
    match = re.search(r": (\d+) table\(s\), (\d+) row\(s\)", run.stdout)
    assert match, run.stdout
    return int(match[1]), int(match[2])


def test_backup_create_on_a_terminal_shows_tables_rows_bytes_and_time(
    app: str, tmp_path: Path
) -> None:
    run = _backup(app, tmp_path / "store", tty=True)
    assert run.code == 0, run.raw_stderr
    tables, rows = _summary(run)
    done, total, rest = run.phase("backing up")
    assert (done, total) == (tables, tables) and tables > 10
    assert re.fullmatch(rf"{rows:,} rows [\d.]+ (kB|MB|bytes) \d+:\d\d:\d\d", rest), rest
    assert HIDE_CURSOR in run.raw_stderr and run.raw_stderr.rindex(
        SHOW_CURSOR
    ) > run.raw_stderr.rindex(HIDE_CURSOR)
    assert "\x1b" not in run.stdout and "tables" not in run.stdout.split(":", 1)[0]


def test_backup_create_off_a_terminal_shows_none(app: str, tmp_path: Path) -> None:
    run = _backup(app, tmp_path / "store", tty=False)
    assert run.code == 0 and run.raw_stderr == ""
    assert _summary(run)[0] > 10


def test_json_on_a_terminal_shows_none(app: str, tmp_path: Path) -> None:
    run = _backup(app, tmp_path / "store", "--format", "json", tty=True)
    assert run.code == 0 and run.raw_stderr == ""
    assert json.loads(run.stdout)["tables"] > 10


def test_a_refused_backup_gives_the_terminal_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/app.db"
    shape.build(url, app="dev", variables=VARS)
    run = _backup(url, tmp_path / "store", "--tables", "noSuchTable", tty=True)
    assert run.code == 2
    assert run.lines == ["error: tables: no table matches noSuchTable"]
    assert HIDE_CURSOR not in run.raw_stderr  # refused before any phase began


def _changed_tables(dev: str, pre: str) -> int:
    """How many tables the plan from ``dev`` to ``pre`` changes (rows or schema)."""
    plan = ferry("plan", "--source", dev, "--target", pre, "--format", "json", tty=False)
    tables = json.loads(plan.stdout)["tables"]
    return sum(1 for t in tables if t["insert"] or t["update"] or t["delete"] or t["schema"])


@pytest.mark.parametrize("tty", [True, False])
def test_plan_and_migrate_show_their_phases(
    envs: tuple[str, str], tmp_path: Path, tty: bool
) -> None:
    dev, pre = envs
    changed = _changed_tables(dev, pre)
    plan = ferry("plan", "--source", dev, "--target", pre, tty=tty)
    store = str(tmp_path / "store")
    migrate = ferry(
        "migrate", "--source", dev, "--target", pre, "--id", "p1", "--backup-store", store, tty=tty
    )
    assert plan.code == 0 and migrate.code == 0, migrate.raw_stderr
    if not tty:
        assert plan.raw_stderr == "" and migrate.raw_stderr == ""
        return
    moved = plan.phase("planning")
    assert moved[0] == moved[1] > 0 and re.fullmatch(r"[\d,]+ rows \d+:\d\d:\d\d", moved[2])
    assert migrate.phase("planning")[:2] == moved[:2]
    backed = migrate.phase("backing up")
    assert backed[0] == backed[1] > moved[1]  # the whole target, not only the moved tables
    assert migrate.phase("applying")[:2] == (changed, changed) and changed > 0
    assert "\x1b" not in plan.stdout + migrate.stdout


def test_restore_and_rollback_show_the_safety_backup_then_the_restore(
    envs: tuple[str, str], tmp_path: Path
) -> None:
    dev, pre = envs
    changed = _changed_tables(dev, pre)
    store = str(tmp_path / "store")
    migrated = ferry(
        "migrate",
        *("--source", dev, "--target", pre, "--id", "r1", "--backup-store", store),
        *("--format", "json"),
        tty=True,
    )
    assert migrated.code == 0 and migrated.raw_stderr == ""
    backup_id = json.loads(migrated.stdout)["backupId"]
    rolled = ferry("rollback", "--store", store, "--migration", "r1", "--database", pre, tty=True)
    assert rolled.code == 0, rolled.raw_stderr
    assert rolled.phase("restoring")[:2] == (changed, changed)
    safety = rolled.phase("backing up")  # the tables the rollback touches that exist now
    assert safety[0] == safety[1] == changed
    restored = ferry(
        "restore", "--store", store, "--backup", backup_id, "--database", pre, tty=True
    )
    assert restored.code == 0, restored.raw_stderr
    found = re.search(r"restored (\d+) table\(s\), (\d+) row\(s\)", restored.stdout)
    assert found, restored.stdout
    tables, rows = int(found[1]), int(found[2])
    done, total, rest = restored.phase("restoring")
    assert (done, total) == (tables, tables)
    assert re.fullmatch(rf"{rows:,} rows [\d.]+ (kB|MB|bytes) \d+:\d\d:\d\d", rest), rest
    assert restored.phase("backing up")[:2] == (tables, tables)
