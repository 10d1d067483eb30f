"""Where backups live: one interface, a filesystem store and an S3-compatible store.

Writers put each member in place as it is finished and publish the manifest last;
readers see only backups whose manifest exists. An interrupted backup leaves debris
that is never listed, and :meth:`BackupStore.remove_incomplete` cleans it up.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol

from controller.backups import layout
from controller.backups.manifest import Manifest, parse_manifest
from controller.errors import InvalidInput


class BackupWriter(Protocol):
    def member_file(self, key: str) -> Path:
        """A local path to write member ``key`` to, before :meth:`member_done`."""
        ...

    def member_done(self, key: str) -> None: ...

    def put_text(self, key: str, text: bytes) -> None: ...

    def publish(self, manifest: Manifest) -> str:
        """Make the backup complete and visible; returns its location."""
        ...

    def abort(self) -> None: ...


class BackupStore(Protocol):
    @property
    def label(self) -> str: ...

    def writer(self, environment: str, backup_id: str) -> BackupWriter: ...

    def manifests(self, environment: str | None = None) -> list[Manifest]: ...

    def manifest(self, backup_id: str, environment: str | None = None) -> Manifest: ...

    def open(self, manifest: Manifest, key: str) -> BinaryIO: ...

    def put_extra(self, manifest: Manifest, key: str, data: bytes) -> None: ...

    def get_extra(self, manifest: Manifest, key: str) -> bytes | None: ...

    def delete(self, manifest: Manifest) -> None: ...

    def remove_incomplete(self, older_than_seconds: float = 0) -> list[str]: ...

    def location(self, manifest: Manifest) -> str: ...


PARTIAL = ".partial-"


class FilesystemStore:
    """Backups in a directory (a mounted volume). Publication is a directory rename."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def label(self) -> str:
        return str(self.root)

    def writer(self, environment: str, backup_id: str) -> _FsWriter:
        final = self.root / layout.prefix(environment, backup_id)
        if final.exists():
            raise InvalidInput(f"backup {backup_id} already exists in {self.root}")
        partial = final.parent / f"{PARTIAL}{backup_id}"
        partial.mkdir(parents=True)
        return _FsWriter(partial, final)

    def _manifest_paths(self, environment: str | None) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        envs = [self.root / environment] if environment else sorted(self.root.iterdir())
        for env in envs:
            if env.is_dir():
                yield from sorted(env.glob(f"*/{layout.MANIFEST}"))

    def manifests(self, environment: str | None = None) -> list[Manifest]:
        found = [
            parse_manifest(p.read_text(encoding="utf-8"), str(p))
            for p in self._manifest_paths(environment)
            if PARTIAL not in p.parent.name
        ]
        return sorted(found, key=lambda m: m.id)

    def manifest(self, backup_id: str, environment: str | None = None) -> Manifest:
        for path in self._manifest_paths(environment):
            if path.parent.name == backup_id:
                return parse_manifest(path.read_text(encoding="utf-8"), str(path))
        raise InvalidInput(f"no complete backup {backup_id!r} in {self.root}")

    def _dir(self, manifest: Manifest) -> Path:
        return self.root / layout.prefix(manifest.environment, manifest.id)

    def open(self, manifest: Manifest, key: str) -> BinaryIO:
        path = self._dir(manifest) / key
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise InvalidInput(f"backup {manifest.id}: member {key} is missing") from None

    def put_extra(self, manifest: Manifest, key: str, data: bytes) -> None:
        path = self._dir(manifest) / key
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)

    def get_extra(self, manifest: Manifest, key: str) -> bytes | None:
        path = self._dir(manifest) / key
        return path.read_bytes() if path.is_file() else None

    def delete(self, manifest: Manifest) -> None:
        shutil.rmtree(self._dir(manifest), ignore_errors=True)

    def remove_incomplete(self, older_than_seconds: float = 0) -> list[str]:
        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        cutoff = time.time() - older_than_seconds
        for env in self.root.iterdir():
            for item in env.iterdir() if env.is_dir() else ():
                incomplete = item.name.startswith(PARTIAL) or (
                    item.is_dir() and not (item / layout.MANIFEST).exists()
                )
                if incomplete and item.stat().st_mtime <= cutoff:
                    shutil.rmtree(item, ignore_errors=True)
                    removed.append(f"{env.name}/{item.name}")
        return removed

    def location(self, manifest: Manifest) -> str:
        return str(self._dir(manifest))


class _FsWriter:
    def __init__(self, partial: Path, final: Path) -> None:
        self.partial = partial
        self.final = final

    def member_file(self, key: str) -> Path:
        path = self.partial / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def member_done(self, key: str) -> None:
        with (self.partial / key).open("rb") as f:
            os.fsync(f.fileno())

    def put_text(self, key: str, text: bytes) -> None:
        self.member_file(key).write_bytes(text)

    def publish(self, manifest: Manifest) -> str:
        path = self.partial / layout.MANIFEST
        with path.open("w", encoding="utf-8") as f:
            f.write(manifest.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.rename(self.partial, self.final)  # atomic: the backup appears complete or not at all
        return str(self.final)

    def abort(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)


def open_store(spec: str) -> BackupStore:
    """``s3://bucket/prefix`` (credentials from the standard AWS_* variables) or a path."""
    if spec.startswith("s3://"):
        from controller.backups.s3store import S3Store

        bucket, _, prefix = spec[len("s3://") :].partition("/")
        if not bucket:
            raise InvalidInput(f"store {spec!r}: no bucket")
        return S3Store(bucket, prefix)
    if "://" in spec:
        raise InvalidInput(f"unsupported store {spec!r} (a directory or s3://bucket/prefix)")
    return FilesystemStore(Path(spec))


@contextmanager
def writing(store: BackupStore, environment: str, backup_id: str) -> Iterator[BackupWriter]:
    """A writer that is aborted (its debris removed) unless the body publishes."""
    writer = store.writer(environment, backup_id)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
