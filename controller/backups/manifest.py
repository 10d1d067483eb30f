"""The backup manifest: what a backup holds, and the proof it is complete and unedited.

A backup is complete exactly when its manifest exists; the manifest is written last.
Its ``checksum`` covers the *whole* manifest (every field, every member's schema), so
an edit of any field is detected; with a store key its ``signature`` proves Ferry
wrote it (:mod:`controller.backups.keyring`). Format changes bump ``FORMAT_VERSION``
once; later additions (encryption, merge bases) are optional fields announced in
``features``, which a reader refuses by name when it does not know one.
Parsing and validation of untrusted manifest text live in
:mod:`controller.backups.manifest_reader`.
"""

from __future__ import annotations

import base64
import builtins
import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from controller.backups.crypto import Encryption
from controller.backups.keyring import Signature
from controller.backups.manifest_files import FilesSection
from controller.engine.model import TableSchema

FORMAT = "ferry-backup"
FORMAT_VERSION = 2
#: Format 4: version 2 or 3 with the application's files (``files``, ``files/`` members);
#: written only by a backup that holds files, so backups without stay readable by
#: releases that know 2 and 3.
FILES_VERSION = 4
READABLE_VERSIONS = (1, 2, FILES_VERSION)
#: Format 3: version 2's manifest and members, encrypted (:mod:`controller.backups.crypto`).
ENCRYPTED_VERSION = 3
ENCRYPTED_VERSIONS = (ENCRYPTED_VERSION, FILES_VERSION)
#: Must-understand extensions this reader knows (none yet; encryption will add one).
KNOWN_FEATURES: frozenset[str] = frozenset()
REASONS = ("manual", "scheduled", "pre-migration", "pre-restore", "rehearsal")
DIALECTS = ("sqlite", "postgresql", "mysql")
NAMINGS = ("camelCase", "underscored")
#: Domain separation: a manifest's signature can never be replayed as another object's.
MANIFEST_DOMAIN = b"ferry-backup-manifest\x00"
#: The name a format 3 manifest's sealed body is bound to (associated data).
MANIFEST_NAME = "manifest.json"


def new_backup_id(now: dt.datetime | None = None, suffix: str | None = None) -> str:
    """Unique and sorting by time: ``20261125T193012345Z-3fa9c1`` (``suffix``: the part
    after the dash, when the caller derives it instead of drawing it at random)."""
    now = now or dt.datetime.now(dt.UTC)
    tail = suffix or secrets.token_hex(3)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + tail


def canonical(data: Any) -> bytes:
    """The one byte form that checksums and signatures are computed over."""
    return json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode()


@dataclass(frozen=True)
class SourceIdentity:
    """Which database a backup was taken from, so a restore can refuse another one.

    PostgreSQL: the cluster's ``system_identifier`` and the database name; MySQL/MariaDB:
    a digest of the server's host name, port and data directory, and the schema name;
    SQLite: the absolute path of the file (``server`` is then None).
    """

    dialect: str
    database: str
    server: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {"dialect": self.dialect, "database": self.database, "server": self.server}

    def describe(self) -> str:
        where = f" on server {self.server}" if self.server else ""
        return f"{self.dialect} database {self.database!r}{where}"


@dataclass(frozen=True)
class Member:
    table: str
    key: str  # object key relative to the backup, e.g. "tables/0003-roles.arrow"
    rows: int
    bytes: int
    sha256: str
    schema: dict[str, Any]  # TableSchema.to_dict(), kept as read: the checksum covers it
    sqlite_classes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def table_schema(self) -> TableSchema:
        return TableSchema.from_dict(self.schema)

    def to_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "key": self.key,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "schema": self.schema,
            "sqlite_classes": self.sqlite_classes,
        }


