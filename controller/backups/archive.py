"""Write and read a backup's table members: Arrow IPC streams with zstd compression.

Each member is streamed batch by batch (memory stays bounded whatever the table size)
through a hashing sink, so its sha256 is known when it is closed. In an encrypted backup
(format 3) the sink encrypts as it goes (:mod:`controller.backups.crypto`); the sha256
and size in the manifest are then of the Arrow stream, i.e. the plaintext.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Generator, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, Protocol

import pyarrow as pa
from pyarrow import ipc

from controller.backups.arrow_codec import arrow_schema, iter_rows, record_batch
from controller.backups.manifest import Manifest, Member
from controller.backups.store import BackupStore, BackupWriter
from controller.engine.model import TableSchema
from controller.engine.source import Batch
from controller.errors import InvalidInput

READ_CHUNK = 1 << 20
#: Members verified at the same time.
VERIFY_THREADS = 2
_OPTIONS = ipc.IpcWriteOptions(compression="zstd")


class _Sink(Protocol):
    def write(self, data: Any, /) -> int: ...

    def flush(self) -> None: ...


class HashingFile:
    def __init__(self, raw: _Sink) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.hash.update(view)
        self.size += view.nbytes
        return self.raw.write(view)

    def flush(self) -> None:
        self.raw.flush()

    def close(self) -> None:
        self.raw.flush()

    @property
    def closed(self) -> bool:
        return False

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False


def write_member(
    writer: BackupWriter,
    key: str,
    table: TableSchema,
    dialect: str,
    batches: Iterable[Batch] | Iterable[pa.RecordBatch],
    sqlite_classes: dict[str, set[str]] | None = None,
) -> Member:
    """``batches``: lists of raw rows, or record batches already of the member's schema
    (:func:`member_schema`; a database's fast path reads them so)."""
    schema = arrow_schema(table, dialect, sqlite_classes)
    path = writer.member_file(key)
    rows = 0
    cipher = writer.cipher
    with path.open("wb") as raw:
        encrypted = cipher.writer(raw, key) if cipher else None
        sink = HashingFile(encrypted or raw)
        with ipc.new_stream(pa.PythonFile(sink, mode="w"), schema, options=_OPTIONS) as out:
            for batch in batches:
                if isinstance(batch, pa.RecordBatch):
                    if batch.num_rows:
                        out.write_batch(batch)  # refused unless of ``schema`` exactly
                        rows += batch.num_rows
                elif batch:
                    out.write_batch(record_batch(schema, batch))
                    rows += len(batch)
        if encrypted:
            encrypted.finish()
    writer.member_done(key)
    return Member(
        table=table.name,
        key=key,
        rows=rows,
        bytes=sink.size,
        sha256=sink.hash.hexdigest(),
        schema=table.to_dict(),
        sqlite_classes={k: sorted(v) for k, v in (sqlite_classes or {}).items()},
    )


def open_plain(store: BackupStore, manifest: Manifest, key: str, what: str) -> BinaryIO:
    """A member's bytes as they were written: decrypted, chunk by chunk authenticated,
    in an encrypted backup (a failure names ``what``)."""
    raw = store.open(manifest, key)
    if manifest.encryption is None:
        return raw
    try:
        return manifest.encryption.cipher.reader(raw, key, what)
    except BaseException:
        raw.close()
        raise


def _open(store: BackupStore, manifest: Manifest, member: Member) -> BinaryIO:
    what = f"backup {manifest.id}: member {member.key} ({member.table})"
    return open_plain(store, manifest, member.key, what)


def _checked_bytes(store: BackupStore, manifest: Manifest, member: Member) -> BinaryIO:
    """Open a member after proving its checksum (one streaming pass)."""
    h = hashlib.sha256()
    size = 0
    with _open(store, manifest, member) as f:
        while chunk := f.read(READ_CHUNK):
            h.update(chunk)
            size += len(chunk)
    if size != member.bytes or h.hexdigest() != member.sha256:
        raise InvalidInput(
            f"backup {manifest.id}: member {member.key} ({member.table}) is corrupted or "
            f"truncated: {size} bytes, sha256 {h.hexdigest()[:12]}…, expected {member.bytes} "
            f"bytes, sha256 {member.sha256[:12]}…"
        )
    return _open(store, manifest, member)


def member_schema(member: Member, dialect: str) -> pa.Schema:
    """The Arrow schema of a member's record batches."""
    classes = {k: set(v) for k, v in member.sqlite_classes.items()}
    return arrow_schema(member.table_schema, dialect, classes)


def read_record_batches(
    store: BackupStore, manifest: Manifest, member: Member
) -> Generator[pa.RecordBatch]:
    """A member's record batches; the checksum is verified before the first one."""
    f = _checked_bytes(store, manifest, member)
    try:
        try:
            reader = ipc.open_stream(f)
        except pa.ArrowInvalid as err:
            raise InvalidInput(
                f"backup {manifest.id}: member {member.key} cannot be decoded: {err}"
            ) from err
        yield from reader
    finally:
        f.close()


def read_member(store: BackupStore, manifest: Manifest, member: Member) -> Iterator[Batch]:
    """Rows of a member as raw values; the checksum is verified before the first row."""
    batches = read_record_batches(store, manifest, member)
    yield from iter_rows(batches, member.table_schema, manifest.dialect)


class ReadAhead:
    """A member's record batches (:func:`read_record_batches`) whose checksum pass and
    first batch are read in a thread from construction on: a restore starts the next
    member's while the server takes the current one and builds its indexes, so the
    next COPY does not begin by waiting for the store. One batch is held ahead."""

    def __init__(self, store: BackupStore, manifest: Manifest, member: Member) -> None:
        self.member, self._dialect = member, manifest.dialect
        self._batches = read_record_batches(store, manifest, member)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="ferry-ahead")
        self._first = self._pool.submit(next, self._batches, None)
        self._pool.shutdown(wait=False)

    def batches(self) -> Iterator[pa.RecordBatch]:
        first = self._first.result()  # a damaged member raises here, as it would unread
        if first is None:
            return
        yield first
        yield from self._batches

    def rows(self) -> Iterator[Batch]:
        """As :func:`read_member`."""
        yield from iter_rows(self.batches(), self.member.table_schema, self._dialect)

    def close(self) -> None:
        """Wait for the read ahead (a generator runs in one thread at a time), then close
        the member."""
        self._first.exception()
        self._batches.close()


