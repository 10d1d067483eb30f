"""The backup manifest: what a backup holds, and the proof it is complete.

A backup is complete exactly when its manifest exists; the manifest is written last.
Format changes bump ``FORMAT_VERSION``; a reader refuses versions it does not know.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from controller.engine.model import TableSchema
from controller.errors import InvalidInput

FORMAT = "ferry-backup"
FORMAT_VERSION = 1
REASONS = ("manual", "scheduled", "pre-migration", "pre-restore")


def new_backup_id(now: dt.datetime | None = None) -> str:
    """Unique and sorting by time: ``20261125T193012345Z-3fa9c1``."""
    now = now or dt.datetime.now(dt.UTC)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(3)


@dataclass(frozen=True)
class Member:
    table: str
    key: str  # object key relative to the backup, e.g. "tables/roles.arrow"
    rows: int
    bytes: int
    sha256: str
    schema: dict[str, Any]  # TableSchema.to_dict()
    sqlite_classes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def table_schema(self) -> TableSchema:
        return TableSchema.from_dict(self.schema)


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
    def checksum(self) -> str:
        """One checksum over every member's checksum, in table order."""
        import hashlib

        h = hashlib.sha256()
        for m in self.members:
            h.update(f"{m.key}\x1f{m.sha256}\x1e".encode())
        return "sha256:" + h.hexdigest()

    def member(self, table: str) -> Member | None:
        return next((m for m in self.members if m.table == table), None)

    def to_json(self) -> str:
        data = asdict(self)
        data["checksum"] = self.checksum
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
        }


def parse_manifest(text: str, where: str) -> Manifest:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise InvalidInput(f"{where}: the manifest is not valid JSON ({err})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInput(f"{where}: not a Ferry backup manifest")
    if data.get("version") != FORMAT_VERSION:
        raise InvalidInput(
            f"{where}: unknown backup format version {data.get('version')!r} "
            f"(this Ferry reads version {FORMAT_VERSION})"
        )
    try:
        members = tuple(Member(**m) for m in data["members"])
        manifest = Manifest(
            **{k: v for k, v in data.items() if k not in ("members", "checksum")}, members=members
        )
    except (KeyError, TypeError) as err:
        raise InvalidInput(f"{where}: malformed manifest ({err})") from err
    if data.get("checksum") != manifest.checksum:
        raise InvalidInput(f"{where}: the manifest's checksum does not match its members")
    for member in manifest.members:  # schemas become DDL: checked before any restore
        try:
            TableSchema.from_dict(member.schema, manifest.dialect)
        except InvalidInput as err:
            raise InvalidInput(f"{where}: {err}") from None
    return manifest
