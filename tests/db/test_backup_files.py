"""The application's files in backups (format 4), on SQLite, PostgreSQL and MariaDB.

A backup taken with a files root holds every file but the excluded ones; a restore
brings the files and the rows back together, moves aside (never deletes) what it
replaces, and never touches NocoBase's key directory. A tampered file member, an
encrypted one and a backup without files behave as the format document says, through
the real ``ferry`` command.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import shutil
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.backups.crypto import MAGIC
from controller.backups.fileroots import DISPLACED, DirectoryRoot
from controller.backups.keyring import load_keyring_file
from controller.backups.manifest import FILES_VERSION, FORMAT_VERSION
from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup, restore
from tests.db.dbhelpers import dump, execute, q
from tests.fixtures import nocobase_shape as shape
from tests.harness.s3server import RunningS3
from tests.hostile import assert_refused, run_cli

pytestmark = pytest.mark.db
MakeDb = Callable[..., str]
PNG = bytes(range(256)) * 1200 + b"\x89PNG-tail"  # ~300 KiB, binary: several chunks
KEY = b"NocoBase AES key: never in a backup"
COMPAT = Path(__file__).resolve().parents[1] / "fixtures" / "compat" / "v1"


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file below ``root`` (moved-aside ones left out): path → bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink() and DISPLACED not in p.relative_to(root).parts
    }


def make_files(root: Path) -> None:
    (root / "uploads" / "2026" / "11").mkdir(parents=True)
    (root / "uploads" / "2026" / "11" / "logo.png").write_bytes(PNG)
    (root / "uploads" / "notes with spaces é.txt").write_text("notes v1\n")
    (root / "uploads" / "empty.bin").write_bytes(b"")
    (root / "environment-variables").mkdir()
    (root / "environment-variables" / "app").write_bytes(KEY)
    (root / "apps" / "main").mkdir(parents=True)  # where NocoBase 2.x keeps its key
    (root / "apps" / "main" / "aes_key.dat").write_bytes(KEY)
    (root / "tmp").mkdir()
    (root / "tmp" / "cache.bin").write_bytes(b"cache")


def app_with_files(dialect: str, make_database: MakeDb, tmp_path: Path) -> tuple[str, Path, Path]:
    """A NocoBase-shaped database with its files root (``make_files``): the database's
    URL, the root and where its store goes."""
    db = make_database(dialect, "app")
    shape.build(db, app="prod")
    files, store = tmp_path / "storage", tmp_path / "store"
    make_files(files)
    return db, files, store


def tamper_logo(store: Path, backup_id: str) -> str:
    """Flip one bit of the backup's logo.png member; its member key."""
    manifest = FilesystemStore(store).manifest(backup_id)
    assert manifest.files is not None
    logo = next(e for e in manifest.files.entries if e.path.endswith("logo.png"))
    member = store / "prod" / backup_id / logo.key
    data = bytearray(member.read_bytes())
    data[1000] ^= 0x01
    member.write_bytes(bytes(data))
    return logo.key


def backup_cli(store: Path, db: str, files: Path, *extra: str) -> str:
    out = run_cli(
        [
            "backup", "create", "--store", str(store), "--database", db,
            "--environment", "prod", "--files", str(files), "--files-exclude", "tmp",
            "--format", "json", *extra,
        ]
    )  # fmt: skip
    assert out.code == 0, out.stderr
    return str(json.loads(out.stdout)["id"])


