"""One way to prove a refusal: the exit code, one line of error, no traceback, nothing changed.

Every hostile-input table calls :func:`assert_refused` with the ``ferry`` arguments
and what the command could have touched (database URLs, files and directories such as
backup stores and snapshot trees). Those are fingerprinted byte for byte before and
after, so "changes nothing" is checked, not assumed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.cli.main import main
from tests.db.dbhelpers import dump


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str


def run_cli(argv: Sequence[str]) -> Outcome:
    """Run ``ferry argv`` in this process; an escaping exception is a test failure."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException:  # a traceback reached the user
            raise AssertionError(
                f"ferry {' '.join(argv)} raised instead of exiting:\n{traceback.format_exc()}"
            ) from None
    return Outcome(code, out.getvalue(), err.getvalue())


def fingerprint(watched: Sequence[str | Path]) -> dict[str, object]:
    """Database dumps for URLs; every file's name and bytes below a path (absent: None)."""
    state: dict[str, object] = {}
    for item in watched:
        text = str(item)
        if "://" in text:
            state[text] = dump(text)
            continue
        path = Path(text)
        if not path.exists() and not path.is_symlink():
            state[text] = None
        elif path.is_file():
            state[text] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            state[text] = sorted(
                (str(p.relative_to(path)), _file_digest(p)) for p in path.rglob("*")
            )
    return state


def _file_digest(path: Path) -> str:
    if path.is_symlink():
        return "link:" + str(path.readlink())
    if path.is_dir():
        return "dir"
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_one_line_error(stderr: str) -> str:
    """The message is one line starting ``error:``; a refused check may list its
    problems below it, each on a line of its own starting ``  - ``."""
    lines = stderr.rstrip("\n").split("\n")
    assert lines and lines[0].startswith("error: "), f"not a Ferry error: {stderr!r}"
    assert "Traceback" not in stderr, stderr
    extra = [line for line in lines[1:] if not line.startswith("  - ")]
    assert not extra, f"more than one line of error: {stderr!r}"
    return lines[0]


def assert_refused(
    argv: Sequence[str], code: int, watched: Sequence[str | Path] = (), says: str = ""
) -> Outcome:
    """``ferry argv`` exits ``code`` with one line of error (containing ``says``), and
    every watched database, file and directory is exactly as it was."""
    before = fingerprint(watched)
    outcome = run_cli(argv)
    assert outcome.code == code, (
        f"ferry {' '.join(argv)}: exit {outcome.code}, expected {code}; stderr={outcome.stderr!r}"
    )
    first = assert_one_line_error(outcome.stderr)
    assert says.lower() in outcome.stderr.lower(), f"{says!r} not in {first!r}"
    assert fingerprint(watched) == before, f"ferry {' '.join(argv)} changed what it refused"
    return outcome
