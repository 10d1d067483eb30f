"""Backups in an S3-compatible bucket (boto3; endpoint and credentials from AWS_*).

Members are written to a local spool file, then uploaded (multipart for large ones);
the manifest is uploaded last. Listing only returns backups with a manifest. A writer
that fails deletes what it uploaded, its spool and its unfinished multipart uploads;
the next writer removes what a killed one left (its owner record names it).

A writer given an ID that is complete in the bucket refuses at once, and its manifest
is put only if none is there (a conditional write, and a look first for servers that
ignore the condition): a complete backup is never written over. Members go straight to
the backup's prefix (S3 has no rename), so whoever gives an ID runs one writer of it at
a time; a writer starts by removing what an earlier, stopped writer of its ID left.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO

from controller.backups import layout, sealing, writers
from controller.backups.crypto import BackupCipher, new_cipher
from controller.backups.keyring import StoreKeyring
from controller.backups.manifest import Manifest
from controller.backups.manifest_reader import MAX_MANIFEST_BYTES, read_manifest
from controller.backups.store import seal_manifest
from controller.errors import BackupExists, BackupNotFound, InvalidInput, Unreachable


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
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: Any = None,
        keyring: StoreKeyring | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._client = client
        self._keyring = keyring

    @property
    def keyring(self) -> StoreKeyring | None:
        return self._keyring

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
            if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise BackupExists(f"{self.label}: {what}: a complete backup is there") from err
            raise InvalidInput(f"{self.label}: {what}: {code or err}") from err
        except BotoCoreError as err:
            raise Unreachable(f"{self.label}: {what}: {err}") from err

    def _key(self, rel: str) -> str:
        return self.prefix + rel

    def _exists(self, key: str) -> bool:
        try:
            self._call(f"reading {key}", self.client.head_object, Bucket=self.bucket, Key=key)
        except FileNotFoundError:
            return False
        return True

    def _complete(self, prefix: str) -> bool:
        return self._exists(self._key(prefix + layout.MANIFEST))

    def writer(self, environment: str, backup_id: str) -> _S3Writer:
        prefix = layout.prefix(environment, backup_id)
        if self._complete(prefix):
            raise BackupExists(f"backup {backup_id} already exists in {self.label}")
        self.remove_abandoned()
        # What an earlier writer of this ID left (its members, its owner record, its
        # unfinished uploads): whoever gives the ID runs one writer of it at a time (a
        # Job replaces its pod only once the previous one has stopped), so it is a
        # stopped attempt's, and this writer starts from an empty prefix.
        self._abort_stale_uploads(0, prefix)
        self._delete_prefix(prefix)
        writer = _S3Writer(self, prefix, new_cipher(self._keyring, environment, backup_id))
        writer.put_owner()
        return writer

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

    def _manifest_keys(self, environment: str | None) -> list[tuple[str, str, str]]:
        """``(key, environment, backup ID)`` of each manifest exactly one level down."""
        prefix = f"{layout.environment(environment)}/" if environment is not None else ""
        found = []
        for obj in self._list(prefix):
            parts = obj["Key"][len(self.prefix) :].split("/")
            if len(parts) == 3 and parts[2] == layout.MANIFEST:
                found.append((obj["Key"], parts[0], parts[1]))
        return sorted(found)

    def _read(self, key: str, limit: int | None = None) -> bytes:
        body = self._call(f"reading {key}", self.client.get_object, Bucket=self.bucket, Key=key)
        if limit is not None and body.get("ContentLength", 0) > limit:
            raise InvalidInput(f"s3://{self.bucket}/{key}: larger than {limit} bytes")
        data: bytes = body["Body"].read() if limit is None else body["Body"].read(limit + 1)
        return data

    def _load(self, key: str, environment: str, backup_id: str) -> Manifest:
        raw = self._read(key, MAX_MANIFEST_BYTES)
        return read_manifest(
            raw, f"s3://{self.bucket}/{key}", self._keyring, environment, backup_id
        )

    def manifests(self, environment: str | None = None) -> list[Manifest]:
        found = [self._load(*item) for item in self._manifest_keys(environment)]
        return sorted(found, key=lambda m: m.id)

    def manifest(self, backup_id: str, environment: str | None = None) -> Manifest:
        layout.backup_id(backup_id)
        for key, env, found in self._manifest_keys(environment):
            if found == backup_id:
                return self._load(key, env, found)
        raise BackupNotFound(f"no complete backup {backup_id!r} in {self.label}")

    def _full(self, manifest: Manifest, key: str) -> str:
        rel = layout.object_key(key) if key else ""
        return self._key(layout.prefix(manifest.environment, manifest.id) + rel)

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
            Body=sealing.seal(self._keyring, manifest, key, data),
        )

    def get_extra(self, manifest: Manifest, key: str) -> bytes | None:
        try:
            blob = self._read(self._full(manifest, key))
        except FileNotFoundError:
            return None
        return sealing.unseal(self._keyring, manifest, key, blob)

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
            Key=self._key(layout.manifest_key(manifest.environment, manifest.id)),
        )
        self._delete_prefix(layout.prefix(manifest.environment, manifest.id))

    def replace_manifest(self, manifest: Manifest) -> None:
        """One PUT replaces the object atomically: readers see the old or the new one."""
        self._call(
            "replacing the manifest",
            self.client.put_object,
            Bucket=self.bucket,
            Key=self._key(layout.manifest_key(manifest.environment, manifest.id)),
            Body=manifest.stored_json().encode(),
        )

    def _incomplete(self) -> dict[str, float]:
        """Prefixes of backups without a manifest → their newest object's time."""
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
        return {p: m for p, m in prefixes.items() if p not in complete}

    def remove_incomplete(self, older_than_seconds: float = 0) -> list[str]:
        cutoff = time.time() - older_than_seconds
        removed = []
        for backup, modified in sorted(self._incomplete().items()):
            if modified <= cutoff:
                self._delete_prefix(backup)
                removed.append(backup.rstrip("/"))
        return removed

    def _owner_gone(self, backup: str) -> bool:
        try:
            record = self._read(self._key(backup + writers.OWNER), 4096)
        except FileNotFoundError:
            return False
        return writers.owner_gone(record)

    def remove_abandoned(self) -> list[str]:
        cutoff = time.time() - writers.STALE_AFTER_SECONDS
        removed = []
        for backup, modified in sorted(self._incomplete().items()):
            if modified <= cutoff or self._owner_gone(backup):
                self._abort_stale_uploads(0, backup)
                self._delete_prefix(backup)
                removed.append(backup.rstrip("/"))
        self._abort_stale_uploads(cutoff)
        return removed

    def _abort_stale_uploads(self, cutoff: float, prefix: str = "") -> None:
        """Unfinished multipart uploads are invisible in listings but cost storage."""
        try:
            page = self._call(
                "listing uploads",
                self.client.list_multipart_uploads,
                Bucket=self.bucket,
                Prefix=self._key(prefix),
            )
        except (InvalidInput, FileNotFoundError):
            return  # a server without the call: nothing to clean
        for upload in page.get("Uploads", []):
            if prefix or upload["Initiated"].timestamp() <= cutoff:
                with contextlib.suppress(InvalidInput, FileNotFoundError):
                    self._call(
                        "aborting an upload",
                        self.client.abort_multipart_upload,
                        Bucket=self.bucket,
                        Key=upload["Key"],
                        UploadId=upload["UploadId"],
                    )

    def location(self, manifest: Manifest) -> str:
        return f"s3://{self.bucket}/{self._full(manifest, '')}"