@dataclass(frozen=True)
class Manifest:
    id: str
    environment: str
    reason: str
    created_at: str
    completed_at: str
    dialect: str
    server_version: str
    app_version: str | None
    naming: str | None
    members: tuple[Member, ...]
    source: SourceIdentity | None = None
    features: tuple[str, ...] = ()
    signature: Signature | None = None
    encryption: Encryption | None = None  # format 3; not in body(): rekey changes it
    files: FilesSection | None = None  # format 4: the application's files
    format: str = FORMAT
    version: int = FORMAT_VERSION

    @property
    def rows(self) -> int:
        return sum(m.rows for m in self.members)

    @property
    def bytes(self) -> int:
        return sum(m.bytes for m in self.members)

    @property
    def tables(self) -> list[str]:
        return [m.table for m in self.members]

    @property
    def signed_by(self) -> str | None:
        """The store key ID that signed (format 3: encrypted and so authenticated) this
        manifest, verified when read, or None."""
        if self.encryption:
            return self.encryption.key_id
        return self.signature.key_id if self.signature else None

    @property
    def integrity(self) -> str:
        """``signed (key K)``, ``encrypted (key K)`` or ``unsigned``, as ``backup
        show/verify/list`` say it."""
        if self.encryption:
            return f"encrypted (key {self.encryption.key_id})"
        return f"signed (key {self.signed_by})" if self.signed_by else "unsigned"

    def body(self) -> dict[str, Any]:
        """Every field but ``checksum`` and ``signature``, in this version's shape."""
        data: dict[str, Any] = {
            "format": self.format,
            "version": self.version,
            "id": self.id,
            "environment": self.environment,
            "reason": self.reason,
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "dialect": self.dialect,
            "server_version": self.server_version,
            "app_version": self.app_version,
            "naming": self.naming,
            "members": [m.to_dict() for m in self.members],
        }
        if self.version >= 2:
            data["source"] = self.source.to_dict() if self.source else None
            data["features"] = list(self.features)
        if self.version >= FILES_VERSION:
            data["files"] = self.files.to_dict() if self.files else None
        return data

    @property
    def checksum(self) -> str:
        """Format 2: sha256 of the whole manifest. Format 1 covered member keys and
        digests only (kept to read old backups)."""
        h = hashlib.sha256()
        if self.version == 1:
            for m in self.members:
                h.update(f"{m.key}\x1f{m.sha256}\x1e".encode())
        else:
            h.update(canonical(self.body()))
        return "sha256:" + h.hexdigest()

    def signed_bytes(self) -> builtins.bytes:
        """What the store key signs: the whole manifest with its checksum."""
        return MANIFEST_DOMAIN + canonical({**self.body(), "checksum": self.checksum})

    def with_signature(self, signature: Signature | None) -> Manifest:
        return replace(self, signature=signature)

    def member(self, table: str) -> Member | None:
        return next((m for m in self.members if m.table == table), None)

    def to_json(self) -> str:
        """The manifest as a person reads it (format 3: decrypted, with the key's ID)."""
        data = {**self.body(), "checksum": self.checksum}
        if self.encryption:
            data["encryption"] = {"alg": self.encryption.alg, "key_id": self.encryption.key_id}
        elif self.version >= 2:
            data["signature"] = self.signature.to_dict() if self.signature else None
        return json.dumps(data, indent=2, sort_keys=True, allow_nan=False)

    def stored_json(self) -> str:
        """The manifest as a store keeps it. Format 3: the identity in clear (where it
        sits), the wrapped data key, and everything else ``sealed`` with the data key."""
        if not self.encryption:
            return self.to_json()
        inner = canonical({**self.body(), "checksum": self.checksum})
        sealed = self.encryption.cipher.seal(MANIFEST_NAME, inner)
        data = {
            "format": self.format,
            "version": self.version,
            "id": self.id,
            "environment": self.environment,
            "encryption": self.encryption.to_dict(),
            "sealed": base64.b64encode(sealed).decode(),
        }
        return json.dumps(data, indent=2, sort_keys=True)

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "environment": self.environment,
            "reason": self.reason,
            "createdAt": self.created_at,
            "completedAt": self.completed_at,
            "dialect": self.dialect,
            "serverVersion": self.server_version,
            "appVersion": self.app_version,
            "tables": len(self.members),
            "rows": self.rows,
            "bytes": self.bytes,
            "checksum": self.checksum,
            "formatVersion": self.version,
            "signature": {"keyId": self.signed_by} if self.signed_by else "unsigned",
            "encryption": (
                {"alg": self.encryption.alg, "keyId": self.encryption.key_id}
                if self.encryption
                else None
            ),
            "source": self.source.to_dict() if self.source else None,
            "files": (
                {
                    "count": len(self.files.entries),
                    "bytes": self.files.bytes,
                    "consistency": self.files.consistency,
                }
                if self.files
                else None
            ),
        }
