"""Hostile archives and hostile files roots: nothing is ever written outside the root.

Whoever can write to a store can write a manifest (and, unsigned, recompute its
checksum); whoever can write to the files volume can plant symlinks. Each case runs the
real ``ferry`` command and proves exit 2, one line of error naming the culprit, and
the database, the root, the store and the directory outside the root unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.api.environment import parse_environment
from controller.api.environment_files import FilesSpec, S3Files
from controller.backups.manifest import canonical
from controller.backups.store import FilesystemStore
from controller.errors import InvalidInput
from tests.db.test_backup_files import backup_cli, make_files, tree
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_refused, run_cli

pytestmark = pytest.mark.db
MakeDb = Callable[..., str]
Edit = Callable[[list[dict[str, Any]]], None]


class Setup:
    def __init__(self, make_database: MakeDb, tmp_path: Path) -> None:
        self.db = make_database("sqlite", "app")
        shape.build(self.db, app="prod")
        self.files, self.store = tmp_path / "storage", tmp_path / "store"
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        (self.outside / "victim.txt").write_text("must stay")
        make_files(self.files)
        self.backup_id = backup_cli(self.store, self.db, self.files)
        self.manifest_path = self.store / "prod" / self.backup_id / "manifest.json"

    def restore_args(self) -> list[str]:
        return [
            "restore", "--store", str(self.store), "--backup", self.backup_id,
            "--database", self.db, "--files", str(self.files),
        ]  # fmt: skip

    @property
    def watched(self) -> list[str | Path]:
        return [self.db, self.files, self.store, self.outside]

    def rewrite(self, edit: Edit) -> None:
        """Edit the file entries and recompute the checksum, as a store writer can."""
        data = json.loads(self.manifest_path.read_text())
        edit(data["files"]["entries"])
        body = {k: v for k, v in data.items() if k not in ("checksum", "signature")}
        data["checksum"] = "sha256:" + hashlib.sha256(canonical(body)).hexdigest()
        self.manifest_path.write_text(json.dumps(data))


@pytest.fixture
def setup(make_database: MakeDb, tmp_path: Path) -> Setup:
    return Setup(make_database, tmp_path)


def _path(value: str) -> Edit:
    def edit(entries: list[dict[str, Any]]) -> None:
        entries[0]["path"] = value

    return edit


def _key(value: str) -> Edit:
    def edit(entries: list[dict[str, Any]]) -> None:
        entries[0]["key"] = value

    return edit


def _same_path(entries: list[dict[str, Any]]) -> None:
    entries[1]["path"] = entries[0]["path"]


def _below_a_file(entries: list[dict[str, Any]]) -> None:
    entries[1]["path"] = entries[0]["path"] + "/inside"


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        pytest.param(_path("../outside/victim.txt"), "../outside/victim.txt", id="dotdot"),
        pytest.param(
            _path("uploads/../../outside/x"), "uploads/../../outside/x", id="inner-dotdot"
        ),
        pytest.param(_path("/tmp/ferry-absolute"), "/tmp/ferry-absolute", id="absolute"),
        pytest.param(_path("uploads//x"), "uploads//x", id="empty-part"),
        pytest.param(_path("./uploads/x"), "./uploads/x", id="dot-part"),
        pytest.param(_path("uploads/x\n"), "uploads/x", id="control-character"),
        pytest.param(_path(""), "path ''", id="empty"),
        pytest.param(_path("uploads/" + "n" * 256), "n" * 64, id="name-too-long"),
        pytest.param(_key("files/../../x"), "files/../../x", id="key-dotdot"),
        pytest.param(_key("tables/0000-roles.arrow"), "tables/0000-roles.arrow", id="key-table"),
        pytest.param(_key("/etc/passwd"), "/etc/passwd", id="key-absolute"),
        pytest.param(_same_path, "same path", id="duplicate-path"),
        pytest.param(_below_a_file, "below another file", id="path-below-a-file"),
    ],
)
def test_hostile_manifest_paths_are_refused_by_name(setup: Setup, edit: Edit, says: str) -> None:
    setup.rewrite(edit)
    assert_refused(setup.restore_args(), 2, setup.watched, says=says)
    assert_refused(
        ["backup", "verify", "--store", str(setup.store), setup.backup_id],
        2,
        setup.watched,
        says=says,
    )


def test_a_symlinked_directory_in_the_root_is_refused(setup: Setup) -> None:
    uploads = setup.files / "uploads"
    (setup.files / "real-uploads").mkdir()
    uploads.rename(setup.files / "real-uploads" / "moved")
    uploads.symlink_to(setup.outside, target_is_directory=True)
    assert_refused(setup.restore_args(), 2, setup.watched, says="symlink 'uploads'")
    assert tree(setup.outside) == {"victim.txt": b"must stay"}


def test_a_symlinked_file_in_the_root_is_refused(setup: Setup) -> None:
    notes = setup.files / "uploads" / "notes with spaces é.txt"
    notes.unlink()
    notes.symlink_to(setup.outside / "victim.txt")
    assert_refused(setup.restore_args(), 2, setup.watched, says="notes with spaces")
    assert (setup.outside / "victim.txt").read_text() == "must stay"


def test_symlinks_in_the_root_are_not_followed_by_a_backup(
    make_database: MakeDb, tmp_path: Path
) -> None:
    db = make_database("sqlite", "app")
    shape.build(db, app="prod")
    files, outside = tmp_path / "storage", tmp_path / "outside"
    make_files(files)
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"outside secret")
    (files / "uploads" / "link.txt").symlink_to(outside / "secret.txt")
    (files / "uploads" / "linked-dir").symlink_to(outside, target_is_directory=True)
    backup_id = backup_cli(tmp_path / "store", db, files)
    section = FilesystemStore(tmp_path / "store").manifest(backup_id).files
    assert section is not None
    assert not [e.path for e in section.entries if "link" in e.path]
    assert section.skipped == ("uploads/link.txt", "uploads/linked-dir")  # said, not hidden
    stored = [p.read_bytes() for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert not any(b"outside secret" in blob for blob in stored)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        pytest.param(["--files", "s3://"], "s3://bucket/prefix", id="s3-no-bucket"),
        pytest.param(["--files", "s3://b/../x"], "s3://bucket/prefix", id="s3-dotdot"),
        pytest.param(["--files", "ftp://host/x"], "ftp://host/x", id="other-scheme"),
        pytest.param(["--files-exclude", "tmp"], "needs --files", id="exclude-alone"),
        pytest.param(["--files", "/x", "--environment-file", "/y"], "not allowed", id="both"),
        pytest.param(["--files", "/nonexistent/ferry-files"], "cannot be opened", id="no-root"),
        pytest.param(["--environment-file", "/nonexistent.yaml"], "nonexistent", id="no-env"),
    ],
)
def test_hostile_files_arguments_are_refused(setup: Setup, extra: list[str], says: str) -> None:
    args = [a for a in setup.restore_args() if a not in ("--files", str(setup.files))]
    assert_refused([*args, *extra], 2, setup.watched, says=says)


@pytest.mark.parametrize("root", ["missing", "victim.txt"], ids=["no-root", "root-is-a-file"])
def test_a_backup_of_an_unusable_root_is_refused_before_any_table(
    setup: Setup, tmp_path: Path, root: str
) -> None:
    """Refused before a table is written: no partial backup, not even its directory."""
    fresh = tmp_path / "fresh-store"
    args = ["backup", "create", "--store", str(fresh), "--database", setup.db,
            "--files", str(setup.outside / root)]  # fmt: skip
    assert_refused(args, 2, [*setup.watched, fresh], says="cannot be opened")


def test_an_environment_file_names_the_root(setup: Setup, tmp_path: Path) -> None:
    env = tmp_path / "env.yaml"
    env.write_text(
        "apiVersion: ferry.dev/v1alpha1\nkind: Environment\nmetadata: {name: prod}\n"
        f"spec:\n  stage: production\n  database: {{dialect: sqlite, url: '{setup.db}'}}\n"
        f"  files: {{path: '{setup.files}', exclude: [tmp]}}\n"
    )
    before = tree(setup.files)
    (setup.files / "uploads" / "empty.bin").write_bytes(b"changed")
    (setup.files / "tmp" / "cache.bin").write_bytes(b"kept")
    args = [a for a in setup.restore_args() if a not in ("--files", str(setup.files))]
    out = run_cli([*args, "--environment-file", str(env)])
    assert out.code == 0, out.stderr
    assert tree(setup.files) == {**before, "tmp/cache.bin": b"kept"}


def test_a_member_replaced_by_a_symlink_is_refused_by_name(setup: Setup) -> None:
    manifest = FilesystemStore(setup.store).manifest(setup.backup_id)
    assert manifest.files is not None
    entry = manifest.files.entries[0]
    member = setup.store / "prod" / setup.backup_id / entry.key
    (setup.outside / "member").write_bytes(member.read_bytes())
    member.unlink()
    member.symlink_to(setup.outside / "member")
    assert_refused(setup.restore_args(), 2, setup.watched, says=entry.key)


def _env(files: object) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": "Environment",
        "metadata": {"name": "prod"},
        "spec": {
            "stage": "production",
            "database": {"dialect": "sqlite", "url": "sqlite:///x.db"},
            "files": files,
        },
    }


@pytest.mark.parametrize(
    ("files", "says"),
    [
        pytest.param({"path": "relative/dir"}, "absolute path", id="relative"),
        pytest.param({"path": "/srv/../etc"}, "without '..'", id="dotdot"),
        pytest.param({"path": "/a", "s3": {"bucket": "b"}}, "path", id="both"),
        pytest.param({}, "path", id="neither"),
        pytest.param({"s3": {"bucket": "b", "prefix": "a/../b"}}, "prefix", id="s3-dotdot"),
        pytest.param({"path": "/a", "exclude": "tmp"}, "exclude", id="exclude-not-a-list"),
        pytest.param({"path": "/a", "exclude": ["x", "x"]}, "twice", id="exclude-twice"),
        pytest.param({"path": "/a", "other": 1}, "other", id="unknown-field"),
    ],
)
def test_malformed_spec_files_is_refused(files: object, says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_environment(_env(files))
    assert says in caught.value.message


def test_spec_files_is_read() -> None:
    spec = parse_environment(_env({"path": "/var/lib/nocobase/storage", "exclude": ["logs"]}))
    assert spec.files == FilesSpec(path="/var/lib/nocobase/storage", exclude=("logs",))
    s3 = parse_environment(_env({"s3": {"bucket": "up", "prefix": "p/", "credentialsSecret": "c"}}))
    assert s3.files is not None and s3.files.s3 == S3Files("up", "p/", credentials_secret="c")
