"""What a Git source may name: a remote, a revision and a path, checked before git runs.

Ferry applies what it fetches to databases, and the remote, revision and path come from
whoever can write a Migration or a command line. So, before any network use:

- Remotes are ``https://``, ``ssh://`` (or ``user@host:path``), or local (``file://``,
  a path). Plain ``http://`` and ``git://`` are refused: a token would travel in clear
  text, and anyone on the way could hand Ferry a different snapshot. Git's
  ``transport::address`` syntax (``ext::`` runs a command, ``fd::`` reads a file
  descriptor), arguments that git would read as options (``--upload-pack=…``, a host
  starting with ``-``) and control characters are refused too; the clone itself runs
  with ``GIT_ALLOW_PROTOCOL=https:ssh:file``, so a redirect or a submodule cannot
  switch to another transport either.
- A revision is a branch, tag or commit name as ``git check-ref-format`` allows it (no
  ``..``, ``@{``, ``^``, ``~``, ``:``, wildcards, leading ``-``), or a hex object name.
- A path is relative, inside the repository, without ``..`` components.

A private certificate authority for an HTTPS server is git's own setting: set
``GIT_SSL_CAINFO`` (a PEM file) in the environment of ``ferry`` or of the operator's
container (mount the CA from a ConfigMap), or ``http.sslCAInfo`` in its git config.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from urllib.parse import urlsplit

from controller.errors import InvalidInput

ALLOWED_PROTOCOLS = "https:ssh:file"
_SCHEMES = {"https", "ssh", "git+ssh", "ssh+git", "file"}
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^/:]+):(?P<path>.*)$")
_REF_FORBIDDEN = re.compile(r"\.\.|@\{|//|[\x00-\x20\x7f~^:?*\[\\]")
_HEX = re.compile(r"^[0-9a-fA-F]{4,64}$")
MAX_REVISION = 255
MAX_PATH = 4096


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(f"git: {message}", reason="GitSourceRefused")


def check_remote(repository: str, shown: str) -> None:
    """Refuse a remote Ferry must not fetch from (see the module doc)."""
    if not repository or _CONTROL.search(repository):
        raise _refuse(f"repository {shown!r} is empty or contains spaces or control characters")
    if repository.startswith("-"):
        raise _refuse(f"repository {shown!r} starts with '-' (git would read an option)")
    if "::" in repository.partition("://")[0] or repository.startswith("::"):
        raise _refuse(
            f"repository {shown!r} uses git's transport::address form (ext::, fd:: …), "
            "which Ferry refuses; use https:// or ssh://"
        )
    scheme, sep, _ = repository.partition("://")
    if sep:
        _check_url(repository, scheme.lower(), shown)
        return
    scp = _SCP_LIKE.match(repository)
    local = repository.startswith(("/", "."))
    if scp and not local and "-" in (scp.group("host")[:1], (scp.group("user") or "")[:1]):
        raise _refuse(f"repository {shown!r}: a host or user may not start with '-'")


def _check_url(repository: str, scheme: str, shown: str) -> None:
    if scheme in ("http", "git"):
        raise _refuse(
            f"{scheme}:// is not accepted ({shown}): it is unencrypted, so credentials and the "
            "snapshot could be read or changed on the way; use https:// or ssh://"
        )
    if scheme not in _SCHEMES:
        raise _refuse(f"transport {scheme!r} is not accepted ({shown}); use https:// or ssh://")
    try:
        parts = urlsplit(repository)
        parts.port  # noqa: B018 - parses the port, raising on a bad one
    except ValueError as err:
        raise _refuse(f"repository {shown!r} is not a valid URL ({err})") from None
    if scheme != "file" and not parts.hostname:
        raise _refuse(f"repository {shown!r} has no host")
    if (parts.hostname or "").startswith("-") or (parts.username or "").startswith("-"):
        raise _refuse(f"repository {shown!r}: a host or user may not start with '-'")


def check_revision(revision: str | None) -> None:
    """Refuse a revision that is neither a valid ref name nor an object name."""
    if revision is None or _HEX.match(revision):
        return
    problem = ""
    if not revision.strip() or len(revision) > MAX_REVISION:
        problem = "empty or too long"
    elif revision.startswith(("-", "/", ".")) or revision.endswith(("/", ".", ".lock")):
        problem = "starts with -, / or ., or ends with /, . or .lock"
    elif _REF_FORBIDDEN.search(revision) or "/." in revision or revision == "@":
        problem = "contains .., @{, //, a space, a control character or one of ~^:?*[\\"
    if problem:
        raise InvalidInput(
            f"git: revision {revision!r} is not a revision name ({problem})",
            reason="GitSourceRefused",
        )


def check_path(path: str) -> None:
    """Refuse a snapshot path that is absolute, climbs out, or is not a plain path."""
    if len(path) > MAX_PATH or re.search(r"[\x00-\x1f\x7f]", path):
        raise _refuse(f"path {path!r} contains control characters or is too long")
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("\\") or ".." in pure.parts:
        raise _refuse(f"path {path!r} leaves the repository (it must be relative, without ..)")
    if path.startswith("-"):
        raise _refuse(f"path {path!r} starts with '-'")


def holds_credentials(repository: str) -> bool:
    """Whether the repository URL itself carries a secret: a password, or an HTTPS user
    name (a token is often sent as one). ``ssh://git@host`` and ``git@host:path`` do
    not: their user names are public."""
    scheme, sep, _ = repository.partition("://")
    if not sep:
        return False
    try:
        parts = urlsplit(repository)
    except ValueError:
        return True  # unparsable: treat it as the worst case
    return parts.password is not None or (scheme.lower() == "https" and parts.username is not None)
