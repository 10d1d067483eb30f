"""Client-side encryption of a backup with a key its owner holds (format 3).

Whoever can read a bucket or a volume could otherwise read every row of a backup. With
an encrypting store keyring (``"encrypt": true``), each backup gets its own random
256-bit *data key*; the members, the manifest and the extras (``post/…``) are
encrypted with it, and the data key is stored in the manifest *wrapped* (encrypted) by
a subkey of the store key (HKDF label ``ferry-store/v2/encryption``), under that key's
ID. Rotating the store key re-wraps 60 bytes per backup (``ferry backup rekey``) and
never rewrites a member.

Everything is AES-256-GCM (``cryptography``). An object is a *stream*::

    b"ferry-encrypted/1\\n" | salt (16 random bytes) | chunk 0 | chunk 1 | … | last chunk

- each stream has its own key, HKDF-SHA256(data key, salt, ``ferry-backup/3/stream``):
  the random salt makes every stream's key fresh, even if a name were written twice;
- chunk *i* is the AES-GCM encryption of 64 KiB of plaintext (the last: 0 to 64 KiB)
  with the nonce ``i`` (11 bytes, big-endian) ``|`` ``0x01`` for the last chunk, else
  ``0x00``: a counter under a fresh key, so no nonce is ever used twice with one key;
- every chunk's associated data names the backup's environment, ID and the object
  (``ferry-backup/3\\0<environment>/<backup-id>/<object key>``), so a member cannot be
  moved to another backup or renamed;
- a reader releases a chunk's plaintext only once its tag verifies, and requires the
  stream to end with the chunk marked last, exactly: truncation (also at a chunk
  boundary), reordering, duplication, appended bytes and any bit flip are refused.

Memory stays bounded: a writer holds one chunk, a reader one chunk and one byte.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from controller.backups.keyring import KEY_BYTES, KEY_ID, StoreKeyring
from controller.errors import InvalidInput

ALG = "aes-256-gcm"
MAGIC = b"ferry-encrypted/1\n"
SALT_BYTES = 16
CHUNK = 64 * 1024
TAG_BYTES = 16
NONCE_BYTES = 12
#: A wrapped data key: a random nonce, then the key encrypted with its tag.
WRAPPED_BYTES = NONCE_BYTES + KEY_BYTES + TAG_BYTES
_STREAM_INFO = b"ferry-backup/3/stream"
_WRAP_DOMAIN = b"ferry-backup/3/data-key\x00"
_AAD_DOMAIN = b"ferry-backup/3\x00"
_LAST_COUNTER = 1 << 88


def _refused(what: str, why: str) -> InvalidInput:
    return InvalidInput(f"{what}: {why}", reason="DecryptionFailed")


def _nonce(counter: int, last: bool) -> bytes:
    if counter >= _LAST_COUNTER:
        raise InvalidInput("an encrypted stream is too long")
    return counter.to_bytes(NONCE_BYTES - 1, "big") + (b"\x01" if last else b"\x00")


def _stream_key(data_key: bytes, salt: bytes) -> AESGCM:
    derived = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=_STREAM_INFO)
    return AESGCM(derived.derive(data_key))


class EncryptingWriter:
    """A write-only sink that encrypts into ``raw``; :meth:`finish` writes the last chunk."""

    def __init__(self, raw: BinaryIO, data_key: bytes, aad: bytes) -> None:
        salt = os.urandom(SALT_BYTES)
        self._raw = raw
        self._aead = _stream_key(data_key, salt)
        self._aad = aad
        self._buffer = bytearray()
        self._counter = 0
        self.stored = len(MAGIC) + SALT_BYTES
        raw.write(MAGIC + salt)

    def _emit(self, plaintext: bytes | memoryview, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._counter, last), plaintext, self._aad)
        self._raw.write(sealed)
        self.stored += len(sealed)
        self._counter += 1

    def write(self, data: Any) -> int:
        """Seal every full chunk that more data follows (only :meth:`finish` knows
        which chunk is the last); a large write is sealed in place, not copied."""
        view = memoryview(data).cast("B")
        pos, size = 0, view.nbytes
        while size - pos > CHUNK - len(self._buffer):
            if self._buffer:
                take = CHUNK - len(self._buffer)
                self._buffer += view[pos : pos + take]
                self._emit(bytes(self._buffer), last=False)
                self._buffer.clear()
            else:
                take = CHUNK
                self._emit(view[pos : pos + take], last=False)
            pos += take
        self._buffer += view[pos:]
        return size

    def flush(self) -> None:
        self._raw.flush()  # a partial chunk stays buffered: it is not sealed yet

    def finish(self) -> None:
        self._emit(bytes(self._buffer), last=True)
        self._buffer.clear()
        self._raw.flush()


class DecryptingReader(io.RawIOBase):
    """Authenticated plaintext of a stream; raises :class:`InvalidInput` (naming
    ``what``) on the first chunk that does not verify or when the stream ends early."""

    def __init__(self, raw: BinaryIO, data_key: bytes, aad: bytes, what: str) -> None:
        super().__init__()
        self._raw = raw
        self._what = what
        self._aad = aad
        head = _read_exactly(raw, len(MAGIC) + SALT_BYTES)
        if len(head) < len(MAGIC) + SALT_BYTES or not head.startswith(MAGIC):
            raise _refused(what, "not an encrypted Ferry object (it was replaced or damaged)")
        self._aead = _stream_key(data_key, head[len(MAGIC) :])
        self._counter = 0
        self._plain = b""
        self._offset = 0
        self._ahead = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def _next_chunk(self) -> None:
        block = self._ahead + _read_exactly(self._raw, CHUNK + TAG_BYTES - len(self._ahead))
        self._ahead = self._raw.read(1) if len(block) == CHUNK + TAG_BYTES else b""
        last = not self._ahead
        if len(block) < TAG_BYTES:
            raise _refused(self._what, "truncated (it ends inside a chunk)")
        try:
            self._plain = self._aead.decrypt(_nonce(self._counter, last), block, self._aad)
        except InvalidTag:
            why = (
                "truncated, or changed after Ferry wrote it"
                if last
                else "changed after Ferry wrote it (a chunk fails authentication)"
            )
            raise _refused(self._what, f"{why}, or it belongs to another backup or name") from None
        self._offset = 0
        self._counter += 1
        self._done = last

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._offset >= len(self._plain):
            if self._done:
                return 0
            self._next_chunk()
        n = min(len(view), len(self._plain) - self._offset)
        view[:n] = self._plain[self._offset : self._offset + n]
        self._offset += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def _read_exactly(raw: BinaryIO, size: int) -> bytes:
    parts = []
    while size > 0:
        data = raw.read(size)
        if not data:
            break
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


@dataclass(frozen=True)
class BackupCipher:
    """A backup's data key with the names every stream of the backup is bound to."""

    environment: str
    backup_id: str
    data_key: bytes = field(repr=False)

    def aad(self, name: str) -> bytes:
        return _AAD_DOMAIN + f"{self.environment}/{self.backup_id}/{name}".encode()

    def writer(self, raw: BinaryIO, name: str) -> EncryptingWriter:
        return EncryptingWriter(raw, self.data_key, self.aad(name))

    def reader(self, raw: BinaryIO, name: str, what: str) -> io.BufferedReader:
        return io.BufferedReader(DecryptingReader(raw, self.data_key, self.aad(name), what))

    def seal(self, name: str, payload: bytes) -> bytes:
        out = io.BytesIO()
        writer = self.writer(out, name)
        writer.write(payload)
        writer.finish()
        return out.getvalue()

    def open(self, name: str, blob: bytes, what: str) -> bytes:
        with self.reader(io.BytesIO(blob), name, what) as reader:
            return reader.read()


