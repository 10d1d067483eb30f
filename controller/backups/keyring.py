"""The store key: who may write a backup store's manifests and post-migration states.

Anyone with write access to a bucket or volume can edit what a restore or a rollback
later trusts. A store *keyring* lets Ferry prove that what it reads is what it wrote:
every manifest and every extra object (``post/…``) carries an HMAC-SHA256 made with
a key derived from the store key, and the ID of that key.

The configuration serves signing *and* the encryption of archives
(:mod:`controller.backups.crypto`, with ``"encrypt": true``):

- a keyring maps key IDs to 32-byte keys and names the ``current`` one (new writes);
  older keys stay readable, so keys can be rotated without rewriting backups;
- each purpose gets its own subkey (HKDF-SHA256 with a purpose label), so encrypting
  with the same store key never reuses the signing key;
- the key ID is recorded beside every signature and every wrapped data key, so a
  reader knows which key to use and refuses an unknown one by name.

Keyring text (a file for the CLI, a Secret's value for the operator), either JSON::

    {"current": "2026-01", "keys": {"2026-01": "<base64 of 32 bytes>", "2025-06": "…"}}

with, optionally, ``"encrypt": true`` (new backups are encrypted, format 3); or a
single key (base64 or hex of 32 bytes; it signs, never encrypts), whose ID is then
``sha256:<first 12 hex>`` of the key, stable for as long as the key is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from controller.errors import InvalidInput

ALGORITHM = "hmac-sha256"
KEY_BYTES = 32
MAX_KEYRING_BYTES = 64 * 1024
KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,63}$")
_KEYRING_FIELDS = frozenset({"current", "keys", "encrypt"})
_MAC = re.compile(r"^[0-9a-f]{64}$")
#: HKDF purpose labels: one subkey per use of the store key.
SIGNING = b"ferry-store/v2/signing"
ENCRYPTION = b"ferry-store/v2/encryption"


@dataclass(frozen=True)
class Signature:
    """What a signed object records: the algorithm, the key's ID and the MAC (hex)."""

    key_id: str
    mac: str
    alg: str = ALGORITHM

    def to_dict(self) -> dict[str, str]:
        return {"alg": self.alg, "key_id": self.key_id, "mac": self.mac}

    @staticmethod
    def from_dict(data: object, where: str) -> Signature:
        if not isinstance(data, dict) or set(data) != {"alg", "key_id", "mac"}:
            raise InvalidInput(f"{where}: malformed signature", reason="SignatureMalformed")
        alg, key_id, mac = data["alg"], data["key_id"], data["mac"]
        if alg != ALGORITHM:
            raise InvalidInput(
                f"{where}: unknown signature algorithm {alg!r}", reason="SignatureMalformed"
            )
        if not isinstance(key_id, str) or not KEY_ID.match(key_id):
            raise InvalidInput(f"{where}: malformed signature key ID", reason="SignatureMalformed")
        if not isinstance(mac, str) or not _MAC.match(mac):
            raise InvalidInput(f"{where}: malformed signature MAC", reason="SignatureMalformed")
        return Signature(key_id, mac)


def _derive(key: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=purpose).derive(key)


@dataclass(frozen=True)
class StoreKeyring:
    """Key IDs → 32-byte keys; ``current`` signs new objects and wraps new data keys."""

    keys: Mapping[str, bytes] = field(repr=False)  # never in a log or a traceback
    current: str
    #: New backups are encrypted (format 3) with a data key wrapped by ``current``.
    encrypt: bool = False

    def __post_init__(self) -> None:
        if self.current not in self.keys:
            raise InvalidInput(f"store keyring: current key {self.current!r} is not in it")

    def _mac(self, key_id: str, data: bytes) -> str:
        subkey = _derive(self.keys[key_id], SIGNING)
        return hmac.new(subkey, data, hashlib.sha256).hexdigest()

    def encryption_key(self, key_id: str) -> bytes:
        """The subkey that wraps backups' data keys (never the signing subkey)."""
        return _derive(self.keys[key_id], ENCRYPTION)

    def sign(self, data: bytes) -> Signature:
        return Signature(self.current, self._mac(self.current, data))

    def verify(self, data: bytes, signature: Signature, what: str) -> None:
        """Raise (naming ``what``) unless ``signature`` was made by a key of this ring."""
        if signature.key_id not in self.keys:
            raise InvalidInput(
                f"{what} is signed with store key {signature.key_id!r}, which the "
                "configured keyring does not hold",
                reason="UnknownStoreKey",
            )
        expected = self._mac(signature.key_id, data)
        if not hmac.compare_digest(expected, signature.mac):
            raise InvalidInput(
                f"{what}: signature mismatch (store key {signature.key_id!r}): it was "
                "changed after Ferry wrote it, or signed with another key",
                reason="SignatureMismatch",
            )


def _decode_key(text: object, where: str) -> bytes:
    if not isinstance(text, str):
        raise InvalidInput(f"{where}: a key must be a string (base64 or hex of 32 bytes)")
    raw = text.strip()
    key: bytes | None = None
    if re.fullmatch(r"[0-9a-fA-F]{64}", raw):
        key = bytes.fromhex(raw)
    else:
        try:
            key = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            key = None
    if key is None or len(key) != KEY_BYTES:
        raise InvalidInput(f"{where}: a key must be 32 bytes, as base64 or hex")
    return key


def parse_keyring(text: str, where: str) -> StoreKeyring:
    """A keyring from its text (JSON keyring, or one key); never echoes key material."""
    if len(text) > MAX_KEYRING_BYTES:
        raise InvalidInput(f"{where}: the store keyring is too large")
    stripped = text.strip()
    if not stripped.startswith("{"):
        key = _decode_key(stripped, where)
        key_id = "sha256:" + hashlib.sha256(key).hexdigest()[:12]
        return StoreKeyring({key_id: key}, key_id)
    try:
        data = json.loads(stripped)
    except (ValueError, RecursionError):
        raise InvalidInput(f"{where}: the store keyring is not valid JSON") from None
    if not isinstance(data, dict) or not {"current", "keys"} <= set(data) <= _KEYRING_FIELDS:
        raise InvalidInput(
            f"{where}: a store keyring has the fields current and keys, and may have encrypt"
        )
    encrypt = data.get("encrypt", False)
    if not isinstance(encrypt, bool):
        raise InvalidInput(f"{where}: encrypt must be true or false")
    keys_in = data["keys"]
    if not isinstance(keys_in, dict) or not keys_in:
        raise InvalidInput(f"{where}: keys must map key IDs to keys")
    keys: dict[str, bytes] = {}
    for key_id, value in keys_in.items():
        if not KEY_ID.match(key_id):
            raise InvalidInput(f"{where}: invalid key ID {key_id[:64]!r}")
        keys[key_id] = _decode_key(value, f"{where}: key {key_id}")
    current = data["current"]
    if not isinstance(current, str) or current not in keys:
        raise InvalidInput(f"{where}: current must name one of the keys")
    return StoreKeyring(keys, current, encrypt)


def load_keyring_file(path: str) -> StoreKeyring:
    """Read a keyring file (``--store-key-file``, ``FERRY_STORE_KEY_FILE``)."""
    where = f"store key file {path}"
    try:
        with Path(path).open("rb") as f:
            data = f.read(MAX_KEYRING_BYTES + 1)
    except OSError as err:
        raise InvalidInput(f"{where}: cannot be read ({err.strerror or err})") from err
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{where}: not UTF-8 text") from None
    return parse_keyring(text, where)
