"""The S3 store against a real S3-compatible server (SeaweedFS, started by the harness)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.backups.s3store import S3Store
from controller.backups.store import open_store
from controller.cli.main import main
from controller.errors import CheckFailed, PermanentError
from controller.reconcile.backup import create_backup, restore, verify
from tests.db.dbhelpers import dump
from tests.fixtures import nocobase_shape as shape
from tests.harness.s3server import RunningS3

pytestmark = pytest.mark.db


@pytest.fixture
def aws_env(s3_server: RunningS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    for key, value in s3_server.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    yield


def test_backup_verify_restore_through_s3(aws_env: None, s3_bucket: str, tmp_path: Path) -> None:
    src, dst = f"sqlite:///{tmp_path}/src.db", f"sqlite:///{tmp_path}/dst.db"
    shape.build(src)
    (tmp_path / "dst.db").touch()  # Ferry restores into databases, never creates one
    store = open_store(f"s3://{s3_bucket}/team-a")
    manifest, location = create_backup(src, store, environment="prod")
    assert location == f"s3://{s3_bucket}/team-a/prod/{manifest.id}/"
    assert [m.id for m in store.manifests("prod")] == [manifest.id]
    assert verify(store, manifest.id)[1] == []
    restore(store, manifest.id, dst)
    assert dump(dst) == dump(src)


def test_interrupted_backup_never_listed_and_cleaned_up(
    aws_env: None, s3_bucket: str, tmp_path: Path
) -> None:
    src = f"sqlite:///{tmp_path}/src.db"
    shape.build(src)
    store = S3Store(s3_bucket, "p")

    def fault(step: str) -> None:
        if step == "member:roles":
            assert store.client.list_objects_v2(Bucket=s3_bucket, Prefix="p/")["KeyCount"] > 0
            raise PermanentError("connection dropped (injected)")

    with pytest.raises(PermanentError):
        create_backup(src, store, environment="e", fault=fault)
    assert store.manifests() == []
    objects = store.client.list_objects_v2(Bucket=s3_bucket, Prefix="p/").get("Contents", [])
    assert objects == []  # the aborting writer removed what it had uploaded


def test_debris_of_a_killed_writer_is_collected(aws_env: None, s3_bucket: str) -> None:
    store = S3Store(s3_bucket, "k")
    # What a killed process leaves: members without a manifest.
    store.client.put_object(
        Bucket=s3_bucket, Key="k/e/20260101T000000000Z-aaaaaa/tables/x", Body=b"partial"
    )
    assert store.manifests() == []
    assert store.remove_incomplete() == ["e/20260101T000000000Z-aaaaaa"]
    assert store.client.list_objects_v2(Bucket=s3_bucket, Prefix="k/").get("KeyCount") == 0


def test_corrupted_object_refused(aws_env: None, s3_bucket: str, tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path}/src.db"
    shape.build(src)
    store = S3Store(s3_bucket, "")
    manifest, _ = create_backup(src, store, environment="e")
    member = manifest.members[0]
    key = f"e/{manifest.id}/{member.key}"
    store.client.put_object(Bucket=s3_bucket, Key=key, Body=b"not arrow")
    with pytest.raises(CheckFailed):
        restore(store, manifest.id, f"sqlite:///{tmp_path}/dst.db")


def test_cli_uses_standard_aws_variables(
    aws_env: None, s3_bucket: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path}/app.db"
    shape.build(db)
    store = f"s3://{s3_bucket}/cli"
    assert main(["backup", "create", "--database", db, "--store", store, "--format", "json"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert main(["backup", "verify", created["id"], "--store", store]) == 0