def new_cipher(
    keyring: StoreKeyring | None, environment: str, backup_id: str
) -> BackupCipher | None:
    """A fresh data key for a new backup when the store's keyring encrypts, else None."""
    if keyring is None or not keyring.encrypt:
        return None
    return BackupCipher(environment, backup_id, os.urandom(KEY_BYTES))


@dataclass(frozen=True)
class Encryption:
    """What a format 3 manifest records: the store key's ID and the wrapped data key.
    ``cipher`` (the data key) is known once unwrapped and is never written or shown."""

    key_id: str
    wrapped: bytes = field(repr=False)
    cipher: BackupCipher = field(repr=False, compare=False)
    alg: str = ALG

    def to_dict(self) -> dict[str, str]:
        return {
            "alg": self.alg,
            "key_id": self.key_id,
            "wrapped_key": base64.b64encode(self.wrapped).decode(),
        }


def _wrap_aad(environment: str, backup_id: str, key_id: str) -> bytes:
    return _WRAP_DOMAIN + f"{environment}/{backup_id}\x00{key_id}".encode()


def wrap(keyring: StoreKeyring, cipher: BackupCipher) -> Encryption:
    """The data key wrapped by the keyring's current key."""
    key_id = keyring.current
    nonce = os.urandom(NONCE_BYTES)
    aad = _wrap_aad(cipher.environment, cipher.backup_id, key_id)
    sealed = AESGCM(keyring.encryption_key(key_id)).encrypt(nonce, cipher.data_key, aad)
    return Encryption(key_id, nonce + sealed, cipher)


def parse_encryption(data: object, where: str) -> tuple[str, bytes]:
    """``(key ID, wrapped key)`` of a manifest's ``encryption`` field, shape checked."""
    ok = isinstance(data, dict) and set(data) == {"alg", "key_id", "wrapped_key"}
    if not ok or not isinstance(data, dict) or data["alg"] != ALG:
        raise _refused(where, "malformed or unknown encryption header")
    key_id, text = data["key_id"], data["wrapped_key"]
    if not isinstance(key_id, str) or not KEY_ID.match(key_id) or not isinstance(text, str):
        raise _refused(where, "malformed encryption header")
    try:
        wrapped = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        wrapped = b""
    if len(wrapped) != WRAPPED_BYTES:
        raise _refused(where, "the wrapped data key is malformed (it was changed)")
    return key_id, wrapped


def unwrap(
    keyring: StoreKeyring, key_id: str, wrapped: bytes, environment: str, backup_id: str, what: str
) -> Encryption:
    """The backup's cipher, once the wrapped data key opens with key ``key_id``."""
    if key_id not in keyring.keys:
        raise InvalidInput(
            f"{what} is encrypted with store key {key_id!r}, which the configured keyring "
            "does not hold",
            reason="UnknownStoreKey",
        )
    aad = _wrap_aad(environment, backup_id, key_id)
    try:
        data_key = AESGCM(keyring.encryption_key(key_id)).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad
        )
    except InvalidTag:
        raise _refused(
            what,
            f"the wrapped data key does not open with store key {key_id!r}: it was changed, "
            "or the key under that ID is not the one that wrote the backup",
        ) from None
    return Encryption(key_id, wrapped, BackupCipher(environment, backup_id, data_key))
