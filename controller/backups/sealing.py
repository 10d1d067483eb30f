"""Signed envelopes for the objects a store keeps beside a backup (``post/…``).

Rollback trusts a post-migration state to tell which rows were edited after a
migration; whoever can write the store could otherwise rewrite it. Each extra object
is stored as one envelope (one object, so it is replaced atomically)::

    ferry-sealed-object/1\\n
    {"signature": {"alg": "hmac-sha256", "key_id": "…", "mac": "…"} | null}\\n
    <payload bytes>

The MAC covers the backup's environment, ID and manifest checksum, the object's key
and the payload, so an envelope cannot be moved to another key or backup. Objects
written before this format (raw payload, no envelope) read as unsigned.

An encrypted backup's (format 3) extras are ``ferry-sealed-object/2\n`` and the payload
encrypted with the backup's data key (:mod:`controller.backups.crypto`), bound to the
same names; under such a backup nothing else is accepted.
"""

from __future__ import annotations

import json

from controller.backups.keyring import Signature, StoreKeyring
from controller.backups.manifest import Manifest
from controller.errors import InvalidInput

MAGIC = b"ferry-sealed-object/1\n"
#: An encrypted backup's extras (format 3): the payload encrypted with its data key.
ENCRYPTED_MAGIC = b"ferry-sealed-object/2\n"
_EXTRA_DOMAIN = b"ferry-backup-extra\x00"
_MAX_HEADER = 4096


def _bound(manifest: Manifest, key: str, payload: bytes) -> bytes:
    where = f"{manifest.environment}/{manifest.id}/{key}\x00{manifest.checksum}\x00"
    return _EXTRA_DOMAIN + where.encode() + payload


def _name(manifest: Manifest, key: str) -> str:
    return f"{key}\x00{manifest.checksum}"


def seal(keyring: StoreKeyring | None, manifest: Manifest, key: str, payload: bytes) -> bytes:
    if manifest.encryption:
        return ENCRYPTED_MAGIC + manifest.encryption.cipher.seal(_name(manifest, key), payload)
    signature = keyring.sign(_bound(manifest, key, payload)) if keyring else None
    header = json.dumps({"signature": signature.to_dict() if signature else None})
    return MAGIC + header.encode() + b"\n" + payload


def _split(blob: bytes, what: str) -> tuple[Signature | None, bytes]:
    end = blob.find(b"\n", len(MAGIC), len(MAGIC) + _MAX_HEADER)
    if end < 0:
        raise InvalidInput(f"{what}: malformed envelope", reason="SignatureMalformed")
    try:
        header = json.loads(blob[len(MAGIC) : end].decode("utf-8"))
    except (ValueError, RecursionError):
        raise InvalidInput(f"{what}: malformed envelope", reason="SignatureMalformed") from None
    if not isinstance(header, dict) or set(header) != {"signature"}:
        raise InvalidInput(f"{what}: malformed envelope", reason="SignatureMalformed")
    raw = header["signature"]
    signature = None if raw is None else Signature.from_dict(raw, what)
    return signature, blob[end + 1 :]


def unseal(keyring: StoreKeyring | None, manifest: Manifest, key: str, blob: bytes) -> bytes:
    """The payload, once proven: a signed backup's extras must be signed by its ring."""
    what = f"backup {manifest.id}: object {key}"
    if manifest.encryption:
        if not blob.startswith(ENCRYPTED_MAGIC):
            raise InvalidInput(
                f"{what} is not encrypted, but its backup is: it was replaced by someone "
                "without the store key",
                reason="DecryptionFailed",
            )
        body = blob[len(ENCRYPTED_MAGIC) :]
        return manifest.encryption.cipher.open(_name(manifest, key), body, what)
    signature, payload = _split(blob, what) if blob.startswith(MAGIC) else (None, blob)
    if signature is None:
        if manifest.signature is not None:
            raise InvalidInput(
                f"{what} is not signed, but its backup is: it was replaced by someone "
                "without the store key",
                reason="SignatureMissing",
            )
        return payload
    if keyring is None:
        raise InvalidInput(
            f"{what} is signed with store key {signature.key_id!r}; configure the store "
            "key (--store-key-file, FERRY_STORE_KEY_FILE) to read it",
            reason="StoreKeyRequired",
        )
    keyring.verify(_bound(manifest, key, payload), signature, what)
    return payload
