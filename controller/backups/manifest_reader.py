"""Read a manifest from a store as the untrusted text it is.

Whoever can write to a store can write a manifest, and a restore turns a manifest's
schemas into DDL and its keys into object paths. So every field is checked for type
and shape, unknown fields and features are refused, member keys are confined to the
backup's own ``tables/``, the whole-manifest checksum must match, the manifest must
sit where it claims to (its environment and ID), and, when signed, its signature must
verify with the store's keyring. Anything else raises :class:`InvalidInput` naming
what failed; nothing here raises another exception, whatever the input.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import replace
from typing import Any, NoReturn

from controller.backups import crypto, layout
from controller.backups.keyring import Signature, StoreKeyring
from controller.backups.manifest import (
    DIALECTS,
    ENCRYPTED_VERSION,
    ENCRYPTED_VERSIONS,
    FILES_VERSION,
    FORMAT,
    FORMAT_VERSION,
    KNOWN_FEATURES,
    MANIFEST_NAME,
    NAMINGS,
    READABLE_VERSIONS,
    REASONS,
    Manifest,
    Member,
    SourceIdentity,
)
from controller.backups.manifest_fields import count, fail, string, timestamp
from controller.backups.manifest_files import parse_files
from controller.engine.model import TableSchema
from controller.errors import InvalidInput

MAX_MANIFEST_BYTES = 64 * 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_SQLITE_CLASSES = frozenset({"integer", "real", "text", "blob", "null"})
_V1_FIELDS = frozenset(
    {
        "format",
        "version",
        "id",
        "environment",
        "reason",
        "created_at",
        "completed_at",
        "dialect",
        "server_version",
        "app_version",
        "naming",
        "members",
        "checksum",
    }
)
_V2_FIELDS = _V1_FIELDS | {"source", "features", "signature"}
#: Format 3: the sealed body has version 2's fields but the signature (the AEAD
#: authenticates it); the stored object around it has these.
_V3_FIELDS = _V2_FIELDS - {"signature"}
_V3_OUTER = frozenset({"format", "version", "id", "environment", "encryption", "sealed"})
_MEMBER_FIELDS = frozenset({"table", "key", "rows", "bytes", "sha256", "schema", "sqlite_classes"})


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON number")


def _load(raw: bytes | str, where: str) -> dict[str, Any]:
    if len(raw) > MAX_MANIFEST_BYTES:
        fail(where, f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        data = json.loads(text, parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        fail(where, "the manifest is not UTF-8 text")
    except RecursionError:
        fail(where, "the manifest is nested too deeply")
    except ValueError as err:
        fail(where, f"the manifest is not valid JSON ({str(err)[:120]})")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        fail(where, "not a Ferry backup manifest")
    return data


def _choice(data: dict[str, Any], name: str, allowed: tuple[str, ...], where: str) -> Any:
    value = data.get(name)
    if value not in allowed:
        shown = value[:64] if isinstance(value, str) else value
        fail(where, f"field {name}: {shown!r} is not one of {', '.join(map(str, allowed))}")
    return value


def _table_schema(member: dict[str, Any], table: str, where: str) -> dict[str, Any]:
    """The member's table schema, its structure checked (:func:`_check_schemas` checks
    its names, types and defaults once the manifest is proven unedited)."""
    schema = member.get("schema")
    if not isinstance(schema, dict):
        fail(where, "field schema must be an object")
    try:
        parsed = TableSchema.from_dict(schema, spelling=False)
        names = [c.name for c in parsed.columns]
    except InvalidInput as err:
        fail(where, f"malformed table schema ({err.message[:120]})")
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        fail(where, f"malformed table schema ({type(err).__name__}: {str(err)[:80]})")
    if parsed.name != table:
        fail(where, f"its schema describes table {str(parsed.name)[:64]!r}")
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        fail(where, "column names must be distinct strings")
    return schema


def _sqlite_classes(member: dict[str, Any], where: str) -> dict[str, list[str]]:
    classes = member.get("sqlite_classes", {})
    ok = isinstance(classes, dict) and all(
        isinstance(v, list) and all(isinstance(c, str) and c in _SQLITE_CLASSES for c in v)
        for v in classes.values()
    )
    if not ok:
        fail(where, "field sqlite_classes must map columns to SQLite storage classes")
    return classes  # type: ignore[no-any-return]


def _member(item: object, index: int, where: str) -> Member:
    here = f"{where}: member {index}"
    if not isinstance(item, dict):
        fail(here, "must be an object")
    unknown = set(item) - _MEMBER_FIELDS
    if unknown:
        fail(here, f"unknown field(s) {', '.join(sorted(unknown))[:120]}")
    table = string(item, "table", here)
    here = f"{where}: member {index} ({table[:64]})"
    key = layout.object_key(item.get("key"), f"{here}: member key")
    if not key.startswith("tables/"):
        fail(here, f"member key {key!r} is outside the backup's tables/", "InvalidPath")
    sha = item.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        fail(here, "field sha256 must be 64 lowercase hex digits")
    return Member(
        table=table,
        key=key,
        rows=count(item, "rows", here),
        bytes=count(item, "bytes", here),
        sha256=sha,
        schema=_table_schema(item, table, here),
        sqlite_classes=_sqlite_classes(item, here),
    )


def _members(data: dict[str, Any], where: str) -> tuple[Member, ...]:
    items = data.get("members")
    if not isinstance(items, list):
        fail(where, "field members must be a list")
    members = tuple(_member(item, i, where) for i, item in enumerate(items))
    for what, values in (("table", [m.table for m in members]), ("key", [m.key for m in members])):
        if len(set(values)) != len(values):
            fail(where, f"two members have the same {what}")
    return members


def _source(data: dict[str, Any], where: str) -> SourceIdentity | None:
    source = data.get("source")
    if source is None:
        return None
    if not isinstance(source, dict) or set(source) != {"dialect", "database", "server"}:
        fail(where, "field source must have dialect, database and server")
    return SourceIdentity(
        dialect=_choice(source, "dialect", DIALECTS, f"{where}: source"),
        database=string(source, "database", f"{where}: source"),
        server=string(source, "server", f"{where}: source", optional=True),
    )


def _features(data: dict[str, Any], where: str) -> tuple[str, ...]:
    features = data.get("features")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        fail(where, "field features must be a list of names")
    unknown = [f[:64] for f in features if f not in KNOWN_FEATURES]
    if unknown:
        fail(
            where,
            f"uses format feature(s) this Ferry does not know: {', '.join(unknown)}",
            "UnknownFormatFeature",
        )
    return tuple(features)


def _version(data: dict[str, Any], where: str, readable: tuple[int, ...]) -> int:
    version = data.get("version")
    if isinstance(version, bool) or version not in readable:
        shown = version[:32] if isinstance(version, str) else version
        kind = "an encrypted" if readable == ENCRYPTED_VERSIONS else "an unencrypted"
        raise InvalidInput(
            f"{where}: unknown backup format version {shown!r} for {kind} manifest (this "
            f"Ferry reads versions {', '.join(map(str, READABLE_VERSIONS))} unencrypted and "
            f"{', '.join(map(str, ENCRYPTED_VERSIONS))} encrypted, writes {FORMAT_VERSION} "
            f"or {ENCRYPTED_VERSION}, and {FILES_VERSION} with files)",
            reason="UnknownFormatVersion",
        )
    return int(version)


def _field_set(version: int, encrypted: bool) -> frozenset[str]:
    if version == 1:
        return _V1_FIELDS
    fields = _V3_FIELDS if encrypted else _V2_FIELDS
    return fields | {"files"} if version >= FILES_VERSION else fields


def parse_manifest(raw: bytes | str, where: str) -> Manifest:
    """A manifest from untrusted text: every field checked, the checksum proven.

    The signature, if any, is parsed but not verified: see :func:`read_manifest`. An
    encrypted manifest (format 3) needs the keyring: see :func:`read_manifest`."""
    data = _load(raw, where)
    if "encryption" in data:
        raise InvalidInput(
            f"{where}: the backup is encrypted; configure the store key "
            "(--store-key-file, FERRY_STORE_KEY_FILE) to read it",
            reason="StoreKeyRequired",
        )
    return _parse_fields(data, where, _version(data, where, READABLE_VERSIONS))


def _parse_fields(
    data: dict[str, Any], where: str, version: int, encrypted: bool = False
) -> Manifest:
    expected = _field_set(version, encrypted)
    unknown = set(data) - expected
    if unknown:
        fail(where, f"unknown field(s) {', '.join(sorted(unknown))[:120]}")
    if set(data) != expected:
        fail(where, f"missing field(s) {', '.join(sorted(expected - set(data)))}")
    manifest = Manifest(
        id=layout.backup_id(data.get("id")),
        environment=layout.environment(data.get("environment")),
        reason=_choice(data, "reason", REASONS, where),
        created_at=timestamp(data, "created_at", where),
        completed_at=timestamp(data, "completed_at", where),
        dialect=_choice(data, "dialect", DIALECTS, where),
        server_version=string(data, "server_version", where),
        app_version=string(data, "app_version", where, optional=True),
        naming=_choice(data, "naming", (*NAMINGS, None), where),  # type: ignore[arg-type]
        members=_members(data, where),
        source=_source(data, where) if version >= 2 else None,
        features=_features(data, where) if version >= 2 else (),
        signature=(
            Signature.from_dict(data["signature"], where)
            if not encrypted and version >= 2 and data.get("signature") is not None
            else None
        ),
        files=parse_files(data.get("files"), where) if version >= FILES_VERSION else None,
        version=version,
    )
    if data.get("checksum") != manifest.checksum:
        what = "the whole manifest" if version >= 2 else "its members"
        fail(
            where,
            f"the manifest's checksum does not match {what}: it was edited or damaged",
            "ChecksumMismatch",
        )
    return manifest


def read_manifest(
    raw: bytes | str,
    where: str,
    keyring: StoreKeyring | None,
    environment: str,
    backup_id: str,
) -> Manifest:
    """:func:`parse_manifest`, then prove where it sits and who signed it.

    An unsigned manifest (written before the store had a key) is accepted and reported
    as unsigned; a signed one needs the keyring that holds its key, an encrypted one
    (format 3) the keyring that holds the key its data key is wrapped with."""
    data = _load(raw, where)
    if "encryption" in data:
        manifest = _read_encrypted(data, where, keyring, (environment, backup_id))
    else:
        manifest = _parse_fields(data, where, _version(data, where, READABLE_VERSIONS))
    _check_place(manifest.environment, manifest.id, where, (environment, backup_id))
    if manifest.signature is not None:
        if keyring is None:
            raise InvalidInput(
                f"{where}: backup {manifest.id} is signed with store key "
                f"{manifest.signature.key_id!r}; configure the store key "
                "(--store-key-file, FERRY_STORE_KEY_FILE) to read it",
                reason="StoreKeyRequired",
            )
        keyring.verify(manifest.signed_bytes(), manifest.signature, f"{where}: manifest")
    _check_schemas(manifest, where)
    return manifest


def _check_place(env: str, backup: str, where: str, place: tuple[str, str]) -> None:
    if (env, backup) != place:
        fail(
            where,
            f"the manifest is of backup {env}/{backup}, not of the backup "
            f"{place[0]}/{place[1]} it sits in",
            "ManifestMisplaced",
        )


def _read_encrypted(
    data: dict[str, Any], where: str, keyring: StoreKeyring | None, place: tuple[str, str]
) -> Manifest:
    """Format 3: unwrap the data key with the ring, open the sealed body, parse it as
    version 2's fields; its identity must be the one in clear (and where it sits)."""
    version = _version(data, where, ENCRYPTED_VERSIONS)
    if set(data) != _V3_OUTER:
        fail(where, f"an encrypted manifest has exactly the fields {', '.join(sorted(_V3_OUTER))}")
    env, backup = layout.environment(data["environment"]), layout.backup_id(data["id"])
    _check_place(env, backup, where, place)
    key_id, wrapped = crypto.parse_encryption(data["encryption"], where)
    if keyring is None:
        raise InvalidInput(
            f"{where}: backup {backup} is encrypted with store key {key_id!r}; configure "
            "the store key (--store-key-file, FERRY_STORE_KEY_FILE) to read it",
            reason="StoreKeyRequired",
        )
    encryption = crypto.unwrap(keyring, key_id, wrapped, env, backup, f"{where}: backup {backup}")
    sealed = data["sealed"]
    try:
        blob = base64.b64decode(sealed, validate=True) if isinstance(sealed, str) else b""
    except (binascii.Error, ValueError):
        blob = b""
    body = encryption.cipher.open(MANIFEST_NAME, blob, f"{where}: the sealed manifest")
    inner = _load(body, where)
    if inner.get("version") != version or (inner.get("environment"), inner.get("id")) != (
        env,
        backup,
    ):
        fail(where, "the sealed manifest's identity differs from its envelope's")
    manifest = _parse_fields(inner, where, version, encrypted=True)
    return replace(manifest, encryption=encryption)


def _check_schemas(manifest: Manifest, where: str) -> None:
    """Members' schemas become DDL when the backup is restored: their names, types and
    defaults are checked against the manifest's dialect, as a snapshot's are. This
    comes after the checksum and the signature, so an edit is reported as an edit."""
    for index, member in enumerate(manifest.members):
        try:
            TableSchema.from_dict(member.schema, manifest.dialect)
        except InvalidInput as err:
            fail(f"{where}: member {index} ({member.table[:64]})", err.message)
