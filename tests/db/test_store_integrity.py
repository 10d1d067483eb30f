"""A backup store as hostile input: tampered manifests, traversal keys, wrong keys,
foreign targets, old archives. Every refusal goes through the real ``ferry`` command
and proves exit code, one line of error, and an unchanged target and store.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.backups import layout
from controller.backups.keyring import parse_keyring
from controller.backups.manifest import FORMAT_VERSION, Manifest, canonical
from controller.backups.manifest_reader import parse_manifest
from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup, restore, verify
from controller.errors import FerryError, InvalidInput
from tests.db.dbhelpers import dump
from tests.hostile import assert_refused, run_cli

COMPAT = Path(__file__).resolve().parents[1] / "fixtures" / "compat" / "v1"


def _sqlite(path: Path, rows: list[tuple[str, str]]) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("create table roles (name varchar(50) primary key, title varchar(100))")
        conn.executemany("insert into roles values (?, ?)", rows)
    conn.close()
    return f"sqlite:///{path}"


def _key_file(path: Path, key_id: str | None = None, seed: bytes | None = None) -> Path:
    key = hashlib.sha256(seed).digest() if seed else os.urandom(32)
    text = base64.b64encode(key).decode()
    if key_id:
        text = json.dumps({"current": key_id, "keys": {key_id: text}})
    path.write_text(text)
    return path


@dataclass
class World:
    """A store holding a signed and an unsigned backup of ``db``, and another database."""

    tmp: Path
    db: str
    other: str
    store: Path
    key: Path
    signed: Manifest
    unsigned: Manifest
    env: dict[str, str] = field(default_factory=dict)  # variables a case sets

    def manifest_path(self, m: Manifest) -> Path:
        return self.store / m.environment / m.id / layout.MANIFEST

    def member_path(self, m: Manifest) -> Path:
        return self.store / m.environment / m.id / m.members[0].key

    def watched(self) -> list[str | Path]:
        return [self.db, self.other, self.store]


@pytest.fixture
def world(tmp_path: Path) -> World:
    db = _sqlite(tmp_path / "app.db", [("admin", "Administrator"), ("member", "Member")])
    other = _sqlite(tmp_path / "other.db", [("guest", "Guest")])
    key = _key_file(tmp_path / "store.key", "k1")
    store = tmp_path / "store"
    signed, _ = create_backup(
        db, FilesystemStore(store, parse_keyring(key.read_text(), "k")), environment="app"
    )
    unsigned, _ = create_backup(db, FilesystemStore(store), environment="app")
    return World(tmp_path, db, other, store, key, signed, unsigned)


def _checksum(data: dict[str, Any]) -> str:
    body = {k: v for k, v in data.items() if k not in ("checksum", "signature")}
    return "sha256:" + hashlib.sha256(canonical(body)).hexdigest()


def _edit(path: Path, change: Callable[[dict[str, Any]], None], *, rechecksum: bool) -> None:
    """Edit a manifest as someone with store access would; ``rechecksum``: also fix
    the checksum (which needs no secret), so a deeper check has to catch it."""
    data = json.loads(path.read_text())
    change(data)
    if rechecksum:
        data["checksum"] = _checksum(data)
    path.write_text(json.dumps(data))


def _column(data: dict[str, Any], field: str, value: object) -> None:
    data["members"][0]["schema"]["columns"][1][field] = value


def _native(data: dict[str, Any]) -> None:
    data["members"][0]["schema"]["columns"][1]["type"]["native"] = (
        "TEXT, injected TEXT DEFAULT 'x' CHECK (1=1)"
    )


def _key(value: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["members"][0]["key"] = value

    return change


def _set(field: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data[field] = value

    return change


def _member_set(field: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["members"][0][field] = value

    return change


def _duplicate_member(data: dict[str, Any]) -> None:
    data["members"].append(dict(data["members"][0]))


# Tampering with a manifest: (change, fix the checksum too?, what the error says).
TAMPERED = [
    pytest.param(_native, False, "checksum", id="native-type-injection"),
    pytest.param(
        lambda d: _column(d, "default", "1); drop table x; --"),
        False,
        "checksum",
        id="column-default",
    ),
    pytest.param(lambda d: _column(d, "nullable", False), False, "checksum", id="nullable"),
    pytest.param(_member_set("rows", 99), False, "checksum", id="row-count"),
    pytest.param(_set("reason", "scheduled"), False, "checksum", id="reason"),
    pytest.param(_set("app_version", "0.0.1"), False, "checksum", id="app-version"),
    pytest.param(
        _set("created_at", "2020-01-01T00:00:00+00:00"), False, "checksum", id="created-at"
    ),
    pytest.param(
        _set("source", {"dialect": "sqlite", "database": "/x.db", "server": None}),
        False,
        "checksum",
        id="source-identity",
    ),
    pytest.param(_key("../../../etc/passwd"), True, "invalid", id="key-traversal"),
    pytest.param(_key("/etc/passwd"), True, "invalid", id="key-absolute"),
    pytest.param(_key("tables/../../other/x.arrow"), True, "invalid", id="key-dotdot-inside"),
    pytest.param(_key("post/release-1.json.zst"), True, "outside", id="key-outside-tables"),
    pytest.param(_key("tables\\..\\x"), True, "invalid", id="key-backslash"),
    pytest.param(_key("tables/"), True, "invalid", id="key-empty-name"),
    pytest.param(_set("surprise", 1), True, "unknown field", id="unknown-field"),
    pytest.param(_set("features", ["encryption"]), True, "encryption", id="unknown-feature"),
    pytest.param(_set("version", 3), True, "unknown backup format version", id="version-3"),
    pytest.param(_set("version", "2"), True, "unknown backup format version", id="version-str"),
    pytest.param(_set("version", True), True, "unknown backup format version", id="version-bool"),
    pytest.param(_member_set("sha256", "zz"), True, "sha256", id="digest-not-hex"),
    pytest.param(_member_set("bytes", -1), True, "non-negative", id="negative-bytes"),
    pytest.param(_member_set("rows", 1.5), True, "non-negative", id="float-rows"),
    pytest.param(_duplicate_member, True, "same table", id="duplicate-member"),
    pytest.param(_set("dialect", "oracle"), True, "dialect", id="unknown-dialect"),
    pytest.param(
        _member_set("schema", {"name": "roles", "columns": "x"}),
        True,
        "schema",
        id="schema-garbage",
    ),
    pytest.param(
        _member_set("schema", {"name": "users", "columns": []}),
        True,
        "table",
        id="schema-other-table",
    ),
    pytest.param(_set("members", {}), True, "members", id="members-not-list"),
]


@pytest.mark.parametrize("command", ["verify", "restore"])
@pytest.mark.parametrize(("change", "rechecksum", "says"), TAMPERED)
def test_tampered_unsigned_manifest_refused(
    world: World,
    command: str,
    change: Callable[[dict[str, Any]], None],
    rechecksum: bool,
    says: str,
) -> None:
    _edit(world.manifest_path(world.unsigned), change, rechecksum=rechecksum)
    assert_refused(_argv(world, command, world.unsigned.id), 2, world.watched(), says)


def _argv(w: World, command: str, backup_id: str, *extra: str) -> list[str]:
    if command == "verify":
        return ["backup", "verify", backup_id, "--store", str(w.store), *extra]
    return ["restore", "--store", str(w.store), "--backup", backup_id, "--database", w.db, *extra]


def _raw(content: bytes) -> Callable[[World], list[str]]:
    def case(w: World) -> list[str]:
        w.manifest_path(w.unsigned).write_bytes(content)
        return _argv(w, "restore", w.unsigned.id)

    return case


def _signed_edit(change: Callable[[dict[str, Any]], None]) -> Callable[[World], list[str]]:
    def case(w: World) -> list[str]:
        _edit(w.manifest_path(w.signed), change, rechecksum=True)
        return _argv(w, "restore", w.signed.id, "--store-key-file", str(w.key))

    return case


def _wrong_key(key_id: str | None) -> Callable[[World], list[str]]:
    def case(w: World) -> list[str]:
        other = _key_file(w.tmp / "other.key", key_id)
        return _argv(w, "verify", w.signed.id, "--store-key-file", str(other))

    return case


def _misplaced(w: World) -> list[str]:
    """A signed manifest copied over another backup's: valid, but not of this backup."""
    shutil.copy(w.manifest_path(w.signed), w.manifest_path(w.unsigned))
    return _argv(w, "restore", w.unsigned.id, "--store-key-file", str(w.key))


