"""Typed view of an Environment's ``spec.files``: where its application keeps files.

NocoBase stores uploads beside its database (``storage/uploads``, or an S3 bucket);
rows point at them. An Environment that declares its files root gets them backed up
with its rows and put back by a restore. The root is a directory the operator (or a
Job) mounts, or an S3 prefix with the same fields as the backup store's ``s3``.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.api.resources import Node
from controller.errors import InvalidInput

FIELDS_READ: tuple[str, ...] = (
    "spec.files.path",
    "spec.files.s3.bucket",
    "spec.files.s3.prefix",
    "spec.files.s3.endpoint",
    "spec.files.s3.region",
    "spec.files.s3.credentialsSecret",
    "spec.files.exclude",
)
MAX_PATTERN = 1024


@dataclass(frozen=True)
class S3Files:
    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    credentials_secret: str | None = None  # AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY


@dataclass(frozen=True)
class FilesSpec:
    path: str | None = None
    s3: S3Files | None = None
    # Globs of paths below the root never backed up nor touched by a restore (Ferry
    # adds NocoBase's key directory, environment-variables, whatever this says).
    exclude: tuple[str, ...] = ()


def _patterns(node: Node) -> tuple[str, ...]:
    patterns = node.string_list("exclude")
    for pattern in patterns:
        if not pattern or len(pattern) > MAX_PATTERN or "\x00" in pattern:
            raise InvalidInput(f"{node.where}.exclude: {pattern[:80]!r} is not a pattern")
    return patterns


def parse_files(spec: Node) -> FilesSpec | None:
    files = spec.child("files")
    if files is None:
        return None
    exclude = _patterns(files)
    if files.one_of("path", "s3") == "path":
        path = files.required_string("path")
        if not path.startswith("/") or any(p == ".." for p in path.split("/")):
            raise InvalidInput(
                f"{files.where}.path: expected an absolute path without '..', got {path!r}"
            )
        return FilesSpec(path=path, exclude=exclude)
    s3 = files.child("s3")
    assert s3 is not None
    prefix = s3.string("prefix") or ""
    if any(part in (".", "..") for part in prefix.split("/")):
        raise InvalidInput(f"{s3.where}.prefix: {prefix!r} may not hold . or .. parts")
    return FilesSpec(
        exclude=exclude,
        s3=S3Files(
            bucket=s3.required_string("bucket"),
            prefix=prefix,
            endpoint=s3.string("endpoint"),
            region=s3.string("region"),
            credentials_secret=s3.name("credentialsSecret"),
        ),
    )
