"""NocoBase's encryption of secret environment variables, reproduced exactly.

NocoBase (``AesEncryptor`` in ``@nocobase/server``) stores a secret as
``hex(iv) + hex(ciphertext)`` of AES-256-CBC with PKCS#7 padding, a random 16-byte IV
and the application's 32-byte key. Ferry writes secrets the same way, with the key
taken from a Kubernetes Secret, so the application reads them as its own. The IV is a
parameter: callers pass fresh random bytes; tests pass fixed ones.
"""

from __future__ import annotations

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
