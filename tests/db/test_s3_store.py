"""The S3 store against a real S3-compatible server (SeaweedFS, started by the harness)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest

from controller.backups import layout
from controller.backups.keyring import parse_keyring
from controller.backups.manifest import canonical
from controller.backups.s3store import S3Store
from controller.backups.store import open_store
from controller.cli.main import main
from controller.commands.backup import create_backup, restore, verify
from controller.errors import CheckFailed, InvalidInput, PermanentError
from tests.db.dbhelpers import dump
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_refused

pytestmark = pytest.mark.db


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


def _put_manifest(store: S3Store, key: str, change: Any) -> None:
    body = store.client.get_object(Bucket=store.bucket, Key=key)["Body"].read()
    data = json.loads(body)
    change(data)
    rest = {k: v for k, v in data.items() if k not in ("checksum", "signature")}
    data["checksum"] = "sha256:" + hashlib.sha256(canonical(rest)).hexdigest()
    store.client.put_object(Bucket=store.bucket, Key=key, Body=json.dumps(data).encode())


def test_s3_member_keys_confined_and_signatures_checked(
    aws_env: None, s3_bucket: str, tmp_path: Path
) -> None:
    """The same refusals as the filesystem store: a key outside the backup, an edited
    signed manifest, a traversing environment, an edited post-state."""
    src = f"sqlite:///{tmp_path}/src.db"
    shape.build(src)
    key_file = tmp_path / "k"
    key_file.write_text(base64.b64encode(os.urandom(32)).decode())
    keyring = parse_keyring(key_file.read_text(), "k")
    signed_store = S3Store(s3_bucket, "h", keyring=keyring)
    signed, _ = create_backup(src, signed_store, environment="e")
    plain, _ = create_backup(src, S3Store(s3_bucket, "h"), environment="e")
    store_url = f"s3://{s3_bucket}/h"

    def listing() -> list[tuple[str, str]]:
        objs = signed_store.client.list_objects_v2(Bucket=s3_bucket, Prefix="h/")["Contents"]
        return sorted((o["Key"], o["ETag"]) for o in objs)

    _put_manifest(
        signed_store,
        f"h/e/{plain.id}/manifest.json",
        lambda d: d["members"][0].update(key="../../../other/tables/x.arrow"),
    )
    _put_manifest(
        signed_store, f"h/e/{signed.id}/manifest.json", lambda d: d.update(reason="scheduled")
    )
    before = listing()
    assert_refused(["backup", "verify", plain.id, "--store", store_url], 2, says="invalid")
    argv = [
        "restore",
        "--store",
        store_url,
        "--store-key-file",
        str(key_file),
        "--backup",
        signed.id,
        "--database",
        src,
    ]
    assert_refused(argv, 2, [src], says="signature mismatch")
    argv = ["backup", "list", "--store", store_url, "--environment", "../.."]
    assert_refused(argv, 2, says="invalid environment")
    assert listing() == before

    fresh, _ = create_backup(src, signed_store, environment="f")
    post = layout.post_state_key("m1")
    signed_store.put_extra(fresh, post, b"digests")
    assert signed_store.get_extra(fresh, post) == b"digests"
    signed_store.client.put_object(Bucket=s3_bucket, Key=f"h/f/{fresh.id}/{post}", Body=b"x")
    with pytest.raises(InvalidInput) as err:
        signed_store.get_extra(fresh, post)
    assert err.value.reason == "SignatureMissing" and post in str(err.value)
    assert signed_store.get_extra(fresh, layout.post_state_key("m2")) is None


def test_s3_debris_of_a_killed_writer_removed_by_the_next(
    aws_env: None, s3_bucket: str, tmp_path: Path
) -> None:
    src = f"sqlite:///{tmp_path}/src.db"
    shape.build(src)
    store = S3Store(s3_bucket, "d")
    dead = json.dumps({"host": os.uname().nodename, "pid": 2**22 + 7, "start": "1"})
    for name, body in (("tables/0000-x.arrow", b"half"), (".writer", dead.encode())):
        store.client.put_object(
            Bucket=s3_bucket, Key=f"d/e/20260101T000000000Z-dead00/{name}", Body=body
        )
    upload = store.client.create_multipart_upload(
        Bucket=s3_bucket, Key="d/e/20260101T000000000Z-dead00/tables/0001-y.arrow"
    )
    manifest, _ = create_backup(src, store, environment="e")
    keys = [
        o["Key"] for o in store.client.list_objects_v2(Bucket=s3_bucket, Prefix="d/")["Contents"]
    ]
    assert keys and all(k.startswith(f"d/e/{manifest.id}/") for k in keys), keys
    assert not any(k.endswith("/.writer") for k in keys)  # the owner record goes at publish
    assert upload["UploadId"]
    uploads = store.client.list_multipart_uploads(Bucket=s3_bucket, Prefix="d/")
    assert uploads.get("Uploads", []) == []  # unfinished uploads of the dead writer aborted