def _member_symlink(w: World) -> list[str]:
    secret = w.tmp / "secret.txt"
    secret.write_text("not for you")
    member = w.member_path(w.unsigned)
    member.unlink()
    member.symlink_to(secret)
    return _argv(w, "restore", w.unsigned.id)


def _env_symlink(w: World) -> list[str]:
    outside = w.tmp / "outside"
    shutil.copytree(w.store / "app", outside)
    (w.store / "evil").symlink_to(outside)
    return ["backup", "list", "--store", str(w.store), "--environment", "evil"]


def _key_file_text(text: str) -> Callable[[World], list[str]]:
    def case(w: World) -> list[str]:
        path = w.tmp / "bad.key"
        path.write_text(text)
        return _argv(w, "verify", w.unsigned.id, "--store-key-file", str(path))

    return case


def _foreign(w: World) -> list[str]:
    return [*_argv(w, "restore", w.unsigned.id)[:-1], w.other]


def _env_var_key(w: World) -> list[str]:
    w.env["FERRY_STORE_KEY_FILE"] = str(w.tmp / "missing.key")
    return _argv(w, "verify", w.unsigned.id)


# Other hostile inputs: (case, exit code, what the error says).
HOSTILE = [
    pytest.param(_raw(b"{not json"), 2, "not valid JSON", id="manifest-not-json"),
    pytest.param(_raw(b"\xff\xfe\x00garbage"), 2, "not UTF-8", id="manifest-not-utf8"),
    pytest.param(_raw(b"[" * 100000 + b"]" * 100000), 2, "manifest", id="manifest-deep"),
    pytest.param(
        _raw(b'{"format": "ferry-backup", "version": NaN}'), 2, "not valid JSON", id="manifest-nan"
    ),
    pytest.param(_raw(b'{"format": "other"}'), 2, "not a Ferry backup", id="manifest-foreign"),
    pytest.param(_raw(b""), 2, "not valid JSON", id="manifest-empty"),
    pytest.param(_signed_edit(_native), 2, "signature mismatch", id="signed-native-type"),
    pytest.param(_signed_edit(_set("reason", "manual ")), 2, "reason", id="signed-bad-reason"),
    pytest.param(
        _signed_edit(_member_set("rows", 7)), 2, "signature mismatch", id="signed-row-count"
    ),
    pytest.param(
        _signed_edit(lambda d: d["signature"].update(key_id="k2")),
        2,
        "does not hold",
        id="signed-unknown-key-id",
    ),
    pytest.param(
        _signed_edit(lambda d: d["signature"].update(alg="md5")),
        2,
        "algorithm",
        id="signed-other-algorithm",
    ),
    pytest.param(_wrong_key(None), 2, "does not hold", id="wrong-key-other-id"),
    pytest.param(_wrong_key("k1"), 2, "signature mismatch", id="wrong-key-same-id"),
    pytest.param(
        lambda w: _argv(w, "verify", w.signed.id),
        2,
        "configure the store key",
        id="signed-without-key",
    ),
    pytest.param(_misplaced, 2, "not of the backup", id="manifest-misplaced"),
    pytest.param(_member_symlink, 2, "outside the store", id="member-symlink"),
    pytest.param(_env_symlink, 2, "outside the store", id="environment-symlink"),
    pytest.param(_key_file_text("short"), 2, "32 bytes", id="key-too-short"),
    pytest.param(_key_file_text('{"current": "a", "keys": {}}'), 2, "keys", id="keyring-empty"),
    pytest.param(
        _key_file_text('{"current": "b", "keys": {"a": "' + "A" * 43 + '="}}'),
        2,
        "current",
        id="keyring-current-missing",
    ),
    pytest.param(_key_file_text("{"), 2, "not valid JSON", id="keyring-not-json"),
    pytest.param(
        lambda w: _argv(w, "verify", w.unsigned.id, "--store-key-file", str(w.tmp / "nope")),
        2,
        "cannot be read",
        id="key-file-missing",
    ),
    pytest.param(_env_var_key, 2, "cannot be read", id="key-file-env-missing"),
    pytest.param(_foreign, 2, "was taken from", id="restore-foreign-database"),
    pytest.param(
        lambda w: ["backup", "list", "--store", str(w.store), "--environment", "../.."],
        2,
        "invalid environment",
        id="list-env-traversal",
    ),
    pytest.param(
        lambda w: ["backup", "list", "--store", str(w.store), "--environment", "/etc"],
        2,
        "invalid environment",
        id="list-env-absolute",
    ),
    pytest.param(
        lambda w: ["backup", "show", "../../etc", "--store", str(w.store)],
        2,
        "invalid backup ID",
        id="show-id-traversal",
    ),
    pytest.param(
        lambda w: _argv(w, "restore", "../app/" + w.unsigned.id),
        2,
        "invalid backup ID",
        id="restore-id-traversal",
    ),
    pytest.param(lambda w: _argv(w, "verify", "."), 2, "invalid backup ID", id="verify-id-dot"),
]


