"""``ferry diff SRC DST``: how two environments' (or snapshots') configuration differs.

Like ``diff(1)`` and ``git diff --exit-code``: exit 0 whenever the comparison ran, and
with ``--exit-code`` 1 when the two differ; invalid input is 2, an unreachable or busy
database 75, as for every command.
"""

from __future__ import annotations

import argparse

from controller.cli.inputs import resolve_database
from controller.commands.diff import DiffOptions, diff
from controller.engine.profiles import parse_profile
from controller.engine.render_diff import diff_json, diff_markdown, diff_text
from controller.errors import InvalidInput

_SIDE = (
    "database URL, export dir, git+URL#revision=REV&path=DIR, or env:[NAMESPACE/]NAME "
    "(an Environment in the current kube context)"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "diff",
        help="compare two environments' configuration table by table and row by row",
    )
    p.add_argument("src", metavar="SRC", help=_SIDE)
    p.add_argument("dst", metavar="DST", help=_SIDE)
    p.add_argument("--profile", default="nocobase", choices=["nocobase", "generic"])
    p.add_argument(
        "--tables",
        action="append",
        metavar="GLOB,GLOB",
        help="compare only these tables (globs, comma-separated; may be repeated)",
    )
    p.add_argument("--format", default="text", choices=["text", "json", "markdown"])
    p.add_argument("--verbose", "-v", action="store_true", help="list equal tables too")
    p.add_argument(
        "--exit-code", action="store_true", help="exit 1 when the two differ, 0 when equal"
    )
    p.set_defaults(func=cmd_diff)


def _globs(values: list[str] | None) -> tuple[str, ...]:
    """``--tables a,b --tables c`` → (a, b, c); a list of nothing is a mistake, not "all"."""
    globs = tuple(g.strip() for v in values or () for g in v.split(",") if g.strip())
    if values and not globs:
        raise InvalidInput("--tables: no table name or glob given")
    return globs


def cmd_diff(args: argparse.Namespace) -> int:
    options = DiffOptions(profile=parse_profile(args.profile), tables=_globs(args.tables))
    result = diff(resolve_database(args.src), resolve_database(args.dst), options)
    if args.format == "json":
        print(diff_json(result))
    elif args.format == "markdown":
        print(diff_markdown(result), end="")
    else:
        print(diff_text(result, verbose=args.verbose))
    return 1 if args.exit_code and not result.equal else 0
