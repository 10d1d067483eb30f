"""Where an application's files live: a directory (a mounted volume) or an S3 prefix.

A backup reads every file below the root but the excluded ones; a restore writes the
backup's files back into it. Both are untrusted in their own way: a root may hold
symlinks leading elsewhere, a backup may name paths meant to escape. So a directory
root is walked without following links, and written through directory descriptors
opened one component at a time with ``O_NOFOLLOW`` (a symlink planted on the way is
refused by name, also one planted while the restore runs); every path is checked by
:func:`controller.backups.layout.file_path` first.

Nothing is deleted by a restore: a file it replaces with other bytes, or that the
backup does not hold, is moved aside below :data:`DISPLACED` (see
:meth:`FilesRoot.displace`), which backups and restores never touch.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from controller.backups import layout
from controller.errors import InvalidInput

#: Where a restore moves what it replaces or removes: ``<root>/.ferry-displaced/<stamp>/``.
DISPLACED = ".ferry-displaced"
#: Never backed up, never restored, never moved aside, whatever the Environment says.
#: NocoBase keeps the AES key of its secret variables in ``storage/apps/<app>/aes_key.dat``
#: (2.x; before: ``storage/environment-variables/<app>/``): the key is the user's to
#: keep, like ``APP_KEY``, never the backup's.
ALWAYS_EXCLUDED = ("environment-variables", "aes_key.dat", DISPLACED, "*.ferry-tmp")
READ_CHUNK = 1 << 20

Sink = Callable[[bytes], object]


def excluded(path: str, patterns: Sequence[str]) -> bool:
    """True when ``path`` or one of its directories matches a pattern. A pattern with
    a ``/`` matches a path from the root (``logs/*``); one without matches a name at
    any depth (``environment-variables``, ``*.log``)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in (*ALWAYS_EXCLUDED, *patterns):
        if "/" in pattern.strip("/"):
            if any(fnmatchcase(p, pattern.strip("/")) for p in prefixes):
                return True
        elif any(fnmatchcase(part, pattern) for part in parts):
            return True
    return False


@dataclass(frozen=True)
class Scan:
    files: list[tuple[str, int]]  # (relative path, size), sorted by path
    skipped: list[str] = field(default_factory=list)  # symlinks, sockets, odd names


class FilesRoot(Protocol):
    @property
    def label(self) -> str: ...

    @property
    def exclude(self) -> tuple[str, ...]: ...

    def probe(self) -> None:
        """Refuse a root that cannot be read, cheaply: a migration asks before it
        takes its target's lock, so a wrong root changes nothing."""
        ...

    def scan(self) -> Scan:
        """Every regular file below the root that is not excluded."""
        ...

    def open(self, path: str) -> BinaryIO: ...

    def check_target(self, paths: Sequence[str]) -> None:
        """Refuse (by name) a restore of ``paths`` that would write through a symlink,
        over a directory, or below a file; before anything changes."""
        ...

    def digest(self, path: str) -> str | None:
        """The sha256 of the file at ``path``, or None when there is none."""
        ...

    def install(self, path: str, fill: Callable[[Sink], str], stamp: str) -> None:
        """Write ``path`` from ``fill`` (it writes the bytes and returns their sha256,
        raising when they are not the backup's), moving what was there aside first."""
        ...

    def displace(self, path: str, stamp: str) -> None:
        """Move ``path`` to ``.ferry-displaced/<stamp>/path``."""
        ...


def _refused(label: str, path: str, why: str) -> InvalidInput:
    return InvalidInput(f"files root {label}: {path[:200]!r} {why}", reason="InvalidPath")


class DirectoryRoot:
    """Files in a directory the operator (or the CLI) can read and write."""

    def __init__(self, root: Path, exclude: Sequence[str] = ()) -> None:
        self.root = root
        self._exclude = tuple(exclude)

    @property
    def label(self) -> str:
        return str(self.root)

    @property
    def exclude(self) -> tuple[str, ...]:
        return self._exclude

    def _root_fd(self) -> int:
        try:
            return os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as err:
            raise InvalidInput(
                f"files root {self.root} cannot be opened: {err.strerror or err}",
                reason="FilesRootUnusable",
            ) from err

    def probe(self) -> None:
        os.close(self._root_fd())

    def scan(self) -> Scan:
        self.probe()
        files: list[tuple[str, int]] = []
        skipped: list[str] = []
        for top, dirs, names in os.walk(self.root, onerror=self._unreadable, followlinks=False):
            rel_top = os.path.relpath(top, self.root)
            rel_top = "" if rel_top == "." else rel_top + "/"
            dirs[:] = sorted(d for d in dirs if not excluded(rel_top + d, self._exclude))
            for name in sorted(names) + [d for d in dirs if os.path.islink(Path(top, d))]:
                rel = rel_top + name
                if excluded(rel, self._exclude):
                    continue
                try:
                    info = os.lstat(Path(top, name))
                except FileNotFoundError:
                    continue  # removed while the application runs: not of this backup
                try:
                    layout.file_path(rel)
                except InvalidInput:
                    skipped.append(rel)
                    continue
                if stat.S_ISREG(info.st_mode):
                    files.append((rel, info.st_size))
                else:
                    skipped.append(rel)  # symlinks are not followed, devices not read
        return Scan(sorted(files), sorted(set(skipped)))

    def _unreadable(self, err: OSError) -> None:
        """A directory the walk cannot read: refused, never a backup silently short."""
        where = os.path.relpath(err.filename or self.root, self.root)
        raise InvalidInput(
            f"files root {self.label}: {where!r} cannot be read: {err.strerror or err}",
            reason="FilesRootUnusable",
        ) from err

    @contextlib.contextmanager
    def _parent(self, path: str, create: bool) -> Iterator[tuple[int, str]]:
        """A descriptor of ``path``'s directory, reached without following a link."""
        parts = path.split("/")
        fd = self._root_fd()
        try:
            for i, part in enumerate(parts[:-1]):
                try:
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except FileNotFoundError:
                    if not create:
                        raise
                    os.mkdir(part, 0o755, dir_fd=fd)
                    nxt = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                except OSError as err:
                    where = "/".join(parts[: i + 1])
                    raise _refused(
                        self.label, path, f"leads through {where!r}, not a directory (a symlink?)"
                    ) from err
                os.close(fd)
                fd = nxt
            yield fd, parts[-1]
        finally:
            os.close(fd)

    def _lstat(self, path: str) -> os.stat_result | None:
        try:
            with self._parent(path, create=False) as (fd, name):
                return os.lstat(name, dir_fd=fd)
        except FileNotFoundError:
            return None

    def check_target(self, paths: Sequence[str]) -> None:
        for path in paths:
            parts = path.split("/")
            for depth in range(1, len(parts) + 1):
                sub = "/".join(parts[:depth])
                try:
                    info = self._lstat(sub)
                except OSError as err:  # a name too long, a permission
                    why = f"cannot be written: {err.strerror}"
                    raise _refused(self.label, path, why) from err
                if info is None:
                    break
                if stat.S_ISLNK(info.st_mode):
                    raise _refused(self.label, path, f"leads through the symlink {sub!r}")
                last = depth == len(parts)
                if last and stat.S_ISDIR(info.st_mode):
                    raise _refused(self.label, path, "is a directory in the files root")
                if not last and not stat.S_ISDIR(info.st_mode):
                    raise _refused(self.label, path, f"lies below the file {sub!r}")

    def open(self, path: str) -> BinaryIO:
        with self._parent(path, create=False) as (fd, name):
            return os.fdopen(os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd), "rb")

    def digest(self, path: str) -> str | None:
        info = self._lstat(path)
        if info is None or not stat.S_ISREG(info.st_mode):
            return None
        h = hashlib.sha256()
        with self.open(path) as f:
            while chunk := f.read(READ_CHUNK):
                h.update(chunk)
        return h.hexdigest()

    def install(self, path: str, fill: Callable[[Sink], str], stamp: str) -> None:
        with self._parent(path, create=True) as (fd, name):
            tmp = f".{name[:200]}.{os.getpid()}.ferry-tmp"
            out = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644, dir_fd=fd
            )
            try:
                with os.fdopen(out, "wb") as f:
                    fill(f.write)
                    f.flush()
                    os.fsync(f.fileno())
                with contextlib.suppress(FileNotFoundError):
                    os.lstat(name, dir_fd=fd)
                    self.displace(path, stamp)
                os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=fd)
                raise

    def displace(self, path: str, stamp: str) -> None:
        target = f"{DISPLACED}/{stamp}/{path}"
        with (
            self._parent(path, create=False) as (src, name),
            self._parent(target, create=True) as (dst, moved),
        ):
            os.rename(name, moved, src_dir_fd=src, dst_dir_fd=dst)


class S3Root:
    """Files as objects below a prefix of an S3-compatible bucket (boto3 client)."""

    def __init__(self, bucket: str, prefix: str, client: Any, exclude: Sequence[str] = ()):
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client
        self._exclude = tuple(exclude)

    @property
    def label(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    @property
    def exclude(self) -> tuple[str, ...]:
        return self._exclude

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(what) from err
            raise InvalidInput(f"files root {self.label}: {what}: {code or err}") from err
        except BotoCoreError as err:
            from controller.errors import Unreachable

            raise Unreachable(f"files root {self.label}: {what}: {err}") from err

    def probe(self) -> None:
        kwargs = {"Bucket": self.bucket, "Prefix": self.prefix, "MaxKeys": 1}
        self._call("listing", self.client.list_objects_v2, **kwargs)

    def scan(self) -> Scan:
        files: list[tuple[str, int]] = []
        skipped: list[str] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self.prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("listing", self.client.list_objects_v2, **kwargs)
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(self.prefix) :]
                if rel.endswith("/") or excluded(rel, self._exclude):
                    continue  # a "directory" placeholder, or excluded
                try:
                    files.append((layout.file_path(rel), int(obj["Size"])))
                except InvalidInput:
                    skipped.append(rel)
            if not page.get("IsTruncated"):
                break
            token = page.get("NextContinuationToken")
        return Scan(sorted(files), sorted(skipped))

    def open(self, path: str) -> BinaryIO:
        body = self._call(
            f"reading {path}", self.client.get_object, Bucket=self.bucket, Key=self.prefix + path
        )
        return body["Body"]  # type: ignore[no-any-return]  # a stream, read in chunks

    def check_target(self, paths: Sequence[str]) -> None:
        return None  # keys are names, not a tree: nothing to lead elsewhere

    def digest(self, path: str) -> str | None:
        try:
            f = self.open(path)
        except FileNotFoundError:
            return None
        h = hashlib.sha256()
        with contextlib.closing(f):
            while chunk := f.read(READ_CHUNK):
                h.update(chunk)
        return h.hexdigest()

    def install(self, path: str, fill: Callable[[Sink], str], stamp: str) -> None:
        with tempfile.TemporaryFile() as spool:  # proven before it is uploaded
            fill(spool.write)
            spool.seek(0)
            if self.digest(path) is not None:
                self.displace(path, stamp)
            self._call(
                f"writing {path}",
                self.client.upload_fileobj,
                Fileobj=spool,
                Bucket=self.bucket,
                Key=self.prefix + path,
            )

    def displace(self, path: str, stamp: str) -> None:
        key = self.prefix + path
        self._call(
            f"moving {path} aside",
            self.client.copy_object,
            Bucket=self.bucket,
            Key=f"{self.prefix}{DISPLACED}/{stamp}/{path}",
            CopySource={"Bucket": self.bucket, "Key": key},
        )
        self._call(f"moving {path} aside", self.client.delete_object, Bucket=self.bucket, Key=key)