class _S3Writer:
    def __init__(self, store: S3Store, prefix: str, cipher: BackupCipher | None) -> None:
        self.store = store
        self.prefix = prefix
        self.spool = Path(tempfile.mkdtemp(prefix="ferry-backup-"))
        self._cipher = cipher

    @property
    def cipher(self) -> BackupCipher | None:
        return self._cipher

    def put_owner(self) -> None:
        self.store._call(
            "writing",
            self.store.client.put_object,
            Bucket=self.store.bucket,
            Key=self.store._key(self.prefix + writers.OWNER),
            Body=writers.owner_record(),
        )

    def member_file(self, key: str) -> Path:
        path = self.spool / layout.object_key(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def member_done(self, key: str) -> None:
        self.store._call(
            f"uploading {key}",
            self.store.client.upload_file,
            Filename=str(self.spool / key),
            Bucket=self.store.bucket,
            Key=self.store._key(self.prefix + layout.object_key(key)),
        )
        (self.spool / key).unlink()

    def publish(self, manifest: Manifest) -> tuple[Manifest, str]:
        manifest = seal_manifest(manifest, self.store.keyring, self._cipher)
        if self.store._complete(self.prefix):
            raise BackupExists(f"backup {manifest.id} already exists in {self.store.label}")
        self.store._call(
            "publishing",
            self.store.client.put_object,
            Bucket=self.store.bucket,
            Key=self.store._key(self.prefix + layout.MANIFEST),
            Body=manifest.stored_json().encode(),
            IfNoneMatch="*",  # a server that knows conditional writes refuses a second
        )
        self._cleanup_spool()
        with contextlib.suppress(InvalidInput, Unreachable, FileNotFoundError):
            self.store._call(
                "deleting",
                self.store.client.delete_object,
                Bucket=self.store.bucket,
                Key=self.store._key(self.prefix + writers.OWNER),
            )
        return manifest, f"s3://{self.store.bucket}/{self.store._key(self.prefix)}"

    def abort(self) -> None:
        self._cleanup_spool()
        # What this misses (the server unreachable), the next writer's
        # remove_abandoned() collects once this process is gone.
        with contextlib.suppress(InvalidInput, Unreachable, FileNotFoundError):
            self.store._abort_stale_uploads(0, self.prefix)
            if not self.store._complete(self.prefix):  # never another writer's backup
                self.store._delete_prefix(self.prefix)

    def _cleanup_spool(self) -> None:
        shutil.rmtree(self.spool, ignore_errors=True)
