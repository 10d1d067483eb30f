"""What ``ferry promote`` checks before it writes a Migration, beyond the CRD parser.

``parse_migration`` applies the operator's own rules to the document; these are the
rules the API server and Argo CD apply to the same fields, which the parser does not
see (label values, namespaces, the CRD's lengths, what Git accepts as a revision, what
Argo CD accepts as a sync wave), so that a manifest ``ferry promote`` writes is one the
cluster accepts and the operator can run, not one that fails after it was committed.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from controller.errors import InvalidInput

OBJECT_NAME = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
LABEL_VALUE_MAX = 63  # a label value: the environments are recorded in labels
REVISION_MAX = 256  # the CRD's maxLength for spec.source.git.revision
PATH_MAX = 1024  # ... for spec.source.git.path
REPOSITORY_MAX = 2048  # ... for spec.source.git.repository
SYNC_WAVE_RANGE = (-(2**31), 2**31 - 1)
_HEX_COMMIT = re.compile(r"[0-9a-f]{7,64}")
# ``git check-ref-format``: no space, control character or ~^:?*[\ anywhere.
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


def environment(value: str, flag: str) -> str:
    """An Environment's name, also written as a label value (at most 63 characters)."""
    if not OBJECT_NAME.fullmatch(value):
        raise InvalidInput(
            f"{flag} {value[:70]!r} is not a valid object name (lowercase letters, digits, "
            "'-' and '.')"
        )
    if len(value) > LABEL_VALUE_MAX:
        raise InvalidInput(
            f"{flag} {value[:70]!r}: at most {LABEL_VALUE_MAX} characters (it becomes a label)"
        )
    return value


def namespace(value: str) -> str:
    if not DNS_LABEL.fullmatch(value):
        raise InvalidInput(
            f"--namespace {value[:70]!r} is not a namespace name (a DNS label: lowercase "
            "letters, digits and '-', at most 63)"
        )
    return value


def revision(value: str) -> str:
    """A commit (hex) or a branch or tag name as ``git check-ref-format`` allows it;
    relative revisions (``main~1``) would make the promotion depend on when it runs."""
    if len(value) > REVISION_MAX:
        raise InvalidInput(f"--git-revision: at most {REVISION_MAX} characters")
    if _HEX_COMMIT.fullmatch(value):
        return value
    bad = (
        _REF_FORBIDDEN.search(value)
        or value.startswith(("-", "/", "."))
        or value.endswith(("/", ".", ".lock"))
        or any(s in value for s in ("..", "//", "@{", "/."))
        or value == "@"
    )
    if bad:
        raise InvalidInput(
            f"--git-revision {value[:70]!r} is neither a commit nor a branch or tag name"
        )
    return value


def snapshot_path(value: str) -> str:
    """A relative path inside the repository (the CRD's pattern, no ``..`` segment)."""
    if len(value) > PATH_MAX:
        raise InvalidInput(f"--git-path: at most {PATH_MAX} characters")
    if value.startswith("/") or any(ch.isspace() for ch in value):
        raise InvalidInput(f"--git-path {value[:70]!r}: a relative path without spaces")
    if ".." in value.split("/"):
        raise InvalidInput(f"--git-path {value[:70]!r} leaves the repository ('..')")
    return value


def repository(value: str, with_secret: bool) -> str:
    if len(value) > REPOSITORY_MAX:
        raise InvalidInput(f"--git-repository: at most {REPOSITORY_MAX} characters")
    parts = urlsplit(value) if "://" in value else None
    if parts is not None and parts.scheme == "http" and with_secret:
        raise InvalidInput(
            "--git-repository: credentials (--git-secret) are never sent over plain "
            "http://; use https:// or ssh://"
        )
    if parts is not None and (parts.password or parts.username):
        raise InvalidInput(
            "--git-repository: credentials in the URL would be committed with the "
            "manifest; put them in the Secret named by --git-secret"
        )
    return value


def sync_wave(value: str) -> str:
    """Argo CD reads the annotation with ``strconv.Atoi``: an integer, nothing else."""
    if not re.fullmatch(r"[-+]?[0-9]{1,10}", value):
        raise InvalidInput(f"--sync-wave {value[:30]!r}: expected an integer, e.g. 1")
    wave = int(value)
    low, high = SYNC_WAVE_RANGE
    if not low <= wave <= high:
        raise InvalidInput(f"--sync-wave {value}: out of range")
    return str(wave)