def test_backup_then_restore_brings_files_and_rows_back(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    db, files, store = app_with_files(dialect, make_database, tmp_path)
    rows_before, files_before = dump(db), tree(files)
    backup_id = backup_cli(store, db, files)

    manifest = FilesystemStore(store).manifest(backup_id)
    assert manifest.version == FILES_VERSION and manifest.files is not None
    section = manifest.files
    by_path = {e.path: e for e in section.entries}
    assert sorted(by_path) == [
        "uploads/2026/11/logo.png",
        "uploads/empty.bin",
        "uploads/notes with spaces é.txt",
    ]  # the key directory and the excluded tmp/ are not in it
    logo = by_path["uploads/2026/11/logo.png"]
    assert (logo.bytes, logo.sha256) == (len(PNG), hashlib.sha256(PNG).hexdigest())
    assert logo.key.startswith("files/") and (store / "prod" / backup_id / logo.key).is_file()
    assert section.consistency == "copied-after-snapshot" and section.exclude == ("tmp",)
    times = [dt.datetime.fromisoformat(t) for t in (section.snapshot_at, section.copied_from)]
    assert times[0] <= times[1] <= dt.datetime.fromisoformat(section.copied_until)
    assert not any(KEY in p.read_bytes() for p in store.rglob("*") if p.is_file())

    # The application runs on: rows change, a file is edited, one added, one removed;
    # the key is rotated and the cache rewritten (neither is the backup's to touch).
    execute(db, f"update {q(dialect, 'roles')} set title = 'edited'")
    (files / "uploads" / "2026" / "11" / "logo.png").write_bytes(b"overwritten")
    (files / "uploads" / "2026" / "12.pdf").write_bytes(b"uploaded later")
    (files / "uploads" / "empty.bin").unlink()
    (files / "environment-variables" / "app").write_bytes(b"rotated key")
    (files / "apps" / "main" / "aes_key.dat").write_bytes(b"rotated key")
    (files / "tmp" / "cache.bin").write_bytes(b"cache v2")

    out = run_cli(
        ["restore", "--store", str(store), "--backup", backup_id, "--database", db,
         "--files", str(files), "--format", "json"]
    )  # fmt: skip
    assert out.code == 0, out.stderr
    report = json.loads(out.stdout)["files"]
    assert (report["written"], report["unchanged"], report["displaced"]) == (2, 1, 2)

    assert dump(db) == rows_before
    expected = {
        **files_before,
        "environment-variables/app": b"rotated key",
        "apps/main/aes_key.dat": b"rotated key",
        "tmp/cache.bin": b"cache v2",
    }
    assert tree(files) == expected
    aside = files / report["displacedTo"]
    assert tree(aside) == {
        "uploads/2026/11/logo.png": b"overwritten",
        "uploads/2026/12.pdf": b"uploaded later",
    }  # nothing a restore replaces is lost


def test_quiesced_backup_says_so_and_a_second_restore_changes_nothing(
    make_database: MakeDb, tmp_path: Path
) -> None:
    db = make_database("sqlite", "app")
    shape.build(db, app="prod")
    files, store = tmp_path / "storage", tmp_path / "store"
    make_files(files)
    backup_id = backup_cli(store, db, files, "--quiesced")
    assert FilesystemStore(store).manifest(backup_id).files.consistency == "quiesced"  # type: ignore[union-attr]
    first = restore(FilesystemStore(store), backup_id, db, files=DirectoryRoot(files))
    assert first.files is not None and first.files.written == 0 and not first.files.displaced
    assert not (files / DISPLACED).exists()


def test_tampered_file_member_is_refused_by_name(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    db, files, store = app_with_files(dialect, make_database, tmp_path)
    backup_id = backup_cli(store, db, files)
    key = tamper_logo(store, backup_id)
    execute(db, f"update {q(dialect, 'roles')} set title = 'edited'")
    (files / "uploads" / "empty.bin").write_bytes(b"changed")
    restore_args = [
        "restore", "--store", str(store), "--backup", backup_id, "--database", db,
        "--files", str(files),
    ]  # fmt: skip
    assert_refused(restore_args, 2, [db, files, store], says=key)
    out = assert_refused(
        ["backup", "verify", "--store", str(store), backup_id], 2, [store], says=key
    )
    assert "uploads/2026/11/logo.png" in out.stderr and key in out.stderr


def _ring(path: Path) -> Path:
    key = base64.b64encode(hashlib.sha256(b"files").digest()).decode()
    path.write_text(json.dumps({"current": "k1", "encrypt": True, "keys": {"k1": key}}))
    return path


def test_encrypted_store_encrypts_the_files_too(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    db = make_database(dialect, "app")
    shape.build(db, app="prod")
    files, store, ring = tmp_path / "storage", tmp_path / "store", _ring(tmp_path / "ring.json")
    make_files(files)
    files_before, rows_before = tree(files), dump(db)
    backup_id = backup_cli(store, db, files, "--store-key-file", str(ring))
    keyed = FilesystemStore(store, load_keyring_file(str(ring)))
    manifest = keyed.manifest(backup_id)
    assert manifest.version == FILES_VERSION and manifest.integrity == "encrypted (key k1)"
    stored = (store / "prod" / backup_id / "manifest.json").read_text()
    assert "logo.png" not in stored and '"files"' not in stored  # the list is sealed too
    assert manifest.files is not None
    for entry in manifest.files.entries:
        blob = (store / "prod" / backup_id / entry.key).read_bytes()
        assert blob.startswith(MAGIC) and PNG[:4096] not in blob and b"notes v1" not in blob

    # Without the key nothing restores; a member moved onto another is refused by name.
    args = [
        "restore", "--store", str(store), "--backup", backup_id, "--database", db,
        "--files", str(files),
    ]  # fmt: skip
    (files / "uploads" / "notes with spaces é.txt").write_text("notes v2\n")
    assert_refused(args, 2, [db, files, store], says="store key")
    by_path = {e.path: e for e in manifest.files.entries}
    notes, logo = by_path["uploads/notes with spaces é.txt"], by_path["uploads/2026/11/logo.png"]
    notes_member = store / "prod" / backup_id / notes.key
    original = notes_member.read_bytes()
    notes_member.write_bytes((store / "prod" / backup_id / logo.key).read_bytes())
    assert_refused([*args, "--store-key-file", str(ring)], 2, [db, files, store], says=notes.key)
    notes_member.write_bytes(original)

    out = run_cli([*args, "--store-key-file", str(ring)])
    assert out.code == 0, out.stderr
    assert tree(files) == files_before and dump(db) == rows_before


def test_backup_without_files_restores_rows_and_refuses_a_files_root(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    """A backup taken before the Environment declared its files (format 2) restores as
    before; asked to restore files from it, Ferry refuses instead of emptying the root."""
    db = make_database(dialect, "app")
    shape.build(db, app="prod")
    store, files = FilesystemStore(tmp_path / "store"), tmp_path / "storage"
    make_files(files)
    manifest, _ = create_backup(db, store, environment="prod")
    assert manifest.version == FORMAT_VERSION and manifest.files is None
    before = dump(db)
    execute(db, f"update {q(dialect, 'roles')} set title = 'edited'")
    args = ["restore", "--store", str(tmp_path / "store"), "--backup", manifest.id]
    assert_refused(
        [*args, "--database", db, "--files", str(files)],
        2,
        [db, files, tmp_path / "store"],
        says="holds no files",
    )
    out = run_cli([*args, "--database", db])
    assert out.code == 0, out.stderr
    assert dump(db) == before


def test_a_large_file_streams_in_bounded_memory(make_database: MakeDb, tmp_path: Path) -> None:
    db = make_database("sqlite", "app")
    shape.build(db, app="prod")
    files = tmp_path / "storage"
    (files / "uploads").mkdir(parents=True)
    big = files / "uploads" / "video.mp4"
    size = 48 * 1024 * 1024
    with big.open("wb") as f:
        for i in range(size // (1 << 20)):
            f.write(os.urandom(16) * (1 << 16) if i % 2 else bytes([i % 251]) * (1 << 20))
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    store = FilesystemStore(tmp_path / "store")
    tracemalloc.start()
    try:
        manifest, _ = create_backup(db, store, environment="prod", files=DirectoryRoot(files))
        _, backup_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        big.write_bytes(b"truncated")
        restore(store, manifest.id, db, files=DirectoryRoot(files))
        _, restore_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert hashlib.sha256(big.read_bytes()).hexdigest() == digest
    assert max(backup_peak, restore_peak) < 16 * 1024 * 1024, (backup_peak, restore_peak)


def test_files_under_an_s3_prefix_come_back_with_the_rows(
    dialect: str,
    make_database: MakeDb,
    s3_server: RunningS3,
    s3_bucket: str,
    aws_env: None,
) -> None:
    """NocoBase's S3 storage: the files are objects below a prefix of a bucket; the
    backups go to another prefix of the same server."""
    client = s3_server.client()
    objects = {
        "app/uploads/2026/logo.png": PNG,
        "app/uploads/readme.txt": b"v1",
        "app/environment-variables/app": KEY,
        "application/other.txt": b"another prefix: neither backed up nor moved aside",
    }
    for key, body in objects.items():
        client.put_object(Bucket=s3_bucket, Key=key, Body=body)

    def bucket() -> dict[str, bytes]:
        listed = client.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
        return {
            o["Key"]: client.get_object(Bucket=s3_bucket, Key=o["Key"])["Body"].read()
            for o in listed
            if not o["Key"].startswith("backups/")
        }

    db = make_database(dialect, "app")
    shape.build(db, app="prod")
    rows_before, files_before = dump(db), bucket()
    store = f"s3://{s3_bucket}/backups"
    backup = run_cli(
        ["backup", "create", "--store", store, "--database", db, "--environment", "prod",
         "--files", f"s3://{s3_bucket}/app", "--format", "json"]
    )  # fmt: skip
    assert backup.code == 0, backup.stderr
    backup_id = json.loads(backup.stdout)["id"]
    assert json.loads(backup.stdout)["files"]["count"] == 2  # not the key, not application/

    execute(db, f"update {q(dialect, 'roles')} set title = 'edited'")
    client.put_object(Bucket=s3_bucket, Key="app/uploads/readme.txt", Body=b"v2")
    client.put_object(Bucket=s3_bucket, Key="app/uploads/new.bin", Body=b"new")
    client.delete_object(Bucket=s3_bucket, Key="app/uploads/2026/logo.png")
    client.put_object(Bucket=s3_bucket, Key="app/environment-variables/app", Body=b"rotated")
    out = run_cli(
        ["restore", "--store", store, "--backup", backup_id, "--database", db,
         "--files", f"s3://{s3_bucket}/app", "--format", "json"]
    )  # fmt: skip
    assert out.code == 0, out.stderr
    after = bucket()
    aside = {k: v for k, v in after.items() if "/.ferry-displaced/" in k}
    assert {k: v for k, v in after.items() if k not in aside} == {
        **files_before,
        "app/environment-variables/app": b"rotated",
    }
    assert sorted((k.rsplit("/", 1)[-1], v) for k, v in aside.items()) == [
        ("new.bin", b"new"),
        ("readme.txt", b"v2"),
    ]
    assert dump(db) == rows_before


def test_a_format_1_backup_still_restores_and_refuses_a_files_root(tmp_path: Path) -> None:
    """``tests/fixtures/compat/v1``: written by the release before format 2."""
    compat = tmp_path / "v1"
    shutil.copytree(COMPAT, compat)
    store = FilesystemStore(compat / "store")
    old = next(m for m in store.manifests() if m.environment == "plain")
    assert old.version == 1 and old.files is None
    copy = compat / "copy.db"
    shutil.copy(compat / "dev.db", copy)
    db, files = f"sqlite:///{copy}", tmp_path / "storage"
    make_files(files)
    execute(db, "update roles set title = 'edited'")
    args = ["restore", "--store", str(compat / "store"), "--backup", old.id, "--database", db]
    assert_refused([*args, "--files", str(files)], 2, [db, files, compat / "store"], "no files")
    out = run_cli(args)
    assert out.code == 0, out.stderr
    assert dump(db) == dump(f"sqlite:///{compat / 'dev.db'}")
