"""Where backups live: one interface, a filesystem store and an S3-compatible store.

Writers put each member in place as it is finished and publish the manifest last;
readers see only backups whose manifest exists. An interrupted backup leaves debris
that is never listed: its writer removes it when it fails, and the next writer of the
store removes what a killed one left (:mod:`controller.backups.writers`).

Everything read back is untrusted: manifests go through
:mod:`controller.backups.manifest_reader`, object keys through
:mod:`controller.backups.layout`, and with a store key extras through
:mod:`controller.backups.sealing`. Nothing outside the store's root is ever read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO, Protocol

from controller.backups import layout, sealing, writers
from controller.backups.crypto import BackupCipher, new_cipher, wrap
from controller.backups.keyring import StoreKeyring, load_keyring_file
from controller.backups.manifest import ENCRYPTED_VERSION, Manifest
from controller.backups.manifest_reader import MAX_MANIFEST_BYTES, read_manifest
from controller.errors import BackupExists, BackupNotFound, InvalidInput

#: The environment variable naming a store keyring file when no option is given.
KEY_FILE_ENV = "FERRY_STORE_KEY_FILE"


class BackupWriter(Protocol):
    def member_file(self, key: str) -> Path:
        """A local path to write member ``key`` to, before :meth:`member_done`."""
        ...

    def member_done(self, key: str) -> None: ...

    @property
    def cipher(self) -> BackupCipher | None:
        """The backup's data key when the store's keyring encrypts (format 3)."""
        ...

    def publish(self, manifest: Manifest) -> tuple[Manifest, str]:
        """Sign or encrypt (with a store key), make the backup complete and visible;
        returns the manifest as published and its location."""
        ...

    def abort(self) -> None: ...


class BackupStore(Protocol):
    @property
    def label(self) -> str: ...

    @property
    def keyring(self) -> StoreKeyring | None: ...

    def writer(self, environment: str, backup_id: str) -> BackupWriter: ...

    def manifests(self, environment: str | None = None) -> list[Manifest]: ...

    def manifest(self, backup_id: str, environment: str | None = None) -> Manifest: ...

    def open(self, manifest: Manifest, key: str) -> BinaryIO: ...

    def put_extra(self, manifest: Manifest, key: str, data: bytes) -> None: ...

    def get_extra(self, manifest: Manifest, key: str) -> bytes | None:
        """The object's bytes, proven (see :mod:`sealing`); None only when absent."""
        ...

    def delete(self, manifest: Manifest) -> None: ...

    def replace_manifest(self, manifest: Manifest) -> None:
        """Rewrite a complete backup's manifest in one atomic step (``backup rekey``)."""
        ...

    def remove_incomplete(self, older_than_seconds: float = 0) -> list[str]: ...

    def remove_abandoned(self) -> list[str]:
        """Incomplete backups whose writer is gone (or that are stale): removed."""
        ...

    def location(self, manifest: Manifest) -> str: ...


PARTIAL = ".partial-"
#: Between a partial backup's ID and its writer's token (``.partial-ID+TOKEN``): never in
#: an ID, so the partials of one ID are told apart from those of a longer one.
WRITER_SEP = "+"


def sign_manifest(manifest: Manifest, keyring: StoreKeyring | None) -> Manifest:
    return manifest.with_signature(keyring.sign(manifest.signed_bytes()) if keyring else None)


def seal_manifest(
    manifest: Manifest, keyring: StoreKeyring | None, cipher: BackupCipher | None
) -> Manifest:
    """What a writer publishes: format 3 with the data key wrapped by the current store
    key when the backup was encrypted, else format 2, signed when there is a key."""
    if cipher is None or keyring is None:
        return sign_manifest(manifest, keyring)
    return replace(
        manifest,
        version=max(manifest.version, ENCRYPTED_VERSION),
        signature=None,
        encryption=wrap(keyring, cipher),
    )


