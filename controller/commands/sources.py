"""Open whatever ``--source`` names: a database URL or an exported snapshot directory."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode

from controller.db.connect import redact
from controller.db.database import Database
from controller.engine.source import SnapshotSource
from controller.errors import InvalidInput
from controller.gitsource.repository import GitCredentials, checkout, redact_url
from controller.gitsource.snapshot_dir import SnapshotDirectory

GIT_PREFIX = "git+"


def is_url(spec: str) -> bool:
    return "://" in spec or spec.startswith("sqlite:")


def parse_git_spec(spec: str) -> tuple[str, str | None, str]:
    """``git+URL#revision=REV&path=DIR`` → (URL, REV, DIR); values may be %-encoded.

    Each parameter at most once, nothing else: a typo must not silently mean HEAD or
    the repository's root. The spec is shown only with its credentials hidden. The
    fragment starts at the last ``#`` (its values encode theirs), so a repository
    whose path holds a ``#`` is named by ending the spec with one.
    """
    rest = spec[len(GIT_PREFIX) :]
    url, _, fragment = rest.rpartition("#") if "#" in rest else (rest, "", "")
    shown = redact_url(spec)
    usage = f"source {shown!r}: expected git+URL#revision=REV&path=DIR"
    try:
        pairs = parse_qsl(fragment, keep_blank_values=True, strict_parsing=bool(fragment))
    except ValueError:
        raise InvalidInput(usage) from None
    params = dict(pairs)
    unknown = sorted(set(params) - {"revision", "path"})
    if unknown or len(params) != len(pairs) or not url:
        raise InvalidInput(usage + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    return url, params.get("revision") or None, params.get("path") or "."


def git_spec(url: str, revision: str | None, path: str) -> str:
    """The ``--source`` that names ``path`` of ``url`` at ``revision``: what
    :func:`parse_git_spec` reads back unchanged, whatever the three hold."""
    params = {"revision": revision} if revision else {}
    fragment = urlencode({**params, "path": path}, safe="/", quote_via=quote)
    return f"{GIT_PREFIX}{url}#{fragment}"


@contextmanager
def fetched(spec: str, credentials: GitCredentials | None = None) -> Iterator[str]:
    """``spec``, or for a Git source the directory of its one checkout (made with
    ``credentials``), so planning and applying read the same tree."""
    if not spec.startswith(GIT_PREFIX):
        yield spec
        return
    url, revision, subdir = parse_git_spec(spec)
    with checkout(url, revision, subdir, credentials=credentials) as out:
        yield str(out.directory)


@contextmanager
def open_source(spec: str) -> Iterator[SnapshotSource]:
    """A database URL, an exported snapshot directory, or a snapshot in Git
    (``git+URL#revision=REV&path=DIR``)."""
    if spec.startswith(GIT_PREFIX):
        url, revision, subdir = parse_git_spec(spec)
        with checkout(url, revision, subdir) as out:
            yield SnapshotDirectory(out.directory)
        return
    if is_url(spec):
        db = Database(spec)
        try:
            with db.reader() as snap:
                yield snap
        finally:
            db.dispose()
        return
    path = Path(spec)
    if not path.is_dir():
        raise InvalidInput(
            f"source {redact(spec)!r} is neither a database URL nor a snapshot directory"
        )
    yield SnapshotDirectory(path)


def same_database(a: str, b: str) -> bool:
    """True when two specs name the same database (SQLite paths are resolved)."""
    if a == b:
        return True
    prefix = "sqlite:///"
    if a.startswith(prefix) and b.startswith(prefix):
        return Path(a[len(prefix) :]).resolve() == Path(b[len(prefix) :]).resolve()
    return False
