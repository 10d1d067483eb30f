"""Environments as the operator sees them: connect, observe, write variables, watch drift.

Everything an Environment refers to (Secrets holding URLs, passwords, the NocoBase
key, S3 credentials) is resolved through the injected :class:`Cluster`; secret values
live only in memory and never reach status, events or logs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.api.environment import EnvironmentSpec, VariableType, parse_environment
from controller.api.reasons import CommonReason
from controller.api.resources import SecretKeyRef
from controller.backups.fileroots import DirectoryRoot, FilesRoot, S3Root
from controller.backups.keyring import StoreKeyring, parse_keyring
from controller.backups.s3store import S3Store, s3_client
from controller.backups.store import BackupStore, FilesystemStore
from controller.commands.backup import app_version
from controller.commands.fingerprint import Fingerprint, configuration_fingerprint
from controller.commands.variables import Variable, VariableSync, sync_variables
from controller.db.connect import build_url, redact
from controller.db.database import Database
from controller.db.engines import ENGINES
from controller.engine import nocobase_secrets
from controller.engine.profiles import Profile
from controller.errors import InvalidInput
from controller.k8s.client import Cluster


@dataclass(frozen=True)
class ResolvedEnvironment:
    namespace: str
    name: str
    spec: EnvironmentSpec
    url: str  # may hold a password: never print it, use ``label``
    store: BackupStore | None
    files: FilesRoot | None = None  # spec.files: the application's files

    @property
    def label(self) -> str:
        return redact(self.url)

    @property
    def profile(self) -> Profile:
        return Profile(self.spec.profile.value)


def _secret(cluster: Cluster, namespace: str, ref: SecretKeyRef) -> str:
    return cluster.secret_value(namespace, ref.name, ref.key)


def database_url(spec: EnvironmentSpec, namespace: str, cluster: Cluster) -> str:
    db = spec.database
    if db.url:
        return db.url
    if db.url_from:
        return _secret(cluster, namespace, db.url_from)
    password = _secret(cluster, namespace, db.password_from) if db.password_from else None
    return build_url(
        db.dialect.value,
        host=db.host,
        port=db.port,
        database=db.name,
        user=db.user,
        password=password,
    )


def _store_keyring(
    ref: SecretKeyRef | None, namespace: str, cluster: Cluster
) -> StoreKeyring | None:
    """The store's keyring from its Secret; the error names the Secret, never the key."""
    if ref is None:
        return None
    return parse_keyring(
        _secret(cluster, namespace, ref), f"Secret {namespace}/{ref.name} key {ref.key}"
    )


def backup_store(spec: EnvironmentSpec, namespace: str, cluster: Cluster) -> BackupStore | None:
    store = spec.backup_store
    if store is None:
        return None
    keyring = _store_keyring(store.key_from, namespace, cluster)
    if store.path:
        return FilesystemStore(Path(store.path), keyring)
    s3 = store.s3
    if s3 is None:
        return None
    creds = cluster.secret_data(namespace, s3.credentials_secret) if s3.credentials_secret else {}
    client = s3_client(
        s3.endpoint,
        s3.region,
        creds.get("AWS_ACCESS_KEY_ID") or creds.get("accessKeyId"),
        creds.get("AWS_SECRET_ACCESS_KEY") or creds.get("secretAccessKey"),
    )
    return S3Store(s3.bucket, s3.prefix, client=client, keyring=keyring)


def files_root(spec: EnvironmentSpec, namespace: str, cluster: Cluster) -> FilesRoot | None:
    """``spec.files`` as a root to back up from and restore into (S3 credentials from
    the named Secret, as for the backup store)."""
    files = spec.files
    if files is None:
        return None
    if files.path:
        return DirectoryRoot(Path(files.path), files.exclude)
    s3 = files.s3
    assert s3 is not None
    creds = cluster.secret_data(namespace, s3.credentials_secret) if s3.credentials_secret else {}
    client = s3_client(
        s3.endpoint,
        s3.region,
        creds.get("AWS_ACCESS_KEY_ID") or creds.get("accessKeyId"),
        creds.get("AWS_SECRET_ACCESS_KEY") or creds.get("secretAccessKey"),
    )
    return S3Root(s3.bucket, s3.prefix, client, files.exclude)


def resolve(body: dict[str, Any], cluster: Cluster) -> ResolvedEnvironment:
    meta = body.get("metadata", {})
    namespace, name = meta.get("namespace", "default"), meta.get("name", "")
    spec = parse_environment(body)
    url = database_url(spec, namespace, cluster)
    ENGINES.bind(f"{namespace}/{name}", url)  # a new URL or Secret: the old pool goes
    return ResolvedEnvironment(
        namespace,
        name,
        spec,
        url,
        backup_store(spec, namespace, cluster),
        files_root(spec, namespace, cluster),
    )


def keep_connections() -> None:
    """Keep one connection pool per Environment's database across calls (the
    operator); the CLI opens and closes its own per command."""
    ENGINES.enabled = True


def close_connections() -> None:
    """Close every kept connection (the operator stops)."""
    ENGINES.dispose_all()


def forget(namespace: str, name: str) -> None:
    """The Environment is gone: close its connections (unless another uses them)."""
    ENGINES.release(f"{namespace}/{name}")


def lookup(cluster: Cluster, namespace: str, name: str) -> ResolvedEnvironment:
    body = cluster.get("Environment", namespace, name)
    if body is None:
        raise InvalidInput(
            f"Environment {namespace}/{name} does not exist",
            reason=CommonReason.ENVIRONMENT_NOT_FOUND,
        )
    return resolve(body, cluster)


@dataclass(frozen=True)
class Observation:
    dialect: str
    server_version: str
    app_version: str | None
    fingerprint: Fingerprint
    variables: VariableSync | None


def _variables(env: ResolvedEnvironment, cluster: Cluster) -> VariableSync | None:
    if not env.spec.variables or env.profile is not Profile.NOCOBASE:
        return None
    desired = []
    for var in env.spec.variables:
        value = (
            var.value
            if var.value is not None
            else (_secret(cluster, env.namespace, var.value_from) if var.value_from else "")
        )
        kind = "secret" if var.type is VariableType.SECRET else "plain"
        desired.append(Variable(var.name, kind, value))
    key = None
    if env.spec.encryption_key_from is not None:
        key = nocobase_secrets.parse_key(
            _secret(cluster, env.namespace, env.spec.encryption_key_from)
        )
    return sync_variables(env.url, desired, key)


def observe(env: ResolvedEnvironment, cluster: Cluster) -> Observation:
    """Connect, write the variables, and measure the configuration."""
    variables = _variables(env, cluster)
    db = Database(env.url)
    try:
        with db.reader() as snap:
            schema = snap.schema()
            fingerprint = configuration_fingerprint(snap, env.profile, env.spec.system_tables)
            version = app_version(snap) if env.profile is Profile.NOCOBASE else None
    finally:
        db.dispose()
    return Observation(schema.dialect, schema.server_version, version, fingerprint, variables)


def fingerprint_of(env: ResolvedEnvironment) -> Fingerprint:
    db = Database(env.url)
    try:
        with db.reader() as snap:
            return configuration_fingerprint(snap, env.profile, env.spec.system_tables)
    finally:
        db.dispose()
