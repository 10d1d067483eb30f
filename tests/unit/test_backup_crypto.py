"""The chunked AEAD framing of encrypted backups (format 3), attacked byte by byte.

Every stream is sealed for one (environment, backup, object name) with one data key;
these tests prove what a reader refuses: truncation anywhere (also exactly at a chunk
boundary), chunks reordered, duplicated or dropped, bytes appended, any bit flipped,
another data key, and a stream moved to another name, backup or environment. They
also prove the wrapped data key is bound to its key ID and backup, and that no key
material shows in a repr.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.backups.crypto import (
    CHUNK,
    MAGIC,
    SALT_BYTES,
    TAG_BYTES,
    WRAPPED_BYTES,
    BackupCipher,
    DecryptingReader,
    new_cipher,
    parse_encryption,
    unwrap,
    wrap,
)
from controller.backups.keyring import SIGNING, StoreKeyring, _derive, parse_keyring
from controller.errors import InvalidInput

HEADER = len(MAGIC) + SALT_BYTES
BLOCK = CHUNK + TAG_BYTES
KEY = bytes(range(32))


def _cipher(key: bytes = KEY, env: str = "prod", backup: str = "b1") -> BackupCipher:
    return BackupCipher(env, backup, key)


def _chunks(blob: bytes) -> list[bytes]:
    body = blob[HEADER:]
    return [body[i : i + BLOCK] for i in range(0, len(body), BLOCK)]


def _refused(
    blob: bytes, cipher: BackupCipher | None = None, name: str = "tables/0000-a.arrow"
) -> str:
    with pytest.raises(InvalidInput) as caught:
        (cipher or _cipher()).open(name, blob, f"member {name}")
    assert caught.value.reason == "DecryptionFailed"
    assert name in caught.value.message  # refused by name
    return caught.value.message


SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 7]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_at_every_chunk_boundary(size: int) -> None:
    data = os.urandom(size)
    blob = _cipher().seal("tables/0000-a.arrow", data)
    assert blob.startswith(MAGIC)
    # one chunk per 64 KiB, the last one possibly partial (or empty for no data)
    assert len(blob) == HEADER + size + TAG_BYTES * max(1, -(-size // CHUNK))
    assert _cipher().open("tables/0000-a.arrow", blob, "m") == data


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=3 * CHUNK + 100), st.lists(st.integers(1, CHUNK + 3), min_size=1))
def test_round_trip_whatever_the_write_sizes(data: bytes, sizes: list[int]) -> None:
    """The Arrow writer writes pieces of any size; the reader is read in any size."""
    out = io.BytesIO()
    writer = _cipher().writer(out, "k")
    pos, i = 0, 0
    while pos < len(data):
        step = sizes[i % len(sizes)]
        writer.write(data[pos : pos + step])
        pos, i = pos + step, i + 1
    writer.finish()
    reader = _cipher().reader(io.BytesIO(out.getvalue()), "k", "m")
    got = bytearray()
    while piece := reader.read(sizes[0]):
        got += piece
    assert bytes(got) == data


def _three_chunk_blob() -> bytes:
    return _cipher().seal("tables/0000-a.arrow", os.urandom(2 * CHUNK + 500))


def _truncate_at_boundary(blob: bytes) -> bytes:
    return blob[: HEADER + BLOCK]  # whole chunks, but the last one is missing


def _truncate_mid_chunk(blob: bytes) -> bytes:
    return blob[: HEADER + BLOCK + 100]


def _truncate_in_tag(blob: bytes) -> bytes:
    return blob[:-1]


def _header_only(blob: bytes) -> bytes:
    return blob[:HEADER]


def _nothing(blob: bytes) -> bytes:
    return b""


def _swap_chunks(blob: bytes) -> bytes:
    c = _chunks(blob)
    return blob[:HEADER] + c[1] + c[0] + c[2]


def _duplicate_chunk(blob: bytes) -> bytes:
    c = _chunks(blob)
    return blob[:HEADER] + c[0] + c[0] + c[1] + c[2]


def _drop_middle_chunk(blob: bytes) -> bytes:
    c = _chunks(blob)
    return blob[:HEADER] + c[0] + c[2]


def _append_bytes(blob: bytes) -> bytes:
    return blob + b"\x00"


def _append_chunk(blob: bytes) -> bytes:
    return blob + _chunks(blob)[0]


def _other_salt(blob: bytes) -> bytes:
    return MAGIC + os.urandom(SALT_BYTES) + blob[HEADER:]


def _not_encrypted(blob: bytes) -> bytes:
    return b"ARROW1" + blob[6:]


STRUCTURAL: list[Callable[[bytes], bytes]] = [
    _truncate_at_boundary,
    _truncate_mid_chunk,
    _truncate_in_tag,
    _header_only,
    _nothing,
    _swap_chunks,
    _duplicate_chunk,
    _drop_middle_chunk,
    _append_bytes,
    _append_chunk,
    _other_salt,
    _not_encrypted,
]


@pytest.mark.parametrize("damage", STRUCTURAL, ids=lambda f: f.__name__.strip("_"))
def test_damaged_stream_refused(damage: Callable[[bytes], bytes]) -> None:
    blob = _three_chunk_blob()
    assert _cipher().open("tables/0000-a.arrow", blob, "m")  # intact: opens
    _refused(damage(blob))


def test_truncation_at_a_boundary_is_reported_as_truncation() -> None:
    message = _refused(_truncate_at_boundary(_three_chunk_blob()))
    assert "truncated" in message


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_bit_flip_refused(data: st.DataObject) -> None:
    blob = _cipher().seal("tables/0000-a.arrow", b"x" * (CHUNK + 300))
    # every byte of the object: magic, salt, ciphertext and tags of both chunks
    position = data.draw(st.integers(0, len(blob) - 1))
    bit = data.draw(st.integers(0, 7))
    flipped = bytearray(blob)
    flipped[position] ^= 1 << bit
    _refused(bytes(flipped))


@pytest.mark.parametrize(
    "opener",
    [
        pytest.param(_cipher(key=bytes(32)), id="other-data-key"),
        pytest.param(_cipher(backup="b2"), id="other-backup"),
        pytest.param(_cipher(env="staging"), id="other-environment"),
    ],
)
def test_wrong_key_or_other_backup_refused(opener: BackupCipher) -> None:
    _refused(_three_chunk_blob(), opener)


def test_member_renamed_or_swapped_refused() -> None:
    """Two members of one backup swapped: each is bound to its own name."""
    a = _cipher().seal("tables/0000-a.arrow", b"rows of a")
    b = _cipher().seal("tables/0001-b.arrow", b"rows of b")
    _refused(b, name="tables/0000-a.arrow")
    _refused(a, name="tables/0001-b.arrow")


def test_no_stream_key_is_reused() -> None:
    """The same payload sealed twice under one data key and name: a fresh salt, so a
    fresh stream key, so no (key, nonce) pair ever repeats."""
    one = _cipher().seal("k", b"same")
    two = _cipher().seal("k", b"same")
    assert one[len(MAGIC) : HEADER] != two[len(MAGIC) : HEADER]
    assert one[HEADER:] != two[HEADER:]


class _Recording(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.largest = 0

    def read(self, size: int | None = -1) -> bytes:
        self.largest = max(self.largest, size if size is not None and size >= 0 else 1 << 62)
        return super().read(size)


def test_reader_holds_one_chunk_at_a_time() -> None:
    blob = _cipher().seal("k", os.urandom(20 * CHUNK))
    raw = _Recording(blob)
    reader = DecryptingReader(raw, KEY, _cipher().aad("k"), "m")
    total = 0
    while piece := reader.read(4096):
        total += len(piece)
    assert total == 20 * CHUNK
    assert raw.largest <= BLOCK  # never reads the object whole


def _ring(**keys: bytes) -> StoreKeyring:
    return StoreKeyring(dict(keys), next(iter(keys)), encrypt=True)


def test_wrapped_key_opens_with_its_key_only() -> None:
    cipher = _cipher()
    k1, k2 = os.urandom(32), os.urandom(32)
    enc = wrap(_ring(k1=k1, k2=k2), cipher)
    assert enc.key_id == "k1" and len(enc.wrapped) == WRAPPED_BYTES
    opened = unwrap(_ring(k2=k2, k1=k1), "k1", enc.wrapped, "prod", "b1", "backup b1")
    assert opened.cipher.data_key == cipher.data_key

    cases: list[tuple[StoreKeyring, str, bytes, str, str, str]] = [
        (_ring(k2=k2), "k1", enc.wrapped, "prod", "b1", "UnknownStoreKey"),
        (_ring(k1=k2), "k1", enc.wrapped, "prod", "b1", "DecryptionFailed"),  # same ID, other key
        (_ring(k1=k1, k2=k2), "k2", enc.wrapped, "prod", "b1", "DecryptionFailed"),  # relabelled
        (_ring(k1=k1), "k1", enc.wrapped, "prod", "b2", "DecryptionFailed"),  # moved backup
        (_ring(k1=k1), "k1", enc.wrapped, "dev", "b1", "DecryptionFailed"),  # moved env
        (_ring(k1=k1), "k1", bytes([enc.wrapped[0] ^ 1]) + enc.wrapped[1:], "prod", "b1",
         "DecryptionFailed"),
        (_ring(k1=k1), "k1", enc.wrapped[:-1] + bytes([enc.wrapped[-1] ^ 1]), "prod", "b1",
         "DecryptionFailed"),
    ]  # fmt: skip
    for ring, key_id, wrapped, env, backup, reason in cases:
        with pytest.raises(InvalidInput) as caught:
            unwrap(ring, key_id, wrapped, env, backup, "backup b1")
        assert caught.value.reason == reason, (key_id, env, backup)


@pytest.mark.parametrize(
    "header",
    [
        None,
        {},
        {"alg": "aes-256-gcm", "key_id": "k1"},  # wrapped key removed
        {"alg": "aes-256-gcm", "key_id": "k1", "wrapped_key": ""},
        {"alg": "aes-256-gcm", "key_id": "k1", "wrapped_key": "!!"},
        {"alg": "aes-256-gcm", "key_id": "k1", "wrapped_key": "AAAA"},  # too short
        {"alg": "chacha20-poly1305", "key_id": "k1", "wrapped_key": "A" * 80},
        {"alg": "aes-256-gcm", "key_id": "../k", "wrapped_key": "A" * 80},
        {"alg": "aes-256-gcm", "key_id": "k1", "wrapped_key": "A" * 80, "x": 1},
    ],
)
def test_malformed_encryption_header_refused(header: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_encryption(header, "manifest")
    assert caught.value.reason == "DecryptionFailed"


def test_keyring_encrypt_flag_and_separate_subkeys() -> None:
    key = os.urandom(32).hex()
    plain = parse_keyring(f'{{"current": "a", "keys": {{"a": "{key}"}}}}', "k")
    assert not plain.encrypt and new_cipher(plain, "e", "b") is None
    ring = parse_keyring(f'{{"current": "a", "encrypt": true, "keys": {{"a": "{key}"}}}}', "k")
    assert ring.encrypt
    cipher = new_cipher(ring, "e", "b")
    assert cipher is not None and new_cipher(ring, "e", "b") != cipher  # fresh per backup
    assert ring.encryption_key("a") != _derive(ring.keys["a"], SIGNING)
    for bad in ('"yes"', "1", "null"):
        with pytest.raises(InvalidInput, match="encrypt"):
            parse_keyring(f'{{"current": "a", "encrypt": {bad}, "keys": {{"a": "{key}"}}}}', "k")
    assert parse_keyring(key, "k").encrypt is False  # a single key signs only


def test_no_key_material_in_reprs() -> None:
    cipher = _cipher(key=b"\xab" * 32)
    ring = _ring(k1=b"\xcd" * 32)
    enc = wrap(ring, cipher)
    for text in (repr(cipher), repr(enc), repr(ring)):
        assert "\\xab" not in text and "\\xcd" not in text and "wrapped" not in text
