"""Backups in an S3-compatible bucket (boto3; endpoint and credentials from AWS_*).

Members are written to a local spool file, then uploaded (multipart for large ones);
the manifest is uploaded last. Listing only returns backups with a manifest.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

from controller.backups import layout
from controller.backups.manifest import Manifest, parse_manifest
from controller.errors import InvalidInput, Unreachable


def s3_client(
    endpoint: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> Any:
    """A boto3 S3 client; unset settings come from the standard AWS_* environment."""
    import boto3

    kwargs: dict[str, Any] = {}
    if endpoint:
        kwargs["endpoint_url"] = endpoint
    if region:
        kwargs["region_name"] = region
    if access_key and secret_key:
        kwargs |= {"aws_access_key_id": access_key, "aws_secret_access_key": secret_key}
    return boto3.client("s3", **kwargs)


class S3Store:
    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = s3_client()
        return self._client

    @property
    def label(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

        try:
            return fn(**kwargs)
        except EndpointConnectionError as err:
            raise Unreachable(f"{self.label}: {what}: {err}") from err
        except ClientError as err:
            code = err.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404", "NotFound"):
                raise FileNotFoundError(what) from err
            raise InvalidInput(f"{self.label}: {what}: {code or err}") from err
        except BotoCoreError as err:
            raise Unreachable(f"{self.label}: {what}: {err}") from err

    def _key(self, rel: str) -> str:
        return self.prefix + rel

    def writer(self, environment: str, backup_id: str) -> _S3Writer:
        return _S3Writer(self, layout.prefix(environment, backup_id))

    def _list(self, prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key(prefix)}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("listing", self.client.list_objects_v2, **kwargs)
            items += page.get("Contents", [])
            if not page.get("IsTruncated"):
                return items
            token = page.get("NextContinuationToken")

    def _manifest_keys(self, environment: str | None) -> list[str]:
        prefix = f"{environment}/" if environment else ""
        keys = [o["Key"] for o in self._list(prefix)]
        return sorted(k for k in keys if k.endswith("/" + layout.MANIFEST))

    def _read(self, key: str) -> bytes:
        body = self._call(f"reading {key}", self.client.get_object, Bucket=self.bucket, Key=key)
        data: bytes = body["Body"].read()
        return data

    def manifests(self, environment: str | None = None) -> list[Manifest]:
        found = [
            parse_manifest(self._read(k).decode(), f"s3://{self.bucket}/{k}")
            for k in self._manifest_keys(environment)
        ]
        return sorted(found, key=lambda m: m.id)

    def manifest(self, backup_id: str, environment: str | None = None) -> Manifest:
        for key in self._manifest_keys(environment):
            if key.split("/")[-2] == backup_id:
                return parse_manifest(self._read(key).decode(), f"s3://{self.bucket}/{key}")
        raise InvalidInput(f"no complete backup {backup_id!r} in {self.label}")

    def _full(self, manifest: Manifest, key: str) -> str:
        return self._key(layout.prefix(manifest.environment, manifest.id) + key)

    def open(self, manifest: Manifest, key: str) -> BinaryIO:
        spool = tempfile.TemporaryFile()  # noqa: SIM115 - returned to the caller
        try:
            self._call(
                f"reading {key}",
                self.client.download_fileobj,
                Bucket=self.bucket,
                Key=self._full(manifest, key),
                Fileobj=spool,
            )
        except FileNotFoundError:
            spool.close()
            raise InvalidInput(f"backup {manifest.id}: member {key} is missing") from None
        spool.seek(0)
        return spool

    def put_extra(self, manifest: Manifest, key: str, data: bytes) -> None:
        self._call(
            "writing",
            self.client.put_object,
            Bucket=self.bucket,
            Key=self._full(manifest, key),
            Body=data,
        )

    def get_extra(self, manifest: Manifest, key: str) -> bytes | None:
        try:
            return self._read(self._full(manifest, key))
        except FileNotFoundError:
            return None

    def _delete_prefix(self, prefix: str) -> None:
        keys = [o["Key"] for o in self._list(prefix)]
        for start in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[start : start + 1000]]
            self._call(
                "deleting",
                self.client.delete_objects,
                Bucket=self.bucket,
                Delete={"Objects": chunk, "Quiet": True},
            )

    def delete(self, manifest: Manifest) -> None:
        # The manifest first: from that moment the backup is no longer complete.
        self._call(
            "deleting",
            self.client.delete_object,
            Bucket=self.bucket,
            Key=self._full(manifest, layout.MANIFEST),
        )
        self._delete_prefix(layout.prefix(manifest.environment, manifest.id))

    def remove_incomplete(self, older_than_seconds: float = 0) -> list[str]:
        cutoff = time.time() - older_than_seconds
        prefixes: dict[str, float] = {}
        complete: set[str] = set()
        for obj in self._list(""):
            parts = layout.split(obj["Key"][len(self.prefix) :])
            if parts is None:
                continue
            backup = f"{parts[0]}/{parts[1]}/"
            if parts[2] == layout.MANIFEST:
                complete.add(backup)
            modified = obj["LastModified"].timestamp()
            prefixes[backup] = max(prefixes.get(backup, 0.0), modified)
        removed = []
        for backup, modified in sorted(prefixes.items()):
            if backup not in complete and modified <= cutoff:
                self._delete_prefix(backup)
                removed.append(backup.rstrip("/"))
        return removed

    def location(self, manifest: Manifest) -> str:
        return f"s3://{self.bucket}/{self._full(manifest, '')}"


class _S3Writer:
    def __init__(self, store: S3Store, prefix: str) -> None:
        self.store = store
        self.prefix = prefix
        self.spool = Path(tempfile.mkdtemp(prefix="ferry-backup-"))
        self.uploaded: list[str] = []

    def member_file(self, key: str) -> Path:
        path = self.spool / key
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def member_done(self, key: str) -> None:
        full = self.store._key(self.prefix + key)
        self.uploaded.append(full)
        self.store._call(
            f"uploading {key}",
            self.store.client.upload_file,
            Filename=str(self.spool / key),
            Bucket=self.store.bucket,
            Key=full,
        )
        (self.spool / key).unlink()

    def put_text(self, key: str, text: bytes) -> None:
        full = self.store._key(self.prefix + key)
        self.uploaded.append(full)
        self.store._call(
            "writing", self.store.client.put_object, Bucket=self.store.bucket, Key=full, Body=text
        )

    def publish(self, manifest: Manifest) -> str:
        key = self.store._key(self.prefix + layout.MANIFEST)
        self.store._call(
            "publishing",
            self.store.client.put_object,
            Bucket=self.store.bucket,
            Key=key,
            Body=manifest.to_json().encode(),
        )
        self._cleanup_spool()
        return f"s3://{self.store.bucket}/{self.store._key(self.prefix)}"

    def abort(self) -> None:
        self._cleanup_spool()
        # Debris is never listed, and remove_incomplete() collects what this misses.
        with contextlib.suppress(InvalidInput, Unreachable):
            self.store._delete_prefix(self.prefix)

    def _cleanup_spool(self) -> None:
        import shutil

        shutil.rmtree(self.spool, ignore_errors=True)
