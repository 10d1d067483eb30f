"""Fetch a configuration snapshot committed to Git at a given revision (gitpython).

The revision is resolved to a commit, which the Migration records, so the status says
exactly which reviewed snapshot was applied. Credentials, when given, are passed to
git through its environment for this one command and never written to disk or logs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import git

from controller.errors import InvalidInput, TemporaryError


@dataclass(frozen=True)
class Checkout:
    directory: Path  # the snapshot directory inside the working tree
    commit: str


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


@contextmanager
def checkout(
    repository: str,
    revision: str | None,
    path: str = ".",
    token: str | None = None,
    ssh_key: str | None = None,
) -> Iterator[Checkout]:
    """A temporary checkout of ``repository`` at ``revision`` (default: its HEAD)."""
    with tempfile.TemporaryDirectory(prefix="ferry-git-") as tmp:
        env = {"GIT_TERMINAL_PROMPT": "0"}
        secrets: list[str] = []
        url = repository
        if token:
            secrets.append(token)
            env |= {
                "GIT_CONFIG_COUNT": "1",
                "GIT_CONFIG_KEY_0": "http.extraHeader",
                "GIT_CONFIG_VALUE_0": f"Authorization: Bearer {token}",
            }
        if ssh_key:
            key_file = Path(tmp) / "ssh-key"
            key_file.write_text(ssh_key if ssh_key.endswith("\n") else ssh_key + "\n")
            os.chmod(key_file, 0o600)
            env["GIT_SSH_COMMAND"] = (
                f"ssh -i {key_file} -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new"
            )
        work = Path(tmp) / "repo"
        try:
            repo = git.Repo.clone_from(url, work, env=env, no_checkout=True)
        except git.GitCommandError as err:
            message = _scrub(str(err.stderr or err).strip(), secrets)
            if (
                "could not read" in message
                or "Authentication" in message
                or "Permission denied" in message
            ):
                raise InvalidInput(f"git: cannot access {repository}: {message}") from None
            raise TemporaryError(f"git: cannot clone {repository}: {message}") from None
        try:
            commit = repo.commit(revision or "HEAD")
            repo.git.checkout(commit.hexsha)
        except (git.BadName, git.GitCommandError, ValueError):
            raise InvalidInput(
                f"git: revision {revision!r} does not exist in {repository}"
            ) from None
        directory = (work / path).resolve()
        if work.resolve() not in [directory, *directory.parents]:
            raise InvalidInput(f"git: path {path!r} leaves the repository")
        if not directory.is_dir():
            raise InvalidInput(f"git: path {path!r} does not exist at {commit.hexsha[:12]}")
        yield Checkout(directory, commit.hexsha)
