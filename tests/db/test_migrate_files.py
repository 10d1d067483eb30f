"""``ferry migrate --files``: the CLI's pre-migration backup holds the target's files.

The operator's Migration backs up its Environment's ``spec.files`` with the rows; the
command line does the same with ``--files ROOT`` or ``--environment-file FILE`` (the
options of ``ferry backup create`` and ``ferry restore``). These tests prove, on SQLite,
PostgreSQL and MariaDB, that restoring such a backup brings rows and files back
together; that a root that cannot be used is refused before anything is touched (exit
2, one line, the target, the store and the files unchanged); and that symlinks in the
root are not followed into the backup.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.backups.store import FilesystemStore
from tests.db.dbhelpers import dump
from tests.db.test_backup_files import make_files, tree
from tests.db.test_promotion import VARS
from tests.fixtures import nocobase_shape as shape
from tests.harness.s3server import RunningS3
from tests.hostile import assert_refused, run_cli

pytestmark = pytest.mark.db
MakeDb = Callable[..., str]


class Release:
    """A development database with a builder's changes, and a target with its files."""

    def __init__(self, dialect: str, make_database: MakeDb, tmp_path: Path) -> None:
        self.dev, self.pre = make_database(dialect, "dev"), make_database(dialect, "pre")
        shape.build(self.dev, app="dev", seed=1)
        shape.builder_changes(self.dev)
        shape.build(self.pre, app="pre", seed=1, variables=VARS)
        self.files, self.store = tmp_path / "storage", tmp_path / "store"
        make_files(self.files)
        self.outside = tmp_path / "outside"
        self.outside.mkdir()
        (self.outside / "secret.txt").write_bytes(b"outside secret")

    def migrate_args(self, *extra: str) -> list[str]:
        return [
            "migrate", "--source", self.dev, "--target", self.pre, "--id", "r1",
            "--backup-store", str(self.store), "--environment", "prod", "--format", "json",
            *extra,
        ]  # fmt: skip

    def migrate(self, *extra: str) -> dict[str, Any]:
        out = run_cli(self.migrate_args(*extra))
        assert out.code == 0, out.stderr
        result: dict[str, Any] = json.loads(out.stdout)
        assert result["status"] == "succeeded", result
        return result

    @property
    def watched(self) -> list[str | Path]:
        return [self.dev, self.pre, self.store, self.files, self.outside]


@pytest.fixture
def release(dialect: str, make_database: MakeDb, tmp_path: Path) -> Release:
    return Release(dialect, make_database, tmp_path)


@pytest.fixture
def sqlite_release(make_database: MakeDb, tmp_path: Path) -> Release:
    return Release("sqlite", make_database, tmp_path)


def _application_rows(url: str) -> dict[str, Any]:
    """The target's tables but Ferry's ledger (a restore leaves the ledger as it is)."""
    return {t: r for t, r in dump(url).items() if not t.startswith("ferry_")}


def test_restoring_a_cli_pre_migration_backup_brings_rows_and_files_back(
    release: Release,
) -> None:
    rows_before, files_before = _application_rows(release.pre), tree(release.files)
    backup_id = release.migrate("--files", str(release.files), "--files-exclude", "tmp")["backupId"]

    manifest = FilesystemStore(release.store).manifest(backup_id)
    assert manifest.reason == "pre-migration" and manifest.files is not None
    assert manifest.files.consistency == "copied-after-snapshot"
    assert [e.path for e in manifest.files.entries] == [
        "uploads/2026/11/logo.png",
        "uploads/empty.bin",
        "uploads/notes with spaces é.txt",
    ]  # neither the key directories nor the excluded tmp/
    assert _application_rows(release.pre) != rows_before  # the release was applied

    # after the release, the application edits a file and removes another
    (release.files / "uploads" / "notes with spaces é.txt").write_text("notes v2\n")
    (release.files / "uploads" / "empty.bin").unlink()
    out = run_cli(
        ["restore", "--store", str(release.store), "--backup", backup_id,
         "--database", release.pre, "--files", str(release.files), "--format", "json"]
    )  # fmt: skip
    assert out.code == 0, out.stderr
    put = json.loads(out.stdout)["files"]
    assert (put["written"], put["unchanged"]) == (2, 1)
    assert _application_rows(release.pre) == rows_before
    assert tree(release.files) == files_before


def test_an_environment_file_names_the_files_of_the_backup(
    sqlite_release: Release, tmp_path: Path
) -> None:
    release = sqlite_release
    env = tmp_path / "env.yaml"
    env.write_text(
        "apiVersion: ferry.dev/v1alpha1\nkind: Environment\nmetadata: {name: prod}\n"
        f"spec:\n  stage: production\n  database: {{dialect: sqlite, url: '{release.pre}'}}\n"
        f"  files: {{path: '{release.files}', exclude: [tmp, '*.bin']}}\n"
    )
    backup_id = release.migrate("--environment-file", str(env), "--quiesced")["backupId"]
    section = FilesystemStore(release.store).manifest(backup_id).files
    assert section is not None and section.consistency == "quiesced"
    assert [e.path for e in section.entries] == [
        "uploads/2026/11/logo.png",
        "uploads/notes with spaces é.txt",
    ]


