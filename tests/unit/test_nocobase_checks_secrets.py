"""Which secret variables a NocoBase key decrypts, and the key file forms NocoBase uses."""

from __future__ import annotations

import pytest

from controller.engine import nocobase_secrets as ns
from controller.errors import InvalidInput

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
IV = bytes(16)


def test_names_exactly_the_values_the_key_does_not_decrypt() -> None:
    stored = [
        ("A_TOKEN", ns.encrypt(KEY, "one", IV)),
        ("B_TOKEN", ns.encrypt(OTHER, "two", IV)),
        ("C_TOKEN", ns.encrypt(KEY, "", IV)),  # an empty secret still decrypts
        ("D_TOKEN", "not hex at all"),
        ("E_TOKEN", ns.encrypt(KEY, "x" * 100, IV)[:-32]),  # cut: a block missing
    ]
    assert ns.undecryptable(KEY, stored) == ["B_TOKEN", "D_TOKEN", "E_TOKEN"]
    assert ns.undecryptable(OTHER, stored) == ["A_TOKEN", "C_TOKEN", "D_TOKEN", "E_TOKEN"]


def test_an_unset_secret_is_not_reported() -> None:
    assert ns.undecryptable(KEY, [("EMPTY", ""), ("NULL", None)]) == []


@pytest.mark.parametrize(
    "raw",
    [KEY, KEY.hex().encode(), KEY.hex().upper().encode() + b"\n", b"  " + KEY.hex().encode()],
    ids=["aes_key.dat", "hex", "hex-upper-newline", "hex-spaces"],
)
def test_key_file_forms(raw: bytes) -> None:
    assert ns.parse_key_file(raw) == KEY


def test_32_bytes_are_the_key_as_nocobase_reads_them_even_if_they_look_like_hex() -> None:
    assert ns.parse_key_file(b"ab" * 16) == b"ab" * 16


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (b"", "0 bytes"),
        (b"\n\n", "2 bytes"),
        (KEY[:31], "31 bytes"),
        (b"\xff" * 40, "40 bytes"),
        (b"ab" * 15, "30 bytes"),  # hex, but 15 bytes
        (b"zz" * 32, "64 bytes"),
        (b"a" * 1000, "1000 bytes"),
    ],
)
def test_key_files_that_are_no_key_are_refused_naming_why(raw: bytes, says: str) -> None:
    with pytest.raises(InvalidInput, match=says):
        ns.parse_key_file(raw)
