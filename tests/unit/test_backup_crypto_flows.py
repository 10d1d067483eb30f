"""Encryption through the operator's flows: the Environment's store key Secret (the
same ``keyFrom`` that signs) encrypts a Backup when it says ``"encrypt": true``; a
Restore whose Environment holds another key fails with the key's ID named, the
target untouched, and no key material in status."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from controller.backups.keyring import parse_keyring
from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup
from tests.fixtures import nocobase_shape as shape
from tests.unit import test_flows_backup as backups
from tests.unit import test_flows_restore as restores
from tests.unit.fake_cluster import FakeCluster

KEY = base64.b64encode(os.urandom(32)).decode()
OTHER = base64.b64encode(os.urandom(32)).decode()


def _ring(key: str, key_id: str = "k1") -> str:
    return json.dumps({"current": key_id, "encrypt": True, "keys": {key_id: key}})


def _keyed(env: dict[str, Any]) -> dict[str, Any]:
    env["spec"]["backups"]["store"]["keyFrom"] = {
        "secretKeyRef": {"name": "store-key", "key": "keyring"}
    }
    return env


def test_a_backup_is_encrypted_with_the_environments_key(url: str, store: Path) -> None:
    cluster = FakeCluster(
        _keyed(backups.environment(url, store)),
        backups.backup(),
        secrets={"store-key": {"keyring": _ring(KEY)}},
    )
    status = backups.run(cluster).status
    assert status["phase"] == "Completed", status
    assert KEY not in json.dumps(status)
    manifest = FilesystemStore(store, parse_keyring(_ring(KEY), "k")).manifest(status["id"])
    assert manifest.integrity == "encrypted (key k1)"
    raw = json.loads((store / "prod" / manifest.id / "manifest.json").read_text())
    assert raw["version"] == 3 and raw["encryption"]["key_id"] == "k1"
    for member in manifest.members:
        assert (store / "prod" / manifest.id / member.key).read_bytes().startswith(b"ferry-enc")


def test_a_restore_with_another_key_fails_and_changes_nothing(url: str, store: Path) -> None:
    ring = parse_keyring(_ring(KEY), "k")
    manifest, _ = create_backup(url, FilesystemStore(store, ring), environment="prod")
    before = shape.row_counts(url)
    for secret, says in ((_ring(OTHER), "does not open with store key 'k1'"),
                         (_ring(OTHER, "k2"), "store key 'k1'")):  # fmt: skip
        cluster = FakeCluster(
            _keyed(restores.environment("prod", url, store)),
            # named: a search of every store would only say that none has the backup
            restores.restore(backup=manifest.id, environment="prod"),
            secrets={"store-key": {"keyring": secret}},
        )
        status = restores.run(cluster).status
        assert status["phase"] == "Failed", status
        assert says in status["message"]
        assert OTHER not in json.dumps(status) and KEY not in json.dumps(status)
        assert shape.row_counts(url) == before
