"""Entry point of ``ferry``: parse arguments, run a command, map errors to exit codes.

Exit status: 0 success (a no-op included), 2 invalid input or a refused check
(nothing changed), 1 a failure while changing something (the message says what was
rolled back), 75 a temporary failure worth retrying.
"""

from __future__ import annotations

import argparse
import sys

from controller import __version__
from controller.cli import backup_cmds, migrate_cmds, promote_cmd, run_cmd
from controller.errors import CheckFailed, FerryError, InvalidInput, TemporaryError

EXIT_OK, EXIT_FAILED, EXIT_INVALID, EXIT_TEMPORARY = 0, 1, 2, 75


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ferry",
        description="Promote configuration between environments, back up and roll back.",
    )
    parser.add_argument("--version", action="version", version=f"ferry {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    migrate_cmds.register(sub)
    backup_cmds.register(sub)
    run_cmd.register(sub)
    promote_cmd.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except CheckFailed as err:
        print("error: checks failed, nothing was changed:", file=sys.stderr)
        for problem in err.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_INVALID
    except InvalidInput as err:
        print(f"error: {err.message}", file=sys.stderr)
        return EXIT_INVALID
    except TemporaryError as err:
        print(f"error: {err.message} (temporary; retry later)", file=sys.stderr)
        return EXIT_TEMPORARY
    except FerryError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