@pytest.mark.parametrize(("case", "code", "says"), HOSTILE)
def test_hostile_store_input_refused(
    world: World,
    case: Callable[[World], list[str]],
    code: int,
    says: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FERRY_STORE_KEY_FILE", raising=False)
    argv = case(world)
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    assert_refused(argv, code, world.watched(), says)


# -- what must still work --------------------------------------------------------------


def test_signed_backup_verifies_and_restores_in_place(world: World) -> None:
    out = run_cli(
        [
            "backup",
            "verify",
            world.signed.id,
            "--store",
            str(world.store),
            "--store-key-file",
            str(world.key),
        ]
    )
    assert out.code == 0 and "signed (key k1)" in out.stdout
    listing = run_cli(
        [
            "backup",
            "list",
            "--store",
            str(world.store),
            "--store-key-file",
            str(world.key),
            "--format",
            "json",
        ]
    )
    assert listing.code == 0
    states = {m["id"]: m["signature"] for m in json.loads(listing.stdout)}
    assert states == {world.signed.id: {"keyId": "k1"}, world.unsigned.id: "unsigned"}
    before = dump(world.db)
    out = run_cli(_argv(world, "restore", world.signed.id, "--store-key-file", str(world.key)))
    assert out.code == 0, out.stderr
    assert dump(world.db) == before


def test_unsigned_backup_restores_with_a_key_configured(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Documented choice: backups written before the store had a key stay restorable,
    and say they are unsigned."""
    monkeypatch.setenv("FERRY_STORE_KEY_FILE", str(world.key))
    out = run_cli(["backup", "show", world.unsigned.id, "--store", str(world.store)])
    assert out.code == 0 and "unsigned" in out.stdout
    out = run_cli(_argv(world, "restore", world.unsigned.id))
    assert out.code == 0 and "(unsigned)" in out.stdout, out.stderr


def test_rotated_keyring_still_reads_older_keys(world: World) -> None:
    old = json.loads(world.key.read_text())
    rotated = world.tmp / "rotated.key"
    new = base64.b64encode(os.urandom(32)).decode()
    rotated.write_text(json.dumps({"current": "k2", "keys": {**old["keys"], "k2": new}}))
    keyring = parse_keyring(rotated.read_text(), "rotated")
    store = FilesystemStore(world.store, keyring)
    assert store.manifest(world.signed.id).signed_by == "k1"
    newer, _ = create_backup(world.db, store, environment="app")
    assert newer.signed_by == "k2" and store.manifest(newer.id).signed_by == "k2"


def test_restore_into_another_database_needs_force(world: World) -> None:
    out = run_cli([*_argv(world, "restore", world.unsigned.id)[:-1], world.other, "--force"])
    assert out.code == 0, out.stderr
    assert dump(world.other) == dump(world.db)


def test_restore_onto_an_empty_database_needs_no_force(world: World, tmp_path: Path) -> None:
    empty = f"sqlite:///{tmp_path}/fresh.db"
    sqlite3.connect(tmp_path / "fresh.db").close()
    result = restore(FilesystemStore(world.store), world.unsigned.id, empty)
    assert dump(empty) == dump(world.db) and result.rows == 2


def test_foreign_database_refused_on_servers(
    dialect: str, make_database: Callable[..., str], tmp_path: Path
) -> None:
    """Two databases of one server differ by name; the identity survives a reconnect."""
    a, b = make_database(dialect, "a"), make_database(dialect, "b")
    from tests.db.dbhelpers import execute

    for url in (a, b):
        execute(url, "create table t (id integer primary key)", "insert into t values (1)")
    store = FilesystemStore(tmp_path / "s")
    manifest, _ = create_backup(a, store, environment="a")
    assert manifest.source is not None and manifest.source.dialect == dialect
    with pytest.raises(InvalidInput, match="was taken from") as err:
        restore(store, manifest.id, b)
    assert err.value.reason == "ForeignDatabase"
    assert restore(store, manifest.id, a).rows == 1  # its own database: no question asked


# -- extras (post-migration states) ----------------------------------------------------


def test_extras_are_signed_and_refused_by_name(world: World) -> None:
    keyring = parse_keyring(world.key.read_text(), "k")
    store = FilesystemStore(world.store, keyring)
    key = layout.post_state_key("release-1")
    assert store.get_extra(world.signed, key) is None  # absent: None, nothing else
    store.put_extra(world.signed, key, b"payload")
    assert store.get_extra(world.signed, key) == b"payload"
    path = world.store / "app" / world.signed.id / key
    sealed = path.read_bytes()
    path.write_bytes(sealed.replace(b"payload", b"PAYLOAD"))
    with pytest.raises(InvalidInput) as err:
        store.get_extra(world.signed, key)
    assert err.value.reason == "SignatureMismatch" and key in str(err.value)
    path.write_bytes(b"payload")  # replaced by someone without the key
    with pytest.raises(InvalidInput) as err:
        store.get_extra(world.signed, key)
    assert err.value.reason == "SignatureMissing"
    # A sealed state moved to another key (another migration) is refused too.
    path.write_bytes(sealed)
    other = world.store / "app" / world.signed.id / layout.post_state_key("release-2")
    other.write_bytes(sealed)
    with pytest.raises(InvalidInput) as err:
        store.get_extra(world.signed, layout.post_state_key("release-2"))
    assert err.value.reason == "SignatureMismatch"
    with pytest.raises(InvalidInput):
        store.get_extra(world.signed, "post/../../../x")


def test_tampered_post_state_refuses_rollback(tmp_path: Path) -> None:
    dev = _sqlite(tmp_path / "dev.db", [("admin", "Administrator"), ("guest", "Guest")])
    target = _sqlite(tmp_path / "target.db", [("admin", "Admin (old)")])
    rules = tmp_path / "rules.yaml"
    rules.write_text("user: overwrite\n")
    key, store = _key_file(tmp_path / "k", "k1"), tmp_path / "store"
    out = run_cli(
        [
            "migrate",
            "--source",
            dev,
            "--target",
            target,
            "--profile",
            "generic",
            "--rules",
            str(rules),
            "--id",
            "release-1",
            "--backup-store",
            str(store),
            "--store-key-file",
            str(key),
            "--environment",
            "t",
        ]
    )
    assert out.code == 0, out.stderr
    (post,) = store.glob("t/*/post/release-1.json.zst")
    sealed = post.read_bytes()
    header, payload = sealed.split(b"\n", 2)[1:]
    digests = json.loads(zstandard.ZstdDecompressor().decompress(payload, max_output_size=1 << 24))
    assert json.loads(header)["signature"]["key_id"] == "k1" and digests
    post.write_bytes(sealed[: len(sealed) - len(payload)] + zstandard.compress(b"{}"))
    argv = [
        "rollback",
        "--store",
        str(store),
        "--store-key-file",
        str(key),
        "--migration",
        "release-1",
        "--database",
        target,
    ]
    assert_refused(argv, 2, [target, store], "signature mismatch")


# -- interrupted writers ---------------------------------------------------------------


def test_debris_of_a_killed_writer_is_removed_by_the_next(world: World) -> None:
    """A writer killed outright leaves a partial backup; the next writer removes it
    (its owner process is gone), and a partial of a live writer is left alone."""
    dead = world.store / "app" / ".partial-20260101T000000000Z-dead00"
    (dead / "tables").mkdir(parents=True)
    (dead / "tables" / "0000-roles.arrow").write_bytes(b"half")
    record = json.dumps({"host": os.uname().nodename, "pid": 2**22 + 7, "start": "1"})
    (dead / ".writer").write_text(record)
    alive = world.store / "app" / ".partial-20260101T000000000Z-live00"
    alive.mkdir()
    from controller.backups.writers import owner_record

    (alive / ".writer").write_bytes(owner_record())
    old = world.store / "app" / ".partial-20200101T000000000Z-old000"
    old.mkdir()
    stale = time.time() - 7 * 3600
    os.utime(old, (stale, stale))
    create_backup(world.db, FilesystemStore(world.store), environment="app")
    assert not dead.exists() and not old.exists() and alive.exists()


# -- compatibility: archives written by the release before format 2 --------------------


@pytest.fixture
def compat(tmp_path: Path) -> Path:
    out = tmp_path / "v1"
    shutil.copytree(COMPAT, out)
    return out


def test_format_1_backups_verify_unsigned_and_restore(
    compat: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERRY_STORE_KEY_FILE", str(_key_file(compat / "key", "k1")))
    store = FilesystemStore(compat / "store")
    manifests = {m.environment: m for m in store.manifests()}
    assert {m.version for m in manifests.values()} == {1}
    for manifest in manifests.values():
        out = run_cli(["backup", "verify", manifest.id, "--store", str(compat / "store")])
        assert out.code == 0 and "unsigned" in out.stdout, out.stderr
        assert manifest.source is None and manifest.signed_by is None
    copy = f"sqlite:///{compat / 'copy.db'}"
    shutil.copy(compat / "dev.db", compat / "copy.db")
    with sqlite3.connect(compat / "copy.db") as conn:
        conn.execute("update roles set title = 'edited'")
    conn.close()
    out = run_cli(
        [
            "restore",
            "--store",
            str(compat / "store"),
            "--backup",
            manifests["plain"].id,
            "--database",
            copy,
        ]
    )
    assert out.code == 0, out.stderr
    assert dump(copy) == dump(f"sqlite:///{compat / 'dev.db'}")
    target = f"sqlite:///{compat / 'target.db'}"
    assert verify(store, manifests["target"].id)[1] == []
    restore(store, manifests["target"].id, target, tables=["roles"], whole=False)
    rows = sqlite3.connect(compat / "target.db").execute("select * from roles order by 1")
    assert rows.fetchall() == [("admin", "Admin (old)"), ("member", "Member")]


def test_format_1_post_state_reads_as_unsigned_with_a_key(compat: Path) -> None:
    keyring = parse_keyring(_key_file(compat / "key", "k1").read_text(), "k")
    store = FilesystemStore(compat / "store", keyring)
    (manifest,) = store.manifests("target")
    data = store.get_extra(manifest, layout.post_state_key("release-1"))
    assert data is not None
    assert json.loads(zstandard.ZstdDecompressor().decompress(data))


def test_format_1_manifest_edit_still_caught_by_its_checksum(compat: Path) -> None:
    (path,) = (compat / "store" / "plain").glob("*/manifest.json")
    _edit(path, _member_set("sha256", "0" * 64), rechecksum=False)
    with pytest.raises(InvalidInput, match="checksum"):
        FilesystemStore(compat / "store").manifests("plain")


# -- fuzz ------------------------------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


def _valid_manifest_json() -> dict[str, Any]:
    """A format-2 manifest (the format-1 fixture's content, written by this Ferry)."""
    (path,) = (COMPAT / "store" / "plain").glob("*/manifest.json")
    old = parse_manifest(path.read_bytes(), "fixture")
    data: dict[str, Any] = json.loads(replace(old, version=FORMAT_VERSION).to_json())
    return data


def _mutations() -> st.SearchStrategy[bytes]:
    """One field of a valid manifest replaced by any JSON value; with ``fix`` the
    checksum is made to match, so the field checks behind it are reached."""
    base = _valid_manifest_json()
    member = base["members"][0]
    paths = st.sampled_from(
        [(k,) for k in base]
        + [("members", 0, k) for k in member]
        + [("members", 0, "schema", k) for k in member["schema"]]
        + [("members", 0, "schema", "columns", 0, k) for k in ("name", "type", "default")]
        + [("members", 0, "schema", "columns", 0, "type", k) for k in ("kind", "native")]
    )

    def mutate(args: tuple[tuple[Any, ...], Any, bool]) -> bytes:
        path, value, fix = args
        data = json.loads(json.dumps(base))
        node = data
        for step in path[:-1]:
            node = node[step]
        node[path[-1]] = value
        if fix:
            with contextlib.suppress(ValueError):  # a value canonical JSON refuses (inf)
                data["checksum"] = _checksum(data)
        return json.dumps(data).encode()

    return st.tuples(paths, _json, st.booleans()).map(mutate)


def test_fuzz_base_manifest_is_valid() -> None:
    """The fuzzer mutates a manifest the reader accepts, so it explores past the door."""
    data = _valid_manifest_json()
    assert parse_manifest(json.dumps(data).encode(), "base").version == FORMAT_VERSION


@settings(
    max_examples=1500,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.one_of(st.binary(max_size=300), _json.map(lambda v: json.dumps(v).encode()), _mutations())
)
def test_fuzz_manifest_reader_only_raises_ferry_errors(raw: bytes) -> None:
    """Whatever the bytes, the reader returns a manifest or raises a Ferry error."""
    started = time.monotonic()
    try:
        manifest = parse_manifest(raw, "fuzz")
    except FerryError:
        pass
    else:
        assert manifest.members is not None
    assert time.monotonic() - started < 2


# -- the operator: the Environment's store key comes from a Secret ---------------------


class _Secrets:
    """The one Cluster call the store needs; anything else is a test failure."""

    def __init__(self, data: dict[tuple[str, str], str]) -> None:
        self.data = data

    def secret_value(self, namespace: str, name: str, key: str) -> str:
        if (name, key) not in self.data:
            raise InvalidInput(f"Secret {namespace}/{name} has no key {key!r}")
        return self.data[(name, key)]


def _environment(store: Path) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": "prod", "namespace": "ns"},
        "spec": {
            "stage": "production",
            "profile": "generic",
            "database": {"dialect": "sqlite", "url": "sqlite:///x.db"},
            "backups": {
                "store": {
                    "path": str(store),
                    "keyFrom": {"secretKeyRef": {"name": "store-key", "key": "keyring"}},
                }
            },
        },
    }


def test_environment_store_is_signed_with_its_secret(world: World) -> None:
    from controller.commands.environments import resolve

    cluster = _Secrets({("store-key", "keyring"): world.key.read_text()})
    env = resolve(_environment(world.store), cluster)  # type: ignore[arg-type]
    assert env.store is not None and env.store.keyring is not None
    assert env.store.manifest(world.signed.id).signed_by == "k1"
    manifest, _ = create_backup(world.db, env.store, environment="prod")
    assert manifest.signed_by == "k1"
    with pytest.raises(InvalidInput, match="configure the store key"):
        FilesystemStore(world.store).manifest(manifest.id)


def test_environment_store_key_errors_name_the_secret_not_the_key(world: World) -> None:
    from controller.commands.environments import resolve

    bad = "c2VjcmV0LWJ1dC10b28tc2hvcnQ="
    cluster = _Secrets({("store-key", "keyring"): bad})
    with pytest.raises(InvalidInput) as err:
        resolve(_environment(world.store), cluster)  # type: ignore[arg-type]
    assert "Secret ns/store-key key keyring" in str(err.value) and bad not in str(err.value)


@pytest.mark.parametrize("where", ["under-a-file", "proc"])
def test_a_store_that_cannot_take_a_backup_is_refused_in_one_line(
    tmp_path: Path, where: str
) -> None:
    database = tmp_path / "app.db"
    sqlite3.connect(database).execute("create table t (id integer primary key)").connection.close()
    (tmp_path / "file").write_text("x")
    store = tmp_path / "file" / "store" if where == "under-a-file" else Path("/proc/ferry-store")
    assert_refused(
        ["backup", "create", "--database", f"sqlite:///{database}", "--store", str(store)],
        2,
        watched=[database, tmp_path / "file"],
        says="cannot take a backup",
    )