def _member_problems(store: BackupStore, manifest: Manifest, member: Member) -> list[str]:
    try:
        rows = 0
        expected = member_schema(member, manifest.dialect)
        for batch in read_record_batches(store, manifest, member):
            if not batch.schema.equals(expected):
                raise InvalidInput(
                    f"member {member.key}: Arrow schema {batch.schema} does not match "
                    f"its table's {expected}"
                )
            batch.validate(full=True)  # every offset, length and UTF-8 sequence
            rows += batch.num_rows
    except (InvalidInput, pa.ArrowException) as err:
        return [str(err)]
    if rows != member.rows:
        return [f"member {member.key}: {rows} rows, the manifest says {member.rows}"]
    return []


def verify_backup(
    store: BackupStore, manifest: Manifest, tables: Collection[str] | None = None
) -> list[str]:
    """Decode every member (of ``tables``, if given) and check every checksum and row
    count; return the problems, in member order.

    Members are checked ``VERIFY_THREADS`` at a time: hashing, decompressing and
    validating release the GIL, and nothing else runs while a restore proves its
    backup. Memory is that many members' batches at once."""
    members = [m for m in manifest.members if tables is None or m.table in tables]
    with ThreadPoolExecutor(VERIFY_THREADS, thread_name_prefix="ferry-verify") as pool:
        found = pool.map(lambda m: _member_problems(store, manifest, m), members)
        return [problem for problems in found for problem in problems]
