"""``--source git+URL#…`` on the command line: its credentials and its one checkout.

A Migration's Job (docs/concepts.md, "Job mode") runs ``ferry migrate`` with such a
source pinned to the commit the operator planned, and gets the credentials Secret as a
Secret volume: ``$FERRY_GIT_CREDENTIALS_DIR`` (or ``--git-credentials``) names the
directory holding its keys, one file each. No credential is ever an argument.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from controller.commands.merging import source_identity
from controller.commands.planning import PlanOptions
from controller.commands.sources import GIT_PREFIX, fetched
from controller.gitsource.repository import (
    CREDENTIALS_DIR_ENV,
    GitCredentials,
    credentials_from_directory,
)


def add_git_credentials_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--git-credentials",
        metavar="DIR",
        help="for a git+ source: a directory holding the keys of a Git credentials Secret, "
        "one file each (token or password, username, authScheme, ssh-privatekey, "
        f"known_hosts), as a mounted Secret volume does (default: ${CREDENTIALS_DIR_ENV})",
    )


def git_credentials(args: argparse.Namespace) -> GitCredentials | None:
    """The credentials ``--git-credentials`` (else the environment) names, if any."""
    directory = getattr(args, "git_credentials", None) or os.environ.get(CREDENTIALS_DIR_ENV)
    return credentials_from_directory(Path(directory)) if directory else None


@contextmanager
def checked_out(
    spec: str, args: argparse.Namespace, options: PlanOptions
) -> Iterator[tuple[str, PlanOptions]]:
    """``spec`` and ``options`` as they are, or for a Git source the directory of its one
    checkout and options that still name the source by its URL and path (a three-way
    merge finds its base by that name, whatever the revision or the directory)."""
    if not spec.startswith(GIT_PREFIX):
        yield spec, options
        return
    named = replace(options, source_id=options.source_id or source_identity(spec))
    with fetched(spec, git_credentials(args)) as directory:
        yield directory, named
