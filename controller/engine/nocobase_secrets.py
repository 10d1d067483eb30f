"""NocoBase's encryption of secret environment variables, reproduced exactly.

NocoBase (``AesEncryptor`` in ``@nocobase/server``) stores a secret as
``hex(iv) + hex(ciphertext)`` of AES-256-CBC with PKCS#7 padding, a random 16-byte IV
and the application's 32-byte key. Ferry writes secrets the same way, with the key
taken from a Kubernetes Secret, so the application reads them as its own. The IV is a
parameter: callers pass fresh random bytes; tests pass fixed ones.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from controller.errors import InvalidInput

KEY_BYTES = 32
IV_BYTES = 16


def parse_key(text: str) -> bytes:
    """The key as NocoBase accepts it in ``APP_AES_SECRET_KEY``: 64 hex digits."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise InvalidInput("the NocoBase encryption key must be 64 hex digits") from None
    if len(key) != KEY_BYTES:
        raise InvalidInput(
            f"the NocoBase encryption key must be {KEY_BYTES} bytes "
            f"(64 hex digits), got {len(key)} bytes"
        )
    return key


def encrypt(key: bytes, plaintext: str, iv: bytes) -> str:
    if len(iv) != IV_BYTES:
        raise ValueError("iv must be 16 bytes")
    padder = padding.PKCS7(128).padder()
    data = padder.update(plaintext.encode("utf-8")) + padder.finalize()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return iv.hex() + (encryptor.update(data) + encryptor.finalize()).hex()


def decrypt(key: bytes, stored: str) -> str | None:
    """The plaintext, or None when ``stored`` was not encrypted with ``key``."""
    try:
        iv, body = bytes.fromhex(stored[:32]), bytes.fromhex(stored[32:])
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        data = decryptor.update(body) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return (unpadder.update(data) + unpadder.finalize()).decode("utf-8")
    except ValueError:
        return None


def parse_key_file(raw: bytes) -> bytes:
    """The key from a file: NocoBase's ``aes_key.dat`` (32 raw bytes, which is how
    NocoBase reads it, whatever they are) or ``APP_AES_SECRET_KEY``'s form (64 hex
    digits, surrounding whitespace allowed)."""
    if len(raw) == KEY_BYTES:
        return raw
    text = raw.decode("ascii", errors="replace").strip()
    if re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    raise InvalidInput(
        f"the key file holds {len(raw)} bytes that are neither NocoBase's aes_key.dat "
        f"({KEY_BYTES} bytes) nor 64 hex digits (APP_AES_SECRET_KEY)"
    )


def undecryptable(key: bytes, secrets: Iterable[tuple[str, str | None]]) -> list[str]:
    """Names of the secret values (``name, stored``) that ``key`` does not decrypt, as
    NocoBase would find them: it drops such a variable at start and logs ``bad
    decrypt``. An empty value is NocoBase's own "not set" and is not counted."""
    return sorted(name for name, stored in secrets if stored and decrypt(key, stored) is None)
