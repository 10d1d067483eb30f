"""Encrypted backups (format 3) on real SQLite, PostgreSQL and MariaDB, and on S3.

A round trip through an encrypted backup restores the database exactly, and nothing of
it is readable without the key; ``backup rekey`` moves every backup to the new key
without touching a member; a wrong, missing or outdated key, and every kind of
tampering, is refused through the real ``ferry`` command with exit 2, one line of
error, and the database and the store unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from pyarrow import ipc

from controller.backups import layout
from controller.backups.crypto import MAGIC
from controller.backups.keyring import load_keyring_file
from controller.backups.manifest import ENCRYPTED_VERSION, FORMAT_VERSION, Manifest
from controller.backups.sealing import ENCRYPTED_MAGIC
from controller.backups.store import FilesystemStore, open_store
from controller.commands.backup import create_backup, restore, verify
from controller.commands.migrate import MigrationRequest, migrate
from controller.commands.rekey import CURRENT, REWRAPPED, UNENCRYPTED, rekey
from controller.commands.rollback import rollback
from controller.errors import InvalidInput
from tests.db.dbhelpers import dump, execute, q
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_refused, run_cli

pytestmark = pytest.mark.db
MakeDb = Callable[..., str]
VARS = {"HOOK_TOKEN": ("secret", "t"), "TICKET_WEBHOOK": ("plain", "u")}
K1, K2, K3 = (hashlib.sha256(s).digest() for s in (b"one", b"two", b"three"))


def _ring_file(path: Path, current: str, encrypt: bool = True, **keys: bytes) -> Path:
    ring = {k: base64.b64encode(v).decode() for k, v in keys.items()}
    path.write_text(json.dumps({"current": current, "encrypt": encrypt, "keys": ring}))
    return path


@dataclass
class Keys:
    old: Path  # {k1}, current k1
    both: Path  # {k1, k2}, current k2: during a rotation
    new: Path  # {k2} only: after it
    stranger: Path  # {k3}
    impostor: Path  # "k1" naming another key
    signing: Path  # {k1}, no encryption


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    d = tmp_path / "keys"
    d.mkdir()
    return Keys(
        old=_ring_file(d / "old.json", "k1", k1=K1),
        both=_ring_file(d / "both.json", "k2", k1=K1, k2=K2),
        new=_ring_file(d / "new.json", "k2", k2=K2),
        stranger=_ring_file(d / "stranger.json", "k3", k3=K3),
        impostor=_ring_file(d / "impostor.json", "k1", k1=K3),
        signing=_ring_file(d / "signing.json", "k1", encrypt=False, k1=K1),
    )


def _fs(root: Path, key_file: Path | None) -> FilesystemStore:
    return FilesystemStore(root, load_keyring_file(str(key_file)) if key_file else None)


def _backup_dir(store: Path, m: Manifest) -> Path:
    return store / m.environment / m.id


def test_encrypted_round_trip_reveals_nothing_without_the_key(
    dialect: str, make_database: MakeDb, keys: Keys, tmp_path: Path
) -> None:
    src, dst = make_database(dialect, "src"), make_database(dialect, "dst")
    shape.build(src, app="src")
    shape.builder_changes(src)
    shape.build(dst, app="dst", seed=2)  # a database to replace: a safety backup is taken
    store = _fs(tmp_path / "store", keys.old)
    manifest, location = create_backup(src, store, environment="dev")
    assert manifest.version == ENCRYPTED_VERSION and manifest.integrity == "encrypted (key k1)"
    assert manifest.rows > 50 and verify(store, manifest.id)[1] == []

    # At rest: no table name, no row and no Arrow stream is readable.
    stored = (Path(location) / layout.MANIFEST).read_text()
    assert "roles" not in stored and "s3cr3t" not in stored
    for member in manifest.members:
        blob = (Path(location) / member.key).read_bytes()
        assert blob.startswith(MAGIC) and b"s3cr3t" not in blob
        with pytest.raises(pa.ArrowInvalid):
            ipc.open_stream(blob).read_all()

    result = restore(store, manifest.id, dst, force=True)
    assert result.rows == manifest.rows
    assert dump(dst) == dump(src)
    # the safety backup taken by the restore is encrypted too
    assert result.safety_backup and store.manifest(result.safety_backup).encryption


def test_unencrypted_and_signed_backups_stay_readable_with_an_encrypting_key(
    dialect: str, make_database: MakeDb, keys: Keys, tmp_path: Path
) -> None:
    db = make_database(dialect, "db")
    shape.build(db, app="x")
    root = tmp_path / "store"
    plain, _ = create_backup(db, _fs(root, None), environment="x")
    signed, _ = create_backup(db, _fs(root, keys.signing), environment="x")
    assert (plain.version, signed.version) == (FORMAT_VERSION, FORMAT_VERSION)
    assert signed.integrity == "signed (key k1)"
    encrypting = _fs(root, keys.old)
    assert [m.integrity for m in encrypting.manifests("x")] == ["unsigned", "signed (key k1)"]
    before = dump(db)
    execute(db, f"update {q(dialect, 'roles')} set title = 'edited'")
    restore(encrypting, signed.id, db)
    assert dump(db) == before


def test_rekey_then_restore_with_only_the_new_key(
    dialect: str, make_database: MakeDb, keys: Keys, tmp_path: Path
) -> None:
    db = make_database(dialect, "db")
    shape.build(db, app="x")
    root = tmp_path / "store"
    first, _ = create_backup(db, _fs(root, keys.old), environment="x")
    plain, _ = create_backup(db, _fs(root, None), environment="x")
    # The rotation starts: a new key is current; old backups read with the old one.
    second, _ = create_backup(db, _fs(root, keys.both), environment="x")
    assert second.integrity == "encrypted (key k2)"
    members = {
        p: p.read_bytes() for m in (first, second) for p in _backup_dir(root, m).rglob("*.arrow")
    }

    outcome = run_cli(["backup", "rekey", "--store", str(root), "--store-key-file", str(keys.both)])
    assert outcome.code == 0, outcome.stderr
    assert f"{first.id}  x" in outcome.stdout and "k1 -> k2" in outcome.stdout
    assert "1 of 3 backup(s) re-wrapped" in outcome.stdout
    assert {p: p.read_bytes() for p in members} == members  # no member rewritten

    store = _fs(root, keys.new)  # the old key is gone
    assert [m.integrity for m in store.manifests("x")] == [
        "encrypted (key k2)",
        "unsigned",
        "encrypted (key k2)",
    ]
    assert [o.action for o in rekey(store)] == [CURRENT, UNENCRYPTED, CURRENT]
    execute(db, f"update {q(dialect, 'roles')} set title = 'edited'")
    expected = dump(db)
    restore(store, first.id, db)
    assert dump(db) != expected
    assert verify(store, plain.id)[1] == []


def test_rekey_stopped_midway_leaves_every_backup_readable(
    keys: Keys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = f"sqlite:///{tmp_path}/a.db"
    shape.build(db)
    root = tmp_path / "store"
    made = [create_backup(db, _fs(root, keys.old), environment="x")[0] for _ in range(3)]
    store = _fs(root, keys.both)

    # Killed while writing the second manifest's replacement, before the rename.
    real_replace = os.replace
    calls = []

    def crash_on_second(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as abrupt as it gets in-process
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        rekey(store)
    monkeypatch.setattr(os, "replace", real_replace)
    assert [m.integrity for m in store.manifests("x")] == [
        "encrypted (key k2)",
        "encrypted (key k1)",
        "encrypted (key k1)",
    ]
    assert list(_backup_dir(root, made[1]).glob(".manifest.json.*.tmp"))  # the debris
    assert all(verify(store, m.id)[1] == [] for m in made)

    assert [o.action for o in rekey(store)] == [CURRENT, REWRAPPED, REWRAPPED]
    new_only = _fs(root, keys.new)
    assert all(verify(new_only, m.id)[1] == [] for m in made)


def test_post_migration_state_is_encrypted_and_rolls_back(
    dialect: str, make_database: MakeDb, keys: Keys, tmp_path: Path
) -> None:
    dev, pre = make_database(dialect, "dev"), make_database(dialect, "pre")
    shape.build(dev, app="dev")
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables=VARS)
    before = dump(pre)
    store = _fs(tmp_path / "store", keys.old)
    result = migrate(MigrationRequest(dev, pre, store=store, environment="pre", migration_id="r1"))
    assert result.status == "succeeded", result.message
    manifest = store.manifest(result.backup_id or "")
    post = _backup_dir(tmp_path / "store", manifest) / layout.post_state_key("r1")
    assert post.read_bytes().startswith(ENCRYPTED_MAGIC)
    rollback(_fs(tmp_path / "store", keys.both), "r1", pre)
    assert {k: v for k, v in dump(pre).items() if k != "ferry_migrations"} == {
        k: v for k, v in before.items() if k != "ferry_migrations"
    }


# --- refusals through the CLI ----------------------------------------------------------


@dataclass
class World:
    db: str
    store: Path
    keys: Keys
    a: Manifest
    b: Manifest

    def member(self, m: Manifest, index: int = 0) -> Path:
        return _backup_dir(self.store, m) / m.members[index].key

    def manifest_file(self, m: Manifest) -> Path:
        return _backup_dir(self.store, m) / layout.MANIFEST


def _add_attachments(url: str, count: int = 300) -> None:
    """A table of incompressible text: its member spans several 64 KiB chunks."""
    md = sa.MetaData()
    table = sa.Table(
        "attachments", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("body", sa.Text)
    )
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            md.create_all(conn)
            rows = [{"id": i, "body": os.urandom(512).hex()} for i in range(1, count + 1)]
            conn.execute(table.insert(), rows)
    finally:
        engine.dispose()


@pytest.fixture
def world(dialect: str, make_database: MakeDb, keys: Keys, tmp_path: Path) -> World:
    db = make_database(dialect, "db")
    shape.build(db, app="x")
    _add_attachments(db)
    store = tmp_path / "store"
    a, _ = create_backup(db, _fs(store, keys.old), environment="x")
    shape.builder_changes(db)
    b, _ = create_backup(db, _fs(store, keys.old), environment="x")
    assert len(a.members) > 3 and len(b.members) > 3
    return World(db, store, keys, a, b)


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate_to_whole_chunks(path: Path) -> None:
    data = path.read_bytes()
    assert len(data) > len(MAGIC) + 16 + 65536 + 16, "the member needs two chunks"
    path.write_bytes(data[: len(MAGIC) + 16 + 65536 + 16])


def _biggest(w: World, m: Manifest) -> int:
    return max(range(len(m.members)), key=lambda i: w.member(m, i).stat().st_size)


def _edit_encryption(w: World, change: Callable[[dict[str, Any]], None]) -> None:
    path = w.manifest_file(w.a)
    data = json.loads(path.read_text())
    change(data["encryption"])
    path.write_text(json.dumps(data))


def _swap_members(w: World) -> None:
    one, two = w.member(w.a, 0), w.member(w.a, 1)
    data = one.read_bytes()
    one.write_bytes(two.read_bytes())
    two.write_bytes(data)


def _member_from_other_backup(w: World) -> None:
    shutil.copyfile(w.member(w.b, 0), w.member(w.a, 0))


def _unencrypted_member(w: World) -> None:
    """The member replaced by an Arrow stream someone wrote without the key."""
    sink = pa.BufferOutputStream()
    schema = pa.schema([("x", pa.int64())])
    with ipc.new_stream(sink, schema) as out:
        out.write_batch(pa.record_batch([pa.array([1])], schema=schema))
    w.member(w.a, 0).write_bytes(sink.getvalue().to_pybytes())


# (what is done to the store, the key file used, what the error says)
Tamper = Callable[[World], None]
REFUSED: list[Any] = [
    pytest.param(None, None, "encrypted with store key 'k1'", id="no-key"),
    pytest.param(None, "stranger", "does not hold", id="other-key"),
    pytest.param(None, "new", "does not hold", id="old-key-removed-before-rekey"),
    pytest.param(None, "impostor", "does not open with store key 'k1'", id="same-id-other-key"),
    pytest.param(lambda w: _flip(w.member(w.a, 0), 40), "old", "{member0}", id="member-bit-flip"),
    pytest.param(lambda w: _flip(w.member(w.a, 0), -1), "old", "{member0}", id="member-tag-flip"),
    pytest.param(
        lambda w: _truncate_to_whole_chunks(w.member(w.a, _biggest(w, w.a))),
        "old",
        "truncated",
        id="member-truncated-at-chunk",
    ),
    pytest.param(_swap_members, "old", "{member0}", id="members-swapped"),
    pytest.param(_member_from_other_backup, "old", "{member0}", id="member-from-other-backup"),
    pytest.param(_unencrypted_member, "old", "not an encrypted", id="member-unencrypted"),
    pytest.param(
        lambda w: _edit_encryption(w, lambda e: e.pop("wrapped_key")),
        "old",
        "encryption header",
        id="wrapped-key-removed",
    ),
    pytest.param(
        lambda w: _edit_encryption(
            w, lambda e: e.update(wrapped_key=base64.b64encode(os.urandom(60)).decode())
        ),
        "old",
        "wrapped data key",
        id="wrapped-key-replaced",
    ),
    pytest.param(
        lambda w: _edit_encryption(
            w,
            lambda e: e.update(
                wrapped_key=json.loads(w.manifest_file(w.b).read_text())["encryption"][
                    "wrapped_key"
                ]
            ),
        ),
        "old",
        "wrapped data key",
        id="wrapped-key-from-other-backup",
    ),
]


@pytest.mark.parametrize("command", ["restore", "verify"])
@pytest.mark.parametrize(("tamper", "key", "says"), REFUSED)
def test_refused_with_nothing_changed(
    world: World, command: str, tamper: Tamper | None, key: str | None, says: str
) -> None:
    if tamper:
        tamper(world)
    argv = ["--store", str(world.store)]
    if key:
        argv += ["--store-key-file", str(getattr(world.keys, key))]
    if command == "restore":
        argv = ["restore", *argv, "--backup", world.a.id, "--database", world.db]
    else:
        argv = ["backup", "verify", world.a.id, *argv]
    says = says.format(member0=world.a.members[0].key)
    assert_refused(argv, 2, [world.db, world.store], says=says)


def test_rekey_refused_without_a_key_or_with_the_wrong_one(world: World) -> None:
    for key, says in ((None, "needs the store key"), ("stranger", "does not hold")):
        argv = ["backup", "rekey", "--store", str(world.store)]
        if key:
            argv += ["--store-key-file", str(getattr(world.keys, key))]
        assert_refused(argv, 2, [world.store], says=says)


# --- S3 ---------------------------------------------------------------------------------


def test_encrypted_backup_rekey_and_refusal_through_s3(
    aws_env: None, s3_bucket: str, keys: Keys, tmp_path: Path
) -> None:
    src, dst = f"sqlite:///{tmp_path}/src.db", f"sqlite:///{tmp_path}/dst.db"
    shape.build(src)
    (tmp_path / "dst.db").touch()
    spec = f"s3://{s3_bucket}/enc"
    manifest, _ = create_backup(src, open_store(spec, str(keys.old)), environment="prod")
    assert manifest.integrity == "encrypted (key k1)"
    outcome = rekey(open_store(spec, str(keys.both)))
    assert [o.action for o in outcome] == [REWRAPPED]
    store = open_store(spec, str(keys.new))
    restore(store, manifest.id, dst)
    assert dump(dst) == dump(src)
    with pytest.raises(InvalidInput) as caught:
        open_store(spec, str(keys.old)).manifest(manifest.id)
    assert caught.value.reason == "UnknownStoreKey"