def _read_limited(path: Path, limit: int) -> bytes:
    """Read a regular file that is not a symlink, at most ``limit`` bytes (+1 to tell)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as err:
        raise InvalidInput(f"{path}: cannot be read ({err.strerror})") from err
    # In pieces: ``read(limit + 1)`` would allocate the whole limit (64 MiB) up front.
    parts: list[bytes] = []
    total = 0
    with os.fdopen(fd, "rb") as f:
        while total <= limit and (part := f.read(min(1 << 20, limit + 1 - total))):
            parts.append(part)
            total += len(part)
    return b"".join(parts)


class FilesystemStore:
    """Backups in a directory (a mounted volume). Publication is a directory rename."""

    def __init__(self, root: Path, keyring: StoreKeyring | None = None) -> None:
        self.root = root
        self._keyring = keyring

    @property
    def label(self) -> str:
        return str(self.root)

    @property
    def keyring(self) -> StoreKeyring | None:
        return self._keyring

    def writer(self, environment: str, backup_id: str) -> _FsWriter:
        final = self.root / layout.prefix(environment, backup_id)
        if (final / layout.MANIFEST).exists():
            raise BackupExists(f"backup {backup_id} already exists in {self.root}")
        partial = final.parent / f"{PARTIAL}{backup_id}{WRITER_SEP}{secrets.token_hex(4)}"
        try:
            self.remove_abandoned()
            self._remove_earlier_attempts(final)
            partial.mkdir(parents=True)
            (partial / writers.OWNER).write_bytes(writers.owner_record())
        except OSError as err:  # a root under a file, unwritable, on a read-only volume …
            raise InvalidInput(
                f"backup store {self.root} cannot take a backup: {err.strerror or err}",
                reason="StoreUnusable",
            ) from err
        return _FsWriter(
            partial, final, self._keyring, new_cipher(self._keyring, environment, backup_id)
        )

    @staticmethod
    def _remove_earlier_attempts(final: Path) -> None:
        """A writer of an ID removes what an earlier writer of the same ID left: a
        partial backup (``.partial-ID`` or ``.partial-ID+TOKEN``) or an unpublished
        directory. Whoever gives the ID runs one writer of it at a time (a Job replaces
        its pod only once the previous one has stopped), so these are a stopped
        attempt's, not a running one's."""
        if not final.parent.is_dir():
            return
        mine = f"{PARTIAL}{final.name}"
        for item in final.parent.iterdir():
            earlier = item.name == mine or item.name.startswith(mine + WRITER_SEP)
            if item == final:  # unpublished debris; never a complete backup
                earlier = not (final / layout.MANIFEST).exists()
            if earlier and item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)

    def _inside(self, path: Path) -> bool:
        """True for a real directory or file below the root, reached without symlinks."""
        try:
            path.resolve().relative_to(self.root.resolve())
        except (ValueError, OSError):
            return False
        return not path.is_symlink()

    def _backup_dirs(self, environment: str | None) -> Iterator[tuple[str, Path]]:
        if environment is not None:
            envs = [self.root / layout.environment(environment)]
            if envs[0].exists() and not self._inside(envs[0]):
                raise InvalidInput(
                    f"environment {environment!r} leads outside the store", reason="InvalidPath"
                )
        elif self.root.is_dir():
            envs = sorted(self.root.iterdir())
        else:
            envs = []
        for env in envs:
            if not env.is_dir() or not self._inside(env) or env.name.startswith("."):
                continue
            for item in sorted(env.iterdir()):
                if item.name.startswith(".") or not self._inside(item):
                    continue
                if (item / layout.MANIFEST).is_file():
                    yield env.name, item

    def _load(self, env: str, item: Path) -> Manifest:
        path = item / layout.MANIFEST
        raw = _read_limited(path, MAX_MANIFEST_BYTES)
        return read_manifest(raw, str(path), self._keyring, env, item.name)

    def manifests(self, environment: str | None = None) -> list[Manifest]:
        found = [self._load(env, item) for env, item in self._backup_dirs(environment)]
        return sorted(found, key=lambda m: m.id)

    def manifest(self, backup_id: str, environment: str | None = None) -> Manifest:
        layout.backup_id(backup_id)
        for env, item in self._backup_dirs(environment):
            if item.name == backup_id:
                return self._load(env, item)
        raise BackupNotFound(f"no complete backup {backup_id!r} in {self.root}")

    def _dir(self, manifest: Manifest) -> Path:
        return self.root / layout.prefix(manifest.environment, manifest.id)

    def _path(self, manifest: Manifest, key: str) -> Path:
        path = self._dir(manifest) / layout.object_key(key)
        if path.exists() and not self._inside(path):
            raise InvalidInput(
                f"backup {manifest.id}: {key} leads outside the store", reason="InvalidPath"
            )
        return path

    def open(self, manifest: Manifest, key: str) -> BinaryIO:
        path = self._path(manifest, key)
        try:
            return os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb")
        except FileNotFoundError:
            raise InvalidInput(f"backup {manifest.id}: member {key} is missing") from None
        except OSError as err:
            raise InvalidInput(f"backup {manifest.id}: member {key}: {err.strerror}") from err

    def put_extra(self, manifest: Manifest, key: str, data: bytes) -> None:
        path = self._path(manifest, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(sealing.seal(self._keyring, manifest, key, data))
        os.replace(tmp, path)

    def get_extra(self, manifest: Manifest, key: str) -> bytes | None:
        path = self._path(manifest, key)
        if not path.is_file():
            return None
        with self.open(manifest, key) as f:
            blob = f.read()
        return sealing.unseal(self._keyring, manifest, key, blob)

    def delete(self, manifest: Manifest) -> None:
        shutil.rmtree(self._dir(manifest), ignore_errors=True)

    def replace_manifest(self, manifest: Manifest) -> None:
        """A new file beside the manifest, synced, then renamed over it: a crash leaves
        the old manifest or the new one, never a mix (and at worst a stray temp file)."""
        final = self._path_checked(manifest)
        tmp = final.with_name(f".manifest.json.{os.getpid()}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as f:
                f.write(manifest.stored_json())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            fd = os.open(final.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as err:  # read-only volume, disk full: the old manifest stands
            tmp.unlink(missing_ok=True)
            raise InvalidInput(
                f"backup {manifest.id}: its manifest cannot be replaced in {self.root}: "
                f"{err.strerror or err}",
                reason="StoreUnusable",
            ) from err

    def _path_checked(self, manifest: Manifest) -> Path:
        path = self._dir(manifest) / layout.MANIFEST
        if not path.is_file() or not self._inside(path):
            raise InvalidInput(f"backup {manifest.id}: its manifest is gone or leads elsewhere")
        return path

    def _incomplete(self) -> Iterator[tuple[str, Path]]:
        if not self.root.is_dir():
            return
        for env in self.root.iterdir():
            if not env.is_dir() or env.is_symlink():
                continue
            for item in env.iterdir():
                if not item.is_dir() or item.is_symlink():
                    continue
                if item.name.startswith(PARTIAL) or not (item / layout.MANIFEST).exists():
                    yield f"{env.name}/{item.name}", item

    def remove_incomplete(self, older_than_seconds: float = 0) -> list[str]:
        removed: list[str] = []
        cutoff = time.time() - older_than_seconds
        for name, item in self._incomplete():
            if _newest_mtime(item) <= cutoff:
                shutil.rmtree(item, ignore_errors=True)
                removed.append(name)
        return removed

    def remove_abandoned(self) -> list[str]:
        removed: list[str] = []
        cutoff = time.time() - writers.STALE_AFTER_SECONDS
        for name, item in self._incomplete():
            owner = item / writers.OWNER
            gone = owner.is_file() and writers.owner_gone(owner.read_bytes())
            if gone or _newest_mtime(item) <= cutoff:
                shutil.rmtree(item, ignore_errors=True)
                removed.append(name)
        return removed

    def location(self, manifest: Manifest) -> str:
        return str(self._dir(manifest))


def _newest_mtime(path: Path) -> float:
    """A partial backup is as young as its newest file (a big member takes a while)."""
    newest = path.stat().st_mtime
    for item in path.rglob("*"):
        with contextlib.suppress(OSError):
            newest = max(newest, item.lstat().st_mtime)
    return newest


class _FsWriter:
    def __init__(
        self,
        partial: Path,
        final: Path,
        keyring: StoreKeyring | None,
        cipher: BackupCipher | None,
    ) -> None:
        self.partial = partial
        self.final = final
        self.keyring = keyring
        self._cipher = cipher
        self._flusher: ThreadPoolExecutor | None = None
        self._flushing: list[Future[None]] = []

    @property
    def cipher(self) -> BackupCipher | None:
        return self._cipher

    def member_file(self, key: str) -> Path:
        path = self.partial / layout.object_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def member_done(self, key: str) -> None:
        """Flush the member to disk on a thread of its own while the next member is
        written (a small backup's dozens of fsyncs were a tenth of a migration);
        :meth:`publish` waits for every one, so the manifest never names a member
        that is not on disk, and fails as the fsync failed."""
        if self._flusher is None:
            self._flusher = ThreadPoolExecutor(1, thread_name_prefix="ferry-fsync")
        self._flushing.append(self._flusher.submit(_fsync, self.partial / key))

    def _flushed(self) -> None:
        try:
            for pending in self._flushing:
                pending.result()
        finally:
            if self._flusher is not None:
                self._flusher.shutdown(wait=True, cancel_futures=True)
            self._flusher, self._flushing = None, []

    def publish(self, manifest: Manifest) -> tuple[Manifest, str]:
        self._flushed()
        manifest = seal_manifest(manifest, self.keyring, self._cipher)
        path = self.partial / layout.MANIFEST
        with path.open("w", encoding="utf-8") as f:
            f.write(manifest.stored_json())
            f.flush()
            os.fsync(f.fileno())
        (self.partial / writers.OWNER).unlink(missing_ok=True)
        if (self.final / layout.MANIFEST).exists():
            raise BackupExists(f"backup {manifest.id} already exists in {self.final.parent}")
        try:
            # Atomic: the backup appears complete or not at all; onto a directory that
            # holds anything (another writer's backup of this ID) it fails.
            os.rename(self.partial, self.final)
        except OSError as err:
            if err.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise BackupExists(
                    f"backup {manifest.id} already exists in {self.final.parent}"
                ) from err
            raise
        return manifest, str(self.final)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._flushed()
        shutil.rmtree(self.partial, ignore_errors=True)


def _fsync(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def keyring_from(key_file: str | None) -> StoreKeyring | None:
    """The keyring of ``--store-key-file``, else of ``$FERRY_STORE_KEY_FILE``, else None."""
    path = key_file or os.environ.get(KEY_FILE_ENV)
    return load_keyring_file(path) if path else None


def open_store(spec: str, key_file: str | None = None) -> BackupStore:
    """``s3://bucket/prefix`` (credentials from the standard AWS_* variables) or a path;
    the store key from ``key_file`` or ``$FERRY_STORE_KEY_FILE``."""
    keyring = keyring_from(key_file)
    if spec.startswith("s3://"):
        from controller.backups.s3store import S3Store

        bucket, _, prefix = spec[len("s3://") :].partition("/")
        if not bucket:
            raise InvalidInput(f"store {spec!r}: no bucket")
        if any(part in (".", "..") for part in prefix.split("/")):
            raise InvalidInput(f"store {spec!r}: the prefix may not hold . or .. parts")
        return S3Store(bucket, prefix, keyring=keyring)
    if "://" in spec:
        raise InvalidInput(f"unsupported store {spec!r} (a directory or s3://bucket/prefix)")
    return FilesystemStore(Path(spec), keyring)


@contextmanager
def writing(store: BackupStore, environment: str, backup_id: str) -> Iterator[BackupWriter]:
    """A writer that is aborted (its debris removed) unless the body publishes."""
    writer = store.writer(environment, backup_id)
    try:
        yield writer
    except BaseException:
        writer.abort()
        raise
