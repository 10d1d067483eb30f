"""The argument parser every ``ferry`` command shares: one-line errors, checked text.

argparse's own errors print the whole usage block and exit from inside the parser;
Ferry's contract is one line ``error: …`` and exit 2 for any invalid input, so
:meth:`ArgumentParser.error` raises :class:`UsageError` (an ``InvalidInput``) that
``main`` reports like every other refusal.

Every string argument also passes :func:`text`, unless it declares its own ``type``:
an empty value, a NUL or another control character, or a value longer than any path
or URL Ferry accepts is refused here, before it can reach a database driver, a file
name or a log line.
"""

from __future__ import annotations

import argparse
import re
from typing import Any, NoReturn

from controller.errors import InvalidInput

MAX_ARGUMENT = 4096  # PATH_MAX; no URL, path or name Ferry takes is longer
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class UsageError(InvalidInput):
    """The command line itself is wrong (unknown option, missing or malformed value)."""

    reason = "Usage"


def text(value: str) -> str:
    """argparse ``type`` for every plain string argument (see the module docstring)."""
    if not value:
        raise argparse.ArgumentTypeError("empty value")
    if len(value) > MAX_ARGUMENT:
        raise argparse.ArgumentTypeError(
            f"value of {len(value)} characters (at most {MAX_ARGUMENT})"
        )
    bad = _CONTROL.search(value)
    if bad:
        raise argparse.ArgumentTypeError(f"control character {bad.group()!r} in {value[:60]!r}")
    return value


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with Ferry's error contract (subparsers inherit it).

    Abbreviated options are refused: ``--no-b`` meaning ``--no-backup`` today could
    mean another option tomorrow, and a script that relies on it would silently change.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        if kwargs.get("action", "store") in ("store", "append") and "type" not in kwargs:
            kwargs["type"] = text
        return super().add_argument(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")
