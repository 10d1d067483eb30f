"""Typed view of an ``Environment``: one deployed application and its database.

The connection is declared one of three ways (a literal ``url`` for local use, a
``urlFrom`` Secret, or discrete fields with the password from a Secret); the view
keeps references, never secret values, so it can be logged and put in status.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controller.api.environment_application import FIELDS_READ as APPLICATION_FIELDS
from controller.api.environment_application import ApplicationSpec, parse_application
from controller.api.environment_files import FIELDS_READ as FILES_FIELDS
from controller.api.environment_files import FilesSpec, parse_files
from controller.api.execution import ExecutionSpec, parse_execution
from controller.api.execution import fields as execution_fields
from controller.api.resources import (
    OBJECT_NAME,
    Node,
    SecretKeyRef,
    parse_secret_source,
    secret_fields,
)
from controller.errors import InvalidInput

KIND = "Environment"


class Stage(enum.StrEnum):
    DEVELOPMENT = "development"
    PRE_RELEASE = "pre-release"
    PRODUCTION = "production"


class Dialect(enum.StrEnum):
    SQLITE = "sqlite"
    POSTGRESQL = "postgresql"
    MYSQL = "mysql"
    MARIADB = "mariadb"


class Profile(enum.StrEnum):
    """Mirrors ``controller.engine.profiles.Profile`` (the api layer sits below it)."""

    NOCOBASE = "nocobase"
    GENERIC = "generic"


class ConfigChanges(enum.StrEnum):
    ALLOWED = "allowed"
    LOCKED = "locked"


class VariableType(enum.StrEnum):
    PLAIN = "plain"
    SECRET = "secret"


VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
HOST = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.:\[\]]*[A-Za-z0-9\]])?$")

FIELDS_READ: tuple[str, ...] = (
    "spec.stage",
    "spec.profile",
    "spec.systemTables",
    "spec.database.dialect",
    "spec.database.url",
    *secret_fields("spec.database.urlFrom"),
    "spec.database.host",
    "spec.database.port",
    "spec.database.name",
    "spec.database.user",
    *secret_fields("spec.database.passwordFrom"),
    "spec.variables[].name",
    "spec.variables[].value",
    *secret_fields("spec.variables[].valueFrom"),
    "spec.variables[].type",
    "spec.promotion.acceptsFrom",
    "spec.configChanges",
    "spec.backups.store.path",
    "spec.backups.store.s3.bucket",
    "spec.backups.store.s3.prefix",
    "spec.backups.store.s3.endpoint",
    "spec.backups.store.s3.region",
    "spec.backups.store.s3.credentialsSecret",
    *secret_fields("spec.backups.store.keyFrom"),
    *secret_fields("spec.encryptionKeyFrom"),
    *APPLICATION_FIELDS,
    *FILES_FIELDS,
    "spec.rehearsal.scratch.url",
    *secret_fields("spec.rehearsal.scratch.urlFrom"),
    "spec.rehearsal.scratch.directory",
    *execution_fields("spec"),
)


@dataclass(frozen=True)
class DatabaseSpec:
    dialect: Dialect
    url: str | None = None  # literal URL: local use only, may hold a password
    url_from: SecretKeyRef | None = None
    host: str | None = None
    port: int | None = None
    name: str | None = None  # database name (SQLite: the file path)
    user: str | None = None
    password_from: SecretKeyRef | None = None

    def __repr__(self) -> str:  # never print a literal URL: it may carry a password
        how = "url=<literal>" if self.url else f"url_from={self.url_from}"
        if self.name is not None:
            how = f"host={self.host!r}, port={self.port}, name={self.name!r}, user={self.user!r}"
        return f"DatabaseSpec(dialect={self.dialect.value}, {how})"


@dataclass(frozen=True)
class VariableSpec:
    name: str
    type: VariableType
    value: str | None = None
    value_from: SecretKeyRef | None = None


@dataclass(frozen=True)
class S3Store:
    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    credentials_secret: str | None = None


@dataclass(frozen=True)
class BackupStoreSpec:
    path: str | None = None
    s3: S3Store | None = None
    # The store's keyring (one key, or key IDs → keys with a current one): signs
    # manifests and post-migration states; later also encrypts archives.
    key_from: SecretKeyRef | None = None


@dataclass(frozen=True)
class ScratchSpec:
    """Where a Migration into this Environment is rehearsed (``spec.rehearsal.scratch``):
    a database server on which Ferry creates and drops ``ferry_rehearsal_*`` databases
    (its URL literal, for local use, or from a Secret), or for SQLite a directory."""

    url: str | None = None  # literal URL: local use only, may hold a password
    url_from: SecretKeyRef | None = None
    directory: str | None = None

    def __repr__(self) -> str:
        how = "url=<literal>" if self.url else f"url_from={self.url_from}"
        return f"ScratchSpec({how if self.directory is None else self.directory})"


@dataclass(frozen=True)
class EnvironmentSpec:
    stage: Stage
    database: DatabaseSpec
    profile: Profile = Profile.NOCOBASE
    system_tables: tuple[str, ...] = ()
    variables: tuple[VariableSpec, ...] = ()
    accepts_from: tuple[str, ...] = ()
    config_changes: ConfigChanges = ConfigChanges.ALLOWED
    backup_store: BackupStoreSpec | None = None
    encryption_key_from: SecretKeyRef | None = None
    application: ApplicationSpec | None = None  # the workload Ferry quiesces while it writes
    # No application declared, and promotions into it while it runs are accepted
    # (the nocobase profile refuses them otherwise: NocoBase caches its configuration).
    allow_running_application: bool = False
    files: FilesSpec | None = None  # the application's files: backed up with its rows
    rehearsal_scratch: ScratchSpec | None = None
    execution: ExecutionSpec | None = None  # where backups of it run (InProcess or Job)

    @property
    def locked(self) -> bool:
        return self.config_changes is ConfigChanges.LOCKED

    def accepts(self, source: str) -> bool:
        return source in self.accepts_from


def _parse_database(spec: Node) -> DatabaseSpec:
    db = spec.child("database", required=True)
    assert db is not None
    dialect = db.enum("dialect", Dialect)
    discrete = any(db.has(k) for k in ("host", "port", "name", "user", "passwordFrom"))
    present = [k for k in ("url", "urlFrom") if db.has(k)] + (["discrete"] if discrete else [])
    if len(present) != 1:
        raise InvalidInput(
            f"{db.where}: set exactly one of url, urlFrom, or the discrete fields "
            f"(host, port, name, user, passwordFrom); got {', '.join(present) or 'none'}"
        )
    if not discrete:
        return DatabaseSpec(
            dialect=dialect,
            url=db.string("url"),
            url_from=parse_secret_source(db.child("urlFrom")),
        )
    name = db.string("name")
    if name is None:
        raise InvalidInput(f"{db.where}.name is required with discrete connection fields")
    host = db.string("host", pattern=HOST)
    if dialect is not Dialect.SQLITE and host is None:
        raise InvalidInput(f"{db.where}.host is required for {dialect.value}")
    port = db.integer("port", minimum=1)
    if port is not None and port > 65535:
        raise InvalidInput(f"{db.where}.port: {port} is not a TCP port")
    return DatabaseSpec(
        dialect=dialect,
        host=host,
        port=port,
        name=name,
        user=db.string("user"),
        password_from=parse_secret_source(db.child("passwordFrom")),
    )


def _parse_scratch(spec: Node) -> ScratchSpec | None:
    rehearsal = spec.child("rehearsal")
    node = rehearsal.child("scratch", required=True) if rehearsal is not None else None
    if node is None:
        return None
    which = node.one_of("url", "urlFrom", "directory")
    if which == "directory":
        directory = node.required_string("directory")
        if not directory.startswith("/"):
            raise InvalidInput(f"{node.where}.directory: expected an absolute path")
        return ScratchSpec(directory=directory)
    return ScratchSpec(url=node.string("url"), url_from=parse_secret_source(node.child("urlFrom")))


def _parse_variable(node: Node) -> VariableSpec:
    name = node.required_string("name", pattern=VARIABLE_NAME)
    type_ = node.enum("type", VariableType, VariableType.PLAIN)
    which = node.one_of("value", "valueFrom")
    if type_ is VariableType.SECRET and which == "value":
        raise InvalidInput(
            f"{node.where}: secret variable {name!r} must come from a Secret (valueFrom)"
        )
    value = node.raw("value")
    if which == "value" and not isinstance(value, str):
        raise InvalidInput(f"{node.where}.value: expected a string, got {value!r}")
    return VariableSpec(
        name=name,
        type=type_,
        value=value if which == "value" else None,
        value_from=parse_secret_source(node.child("valueFrom")),
    )


def _parse_store(spec: Node) -> BackupStoreSpec | None:
    backups = spec.child("backups")
    store = backups.child("store") if backups is not None else None
    if store is None:
        return None
    key_from = parse_secret_source(store.child("keyFrom"))
    if store.one_of("path", "s3") == "path":
        path = store.required_string("path")
        if not path.startswith("/"):
            raise InvalidInput(f"{store.where}.path: expected an absolute path, got {path!r}")
        return BackupStoreSpec(path=path, key_from=key_from)
    s3 = store.child("s3")
    assert s3 is not None
    return BackupStoreSpec(
        key_from=key_from,
        s3=S3Store(
            bucket=s3.required_string("bucket"),
            prefix=s3.string("prefix") or "",
            endpoint=s3.string("endpoint"),
            region=s3.string("region"),
            credentials_secret=s3.name("credentialsSecret"),
        ),
    )


def parse_environment(body: Mapping[str, Any]) -> EnvironmentSpec:
    """Parse an Environment resource body (or a file of the same shape)."""
    spec = Node.root(body, KIND, FIELDS_READ)
    stage = spec.enum("stage", Stage)
    variables = tuple(_parse_variable(v) for v in spec.items("variables"))
    names = [v.name for v in variables]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInput(f"spec.variables: duplicate name(s) {', '.join(duplicates)}")
    promotion = spec.child("promotion")
    accepts: tuple[str, ...] = ()
    if promotion is not None:
        accepts = promotion.string_list("acceptsFrom", pattern=OBJECT_NAME)
    default_changes = ConfigChanges.ALLOWED if stage is Stage.DEVELOPMENT else ConfigChanges.LOCKED
    profile = spec.enum("profile", Profile, Profile.NOCOBASE)
    encryption = parse_secret_source(spec.child("encryptionKeyFrom"))
    if (
        profile is Profile.NOCOBASE
        and encryption is None
        and any(v.type is VariableType.SECRET for v in variables)
    ):
        raise InvalidInput(
            "spec.encryptionKeyFrom is required: NocoBase stores secret variables "
            "encrypted with the application's key"
        )
    return EnvironmentSpec(
        stage=stage,
        database=_parse_database(spec),
        profile=profile,
        system_tables=spec.tables("systemTables"),
        variables=variables,
        accepts_from=accepts,
        config_changes=spec.enum("configChanges", ConfigChanges, default_changes),
        backup_store=_parse_store(spec),
        encryption_key_from=encryption,
        application=parse_application(spec),
        allow_running_application=spec.boolean("allowRunningApplication"),
        files=parse_files(spec),
        rehearsal_scratch=_parse_scratch(spec),
        execution=parse_execution(spec),
    )
