"""The argument parser every ``ferry`` command shares: one-line errors, checked text.

argparse's own errors print the whole usage block and exit from inside the parser;
Ferry's contract is one line ``error: …`` and exit 2 for any invalid input, so
:meth:`ArgumentParser.error` raises :class:`UsageError` (an ``InvalidInput``) that
``main`` reports like every other refusal.

Every string argument also passes :func:`text`, unless it declares its own ``type``:
an empty value, a NUL or another control character, or a value longer than any path
or URL Ferry accepts is refused here, before it can reach a database driver, a file
name or a log line.

One style for every flag (issue #10): a flag is named after the CRD field it mirrors
(``--skip-backup`` is ``spec.backup.skip``; ``--tables``/``--exclude`` are a Backup's
``spec.tables``/``spec.exclude``), and a flag that takes several names is repeatable
and also takes a comma list (:func:`names`). A renamed flag keeps its old spelling for
one release as a hidden :func:`deprecated_alias` that says what to use instead.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
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


def names(value: str) -> list[str]:
    """argparse ``type`` of a repeatable flag that also takes ``a,b,c``.

    An empty item is refused rather than dropped: ``--tables ,`` must not quietly mean
    "no restriction", which is every table.
    """
    items = [item.strip() for item in text(value).split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"empty name in {value[:60]!r}")
    return items


def add_names_argument(parser: argparse.ArgumentParser, flag: str, help_: str) -> None:
    """``flag`` as a repeatable option collecting names (see :func:`names`); the value is
    ``None`` when the flag is absent, else the names in order, each once."""
    parser.add_argument(
        flag,
        action=_ExtendUnique,
        type=names,
        metavar="NAME[,NAME...]",
        help=f"{help_} (repeatable; also takes a comma list)",
    )


class _ExtendUnique(argparse.Action):
    """Like argparse's ``extend``, keeping the first of any repeated name."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        current: list[object] = list(getattr(namespace, self.dest, None) or [])
        for value in values if isinstance(values, list) else [values]:
            if value not in current:
                current.append(value)
        setattr(namespace, self.dest, current)


class _DeprecatedAlias(argparse.Action):
    """An old spelling of ``replacement``: hidden from ``--help``, does what the new
    spelling does, and says once on stderr what to use instead."""

    def __init__(self, option_strings: list[str], dest: str, replacement: argparse.Action) -> None:
        kind = replacement.type
        if isinstance(kind, str):  # a name in argparse's registry: Ferry uses none
            raise TypeError(f"{replacement.option_strings[0]}: type {kind!r} is not callable")
        super().__init__(
            option_strings,
            replacement.dest,
            nargs=replacement.nargs,
            type=kind,
            choices=replacement.choices,
            metavar=replacement.metavar,
            help=argparse.SUPPRESS,
        )
        self.replacement = replacement
        self.warned = False

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        new = self.replacement.option_strings[0]
        if not self.warned:
            print(f"warning: {option_string} is deprecated; use {new}", file=sys.stderr)
            self.warned = True
        self.replacement(parser, namespace, values, new)


def deprecated_alias(
    parser: argparse.ArgumentParser, old: str, replacement: argparse.Action
) -> None:
    """Keep ``old`` working as ``replacement`` for one release (see :class:`_DeprecatedAlias`)."""
    parser.add_argument(old, action=_DeprecatedAlias, replacement=replacement)


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with Ferry's error contract (subparsers inherit it).

    Abbreviated options are refused: ``--skip-b`` meaning ``--skip-backup`` today could
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
