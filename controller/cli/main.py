"""Entry point of ``ferry``: parse arguments, run a command, map errors to exit codes.

Exit status: 0 success (a no-op included), 2 invalid input or a refused check
(nothing changed), 1 a failure while changing something (the message says what was
rolled back), 75 a temporary failure worth retrying.

A user never sees a traceback: Ferry's own errors print as one line ``error: …``
(a refused check lists its problems below it), with control characters escaped so a
hostile value cannot forge extra lines or terminal sequences. An exception that is not
a Ferry error is a bug; it is reported in one line too, with exit 1, and
``FERRY_DEBUG=1`` shows its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import cast

from controller import __version__
from controller.cli import (
    backup_cmds,
    diff_cmd,
    migrate_cmds,
    promote_cmd,
    run_cmd,
    secrets_cmd,
)
from controller.cli.parsing import ArgumentParser
from controller.cli.result import write_failure
from controller.errors import CheckFailed, FerryError, InvalidInput, TemporaryError

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_TEMPORARY = 0, 1, 2, 75


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="ferry",
        description="Promote configuration between environments, back up and roll back.",
    )
    parser.add_argument("--version", action="version", version=f"ferry {__version__}")
    # Subparsers are built by our ArgumentParser class (argparse's default for
    # parser_class); the commands' register() functions only need the base type.
    sub = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", required=True, metavar="COMMAND"),
    )
    migrate_cmds.register(sub)
    backup_cmds.register(sub)
    run_cmd.register(sub)
    promote_cmd.register(sub)
    diff_cmd.register(sub)
    secrets_cmd.register(sub)
    return parser


def one_line(message: str) -> str:
    """``message`` on one line: newlines and other control characters escaped."""
    return "".join(
        ch if ch.isprintable() or ch == " " else repr(ch)[1:-1] for ch in message
    ).strip()


def _error(message: str, suffix: str = "") -> None:
    print(f"error: {one_line(message)}{suffix}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        code: int = args.func(args)
        return code
    except CheckFailed as err:
        _error("checks failed, nothing was changed:")
        for problem in err.problems:
            print(f"  - {one_line(problem)}", file=sys.stderr)
        return _failed(EXIT_INVALID, err)
    except InvalidInput as err:
        _error(err.message)
        return _failed(EXIT_INVALID, err)
    except TemporaryError as err:
        _error(err.message, " (temporary; retry later)")
        return _failed(EXIT_TEMPORARY, err)
    except FerryError as err:
        _error(err.message)
        return _failed(EXIT_FAILED, err)
    except KeyboardInterrupt:
        return 130
    except Exception as err:  # a bug: say so in one line, never a traceback
        if os.environ.get("FERRY_DEBUG"):
            traceback.print_exc()
        message = (
            f"internal error ({type(err).__name__} at {_where(err)}); this is a bug in "
            "Ferry: please report it (FERRY_DEBUG=1 shows the traceback)"
        )
        _error(message)
        write_failure(EXIT_FAILED, "InternalError", message)
        return EXIT_FAILED


def _failed(code: int, err: FerryError) -> int:
    """``code``, after telling a Job's operator (the result file) what failed."""
    problems = [one_line(p) for p in err.problems] if isinstance(err, CheckFailed) else None
    write_failure(code, err.reason, one_line(err.message), type(err).__name__, problems)
    return code


def _where(err: BaseException) -> str:
    """The innermost frame of ``err``, as ``file:line``: never the message, which may
    hold a value from the database or a connection string."""
    frames = traceback.extract_tb(err.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{os.path.basename(last.filename)}:{last.lineno}"
