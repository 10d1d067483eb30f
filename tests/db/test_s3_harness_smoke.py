"""Smoke tests for the S3 test server harness (tests/harness/s3server.py).

They run against the real SeaweedFS S3 gateway the harness starts, and use
boto3 configured *only* through the standard ``AWS_*`` variables from
:meth:`RunningS3.env` -- the way Ferry's backup code and its CLI will be
configured -- so a broken harness, a server that misbehaves on the S3
features Ferry relies on (multipart uploads, listing, auth errors), or an
SDK/server incompatibility (e.g. checksum headers) shows up here first.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.harness.s3server import RunningS3

pytestmark = pytest.mark.db

MiB = 1024 * 1024
PART_SIZE = 5 * MiB


@pytest.fixture
def env_s3(s3_server: RunningS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    """An S3 client configured from ``s3_server.env()`` and nothing else.

    Every other ``AWS_*`` variable is removed, and the shared config and
    credentials files point to nonexistent paths, so a developer's
    ``~/.aws`` cannot contribute anything.
    """
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    client = boto3.session.Session().client("s3")  # no explicit arguments
    assert client.meta.endpoint_url == s3_server.endpoint_url
    assert client.meta.region_name == s3_server.region
    yield client


def _keys(client: Any, bucket: str, prefix: str = "") -> list[str]:
    resp = client.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(obj["Key"] for obj in resp.get("Contents", []))


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _unique(hint: str) -> str:
    return f"ferry-{hint}-{secrets.token_hex(4)}"


def test_env_has_exactly_the_standard_variables(s3_server: RunningS3) -> None:
    env = s3_server.env()
    assert set(env) == {
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
    }
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert s3_server.process is not None and s3_server.process.poll() is None


def test_put_get_list_delete_via_env(s3_server: RunningS3, env_s3: Any) -> None:
    bucket = s3_server.create_bucket(_unique("crud"))
    assert bucket in {b["Name"] for b in env_s3.list_buckets()["Buckets"]}

    payloads = {
        "backups/2024/one.bin": secrets.token_bytes(1000),
        "backups/2024/two.json": b'{"ok": true}',
        "other/three.txt": "ferry \U0001f6a2 ok\n".encode(),
    }
    for key, body in payloads.items():
        env_s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata={"ferry-kind": "smoke"})

    for key, body in payloads.items():
        got = env_s3.get_object(Bucket=bucket, Key=key)
        assert got["Body"].read() == body
        assert got["ContentLength"] == len(body)
        assert got["Metadata"] == {"ferry-kind": "smoke"}

    assert _keys(env_s3, bucket) == sorted(payloads)
    assert _keys(env_s3, bucket, "backups/") == ["backups/2024/one.bin", "backups/2024/two.json"]
    delimited = env_s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert sorted(p["Prefix"] for p in delimited.get("CommonPrefixes", [])) == [
        "backups/",
        "other/",
    ]

    env_s3.delete_object(Bucket=bucket, Key="backups/2024/one.bin")
    assert _keys(env_s3, bucket) == ["backups/2024/two.json", "other/three.txt"]
    with pytest.raises(ClientError) as excinfo:
        env_s3.get_object(Bucket=bucket, Key="backups/2024/one.bin")
    assert _error_code(excinfo.value) == "NoSuchKey"

    env_s3.delete_objects(
        Bucket=bucket,
        Delete={"Objects": [{"Key": "backups/2024/two.json"}, {"Key": "other/three.txt"}]},
    )
    assert _keys(env_s3, bucket) == []
    env_s3.delete_bucket(Bucket=bucket)
    assert bucket not in {b["Name"] for b in env_s3.list_buckets()["Buckets"]}


def test_multipart_upload_12mb(s3_bucket: str, env_s3: Any) -> None:
    data = secrets.token_bytes(12 * MiB)
    key = "backups/big.tar.zst"
    upload_id = env_s3.create_multipart_upload(Bucket=s3_bucket, Key=key)["UploadId"]
    parts = []
    for number, offset in enumerate(range(0, len(data), PART_SIZE), start=1):
        chunk = data[offset : offset + PART_SIZE]
        resp = env_s3.upload_part(
            Bucket=s3_bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=chunk
        )
        parts.append({"PartNumber": number, "ETag": resp["ETag"]})
    assert len(parts) == 3  # 5 MiB + 5 MiB + 2 MiB

    env_s3.complete_multipart_upload(
        Bucket=s3_bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )

    head = env_s3.head_object(Bucket=s3_bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3")
    body = env_s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == hashlib.sha256(data).hexdigest()
    ranged = env_s3.get_object(
        Bucket=s3_bucket, Key=key, Range=f"bytes={PART_SIZE - 3}-{PART_SIZE + 2}"
    )
    assert ranged["Body"].read() == data[PART_SIZE - 3 : PART_SIZE + 3]
    assert _keys(env_s3, s3_bucket) == [key]


def test_object_not_listed_until_upload_completes(s3_bucket: str, env_s3: Any) -> None:
    part = secrets.token_bytes(PART_SIZE)

    # An upload in progress is not an object: not listed, not readable.
    upload_id = env_s3.create_multipart_upload(Bucket=s3_bucket, Key="pending.bin")["UploadId"]
    env_s3.upload_part(
        Bucket=s3_bucket, Key="pending.bin", UploadId=upload_id, PartNumber=1, Body=part
    )
    assert _keys(env_s3, s3_bucket) == []
    uploads = env_s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in uploads] == [("pending.bin", upload_id)]
    with pytest.raises(ClientError) as excinfo:
        env_s3.head_object(Bucket=s3_bucket, Key="pending.bin")
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    # Aborting it midway leaves nothing behind.
    env_s3.abort_multipart_upload(Bucket=s3_bucket, Key="pending.bin", UploadId=upload_id)
    assert _keys(env_s3, s3_bucket) == []
    assert env_s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads", []) == []
    with pytest.raises(ClientError) as excinfo:
        env_s3.get_object(Bucket=s3_bucket, Key="pending.bin")
    assert _error_code(excinfo.value) == "NoSuchKey"

    # Completing one makes it appear.
    upload_id = env_s3.create_multipart_upload(Bucket=s3_bucket, Key="done.bin")["UploadId"]
    etag = env_s3.upload_part(
        Bucket=s3_bucket, Key="done.bin", UploadId=upload_id, PartNumber=1, Body=part
    )["ETag"]
    assert _keys(env_s3, s3_bucket) == []
    env_s3.complete_multipart_upload(
        Bucket=s3_bucket,
        Key="done.bin",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
    )
    assert _keys(env_s3, s3_bucket) == ["done.bin"]


def _client(server: RunningS3, access_key: str, secret_key: str) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=server.endpoint_url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=server.region,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


def test_wrong_credentials_rejected(s3_server: RunningS3, s3_bucket: str) -> None:
    wrong_secret = _client(s3_server, s3_server.access_key, s3_server.secret_key + "x")
    with pytest.raises(ClientError) as excinfo:
        wrong_secret.put_object(Bucket=s3_bucket, Key="nope", Body=b"x")
    assert _error_code(excinfo.value) == "SignatureDoesNotMatch"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    unknown_key = _client(s3_server, "FERRYUNKNOWNKEY00000", s3_server.secret_key)
    with pytest.raises(ClientError) as excinfo:
        unknown_key.list_objects_v2(Bucket=s3_bucket)
    assert _error_code(excinfo.value) == "InvalidAccessKeyId"

    anonymous = boto3.session.Session().client(
        "s3",
        endpoint_url=s3_server.endpoint_url,
        region_name=s3_server.region,
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as excinfo:
        anonymous.list_objects_v2(Bucket=s3_bucket)
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    # Nothing was written by the rejected requests.
    assert _keys(s3_server.client(), s3_bucket) == []
