"""An encrypted manifest (format 3) as a store holds it, edited as someone with write
access to the store but without the key would: each edit is refused, and why."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from controller.backups.crypto import BackupCipher, wrap
from controller.backups.keyring import StoreKeyring
from controller.backups.manifest import ENCRYPTED_VERSION, Manifest
from controller.backups.manifest_reader import parse_manifest, read_manifest
from controller.backups.store import seal_manifest
from controller.errors import InvalidInput

K1, K2 = os.urandom(32), os.urandom(32)
RING = StoreKeyring({"k1": K1, "k2": K2}, "k1", encrypt=True)


def _manifest(backup: str = "20261130T100000000Z-aaaaaa") -> Manifest:
    plain = Manifest(
        id=backup,
        environment="prod",
        reason="manual",
        created_at="2026-11-30T10:00:00+00:00",
        completed_at="2026-11-30T10:00:01+00:00",
        dialect="sqlite",
        server_version="3.45",
        app_version="1.4.0",
        naming=None,
        members=(),
    )
    return seal_manifest(plain, RING, BackupCipher("prod", backup, os.urandom(32)))


def _read(text: str, ring: StoreKeyring | None = RING, backup: str | None = None) -> Manifest:
    return read_manifest(
        text.encode(), "manifest.json", ring, "prod", backup or "20261130T100000000Z-aaaaaa"
    )


def test_round_trip_and_nothing_readable_in_clear() -> None:
    manifest = _manifest()
    stored = manifest.stored_json()
    data = json.loads(stored)
    assert data["version"] == ENCRYPTED_VERSION == manifest.version
    assert set(data) == {"format", "version", "id", "environment", "encryption", "sealed"}
    assert "1.4.0" not in stored and "sqlite" not in stored  # the body is sealed
    back = _read(stored)
    assert back.checksum == manifest.checksum and back.app_version == "1.4.0"
    assert back.integrity == "encrypted (key k1)" and back.signed_by == "k1"
    assert "wrapped_key" not in back.to_json()  # what `backup show` prints


def test_rewrapped_manifest_reads_with_the_new_key_only() -> None:
    manifest = _manifest()
    assert manifest.encryption is not None
    ring2 = StoreKeyring({"k2": K2}, "k2", encrypt=True)
    rewrapped = replace(manifest, encryption=wrap(ring2, manifest.encryption.cipher))
    assert _read(rewrapped.stored_json(), ring2).checksum == manifest.checksum
    with pytest.raises(InvalidInput) as caught:
        _read(rewrapped.stored_json(), StoreKeyring({"k1": K1}, "k1"))
    assert caught.value.reason == "UnknownStoreKey"


Edit = Callable[[dict[str, Any]], None]


def _set(field: str, value: object) -> Edit:
    return lambda d: d.__setitem__(field, value)


def _drop(field: str) -> Edit:
    return lambda d: d.pop(field)


def _enc(field: str, value: object | None) -> Edit:
    def change(d: dict[str, Any]) -> None:
        if value is None:
            d["encryption"].pop(field)
        else:
            d["encryption"][field] = value

    return change


def _flip_sealed(position: int) -> Edit:
    def change(d: dict[str, Any]) -> None:
        blob = bytearray(base64.b64decode(d["sealed"]))
        blob[position] ^= 1
        d["sealed"] = base64.b64encode(bytes(blob)).decode()

    return change


def _truncate_sealed(d: dict[str, Any]) -> None:
    d["sealed"] = base64.b64encode(base64.b64decode(d["sealed"])[:-17]).decode()


def _other_backups(*fields: str) -> Edit:
    """Fields copied from another backup's manifest, written with the same key."""
    other = json.loads(_manifest("20261130T100000000Z-bbbbbb").stored_json())

    def change(d: dict[str, Any]) -> None:
        for f in fields:
            d[f] = other[f]

    return change


EDITS = [
    pytest.param(_drop("encryption"), "UnknownFormatVersion", id="encryption-removed"),
    pytest.param(_enc("wrapped_key", None), "DecryptionFailed", id="wrapped-key-removed"),
    pytest.param(_enc("wrapped_key", "A" * 80), "DecryptionFailed", id="wrapped-key-replaced"),
    pytest.param(_enc("key_id", "k2"), "DecryptionFailed", id="key-id-relabelled"),
    pytest.param(_enc("key_id", "k9"), "UnknownStoreKey", id="key-id-unknown"),
    pytest.param(_enc("alg", "none"), "DecryptionFailed", id="alg-changed"),
    pytest.param(_set("version", 2), "UnknownFormatVersion", id="version-2"),
    # 4 is format 4 (with files): its envelope no longer matches the version 3 body.
    pytest.param(_set("version", 4), "ManifestInvalid", id="version-4-over-3"),
    pytest.param(_set("version", 5), "UnknownFormatVersion", id="version-5"),
    pytest.param(_set("id", "20261130T100000000Z-cccccc"), "ManifestMisplaced", id="id-moved"),
    pytest.param(_set("extra", 1), "ManifestInvalid", id="unknown-field"),
    pytest.param(_drop("sealed"), "ManifestInvalid", id="sealed-removed"),
    pytest.param(_set("sealed", "!!"), "DecryptionFailed", id="sealed-not-base64"),
    pytest.param(_flip_sealed(5), "DecryptionFailed", id="sealed-magic-flipped"),
    pytest.param(_flip_sealed(40), "DecryptionFailed", id="sealed-body-flipped"),
    pytest.param(_flip_sealed(-1), "DecryptionFailed", id="sealed-tag-flipped"),
    pytest.param(_truncate_sealed, "DecryptionFailed", id="sealed-truncated"),
    pytest.param(_other_backups("sealed"), "DecryptionFailed", id="sealed-from-other-backup"),
    pytest.param(
        _other_backups("sealed", "encryption"), "DecryptionFailed", id="body-and-key-moved"
    ),
]


@pytest.mark.parametrize(("edit", "reason"), EDITS)
def test_edited_encrypted_manifest_refused(edit: Edit, reason: str) -> None:
    data = json.loads(_manifest().stored_json())
    edit(data)
    with pytest.raises(InvalidInput) as caught:
        _read(json.dumps(data))
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("ring", "reason"),
    [
        pytest.param(None, "StoreKeyRequired", id="no-key"),
        pytest.param(StoreKeyring({"k1": K2}, "k1"), "DecryptionFailed", id="same-id-other-key"),
        pytest.param(StoreKeyring({"k2": K2}, "k2"), "UnknownStoreKey", id="other-key"),
    ],
)
def test_wrong_or_missing_key_refused(ring: StoreKeyring | None, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _read(_manifest().stored_json(), ring)
    assert caught.value.reason == reason
    assert "k1" in caught.value.message  # names the key the backup needs


def test_parse_without_a_keyring_says_the_backup_is_encrypted() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_manifest(_manifest().stored_json(), "manifest.json")
    assert caught.value.reason == "StoreKeyRequired" and "encrypted" in caught.value.message