def test_a_rehearsed_release_backs_the_files_up_once_for_the_real_apply(
    sqlite_release: Release, tmp_path: Path
) -> None:
    """The rehearsal's copy is of rows only (its backup holds no file, nothing is
    written to the root); the real apply's pre-migration backup holds the files."""
    release = sqlite_release
    (tmp_path / "scratch").mkdir()
    before = tree(release.files)
    result = release.migrate(
        "--files",
        str(release.files),
        "--rehearse",
        "--scratch",
        f"sqlite:///{tmp_path / 'scratch'}",
    )
    store = FilesystemStore(release.store)
    rehearsal = store.manifest(result["rehearsal"]["backupId"])
    applied = store.manifest(result["backupId"])
    assert (rehearsal.reason, rehearsal.files) == ("rehearsal", None)
    assert applied.reason == "pre-migration" and applied.files is not None
    assert len(applied.files.entries) == 4  # with tmp/cache.bin: nothing excluded here
    assert tree(release.files) == before


def test_symlinks_in_the_root_are_not_followed_into_the_backup(sqlite_release: Release) -> None:
    release = sqlite_release
    (release.files / "uploads" / "link.txt").symlink_to(release.outside / "secret.txt")
    (release.files / "uploads" / "linked-dir").symlink_to(release.outside, target_is_directory=True)
    backup_id = release.migrate("--files", str(release.files))["backupId"]
    section = FilesystemStore(release.store).manifest(backup_id).files
    assert section is not None
    assert section.skipped == ("uploads/link.txt", "uploads/linked-dir")  # said, not hidden
    stored = [p.read_bytes() for p in release.store.rglob("*") if p.is_file()]
    assert not any(b"outside secret" in blob for blob in stored)


def test_files_under_an_s3_prefix_and_a_bucket_that_is_not_there(
    sqlite_release: Release,
    s3_server: RunningS3,
    s3_bucket: str,
    aws_env: None,
) -> None:
    """An S3 files root goes into the pre-migration backup like a directory; a bucket
    that does not exist is refused before the target is touched (S3Root.probe)."""
    release = sqlite_release
    s3_server.client().put_object(Bucket=s3_bucket, Key="app/uploads/a.txt", Body=b"from s3")
    missing = f"s3://{s3_bucket}-missing/app"
    assert_refused(release.migrate_args("--files", missing), 2, release.watched, says=missing)
    backup_id = release.migrate("--files", f"s3://{s3_bucket}/app")["backupId"]
    section = FilesystemStore(release.store).manifest(backup_id).files
    assert section is not None and [e.path for e in section.entries] == ["uploads/a.txt"]


def _not_a_directory(release: Release) -> list[str]:
    return ["--files", str(release.outside / "secret.txt")]


def _missing(release: Release) -> list[str]:
    return ["--files", str(release.outside / "missing")]


def _with_skip_backup(release: Release) -> list[str]:
    return ["--files", str(release.files), "--skip-backup"]


def _environment_without_files(release: Release) -> list[str]:
    env = release.outside.parent / "env.yaml"
    env.write_text(
        "apiVersion: ferry.dev/v1alpha1\nkind: Environment\nmetadata: {name: prod}\n"
        f"spec:\n  stage: production\n  database: {{dialect: sqlite, url: '{release.pre}'}}\n"
    )
    return ["--environment-file", str(env)]


def _fixed(*extra: str) -> Callable[[Release], list[str]]:
    return lambda release: list(extra)


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        pytest.param(_missing, "cannot be opened", id="no-root"),
        pytest.param(_not_a_directory, "cannot be opened", id="root-is-a-file"),
        pytest.param(_with_skip_backup, "--skip-backup", id="files-without-backup"),
        pytest.param(_environment_without_files, "no spec.files", id="env-without-files"),
        pytest.param(_fixed("--files", "s3://b/../x"), "s3://bucket/prefix", id="s3-dotdot"),
        pytest.param(_fixed("--files", "ftp://host/x"), "ftp://host/x", id="other-scheme"),
        pytest.param(_fixed("--files-exclude", "tmp"), "needs --files", id="exclude-alone"),
        pytest.param(_fixed("--files", "/x", "--environment-file", "/y"), "not allowed", id="both"),
        pytest.param(_fixed("--environment-file", "/nonexistent.yaml"), "nonexistent", id="no-env"),
    ],
)
def test_hostile_files_arguments_to_migrate_are_refused(
    release: Release, extra: Callable[[Release], list[str]], says: str
) -> None:
    assert_refused(release.migrate_args(*extra(release)), 2, release.watched, says=says)
