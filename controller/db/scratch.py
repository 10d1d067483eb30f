"""Scratch databases for rehearsals: created and dropped by Ferry, under one fixed prefix.

A rehearsal needs a database nobody else uses, of the target's dialect, that it may
create and drop. The place is a *scratch server* — a server URL (PostgreSQL: the
maintenance database to connect to; MariaDB: no database), or for SQLite a directory
(``sqlite:////dir``) — and every database Ferry makes there is named
``ferry_rehearsal_<target tag>_<random>``: the tag (a digest of the target's host, port
and database) keeps rehearsals of two targets sharing one server apart, so the
leftovers of a crashed rehearsal of *this* target can be dropped at its next one
without touching a rehearsal of another target that runs at the same time (Ferry
queues the writers of one target, so no two rehearsals of one target overlap).

Nothing outside the prefix is ever dropped, every name is checked against the pattern
before it reaches SQL, and a target whose own database carries the prefix is refused.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from controller.db.connect import classified, create_engine
from controller.db.urls import dialect_of, parse, redact
from controller.errors import InvalidInput

PREFIX = "ferry_rehearsal_"
_NAME = re.compile(rf"^{PREFIX}[0-9a-f]{{8}}_[0-9a-f]{{12}}$")
_CHARSET = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_SQLITE_SIDES = ("", "-journal", "-wal", "-shm")


@dataclass(frozen=True)
class ScratchServer:
    """Where rehearsals of one target run; ``url`` may hold a password (use ``label``)."""

    url: URL
    dialect: str
    tag: str  # names this target among the databases on the server

    @property
    def label(self) -> str:
        return redact(self.url)

    @property
    def directory(self) -> Path:
        assert self.dialect == "sqlite"
        return Path(self.url.database or "")

    def url_of(self, name: str) -> str:
        _check_name(name)
        if self.dialect == "sqlite":
            return f"sqlite:///{self.directory / (name + '.db')}"
        return self.url.set(database=name).render_as_string(hide_password=False)


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidInput(f"{name!r} is not a rehearsal database name")


def _target_tag(target: URL) -> str:
    where = f"{target.host or ''}:{target.port or ''}/{target.database or ''}"
    return hashlib.sha256(where.encode()).hexdigest()[:8]


def scratch_server(url: str, target_url: str) -> ScratchServer:
    """The scratch server at ``url`` for rehearsals of ``target_url``, checked before
    anything connects: the target's dialect, a directory for SQLite, and a target whose
    database could be mistaken for a rehearsal's refused."""
    parsed, target = parse(url), parse(target_url)
    dialect, target_dialect = dialect_of(url), dialect_of(target_url)
    shown = redact(parsed)
    if dialect != target_dialect:
        raise InvalidInput(
            f"the scratch server {shown} is {dialect}, the target is {target_dialect}: a "
            "rehearsal runs on the target's dialect"
        )
    target_name = Path(target.database or "").name if dialect == "sqlite" else target.database
    if (target_name or "").startswith(PREFIX):
        raise InvalidInput(
            f"the target {redact(target)} is named like a rehearsal database ({PREFIX}…): "
            "Ferry drops those, so it refuses to rehearse into its neighbourhood"
        )
    if dialect == "sqlite":
        directory = Path(parsed.database or "")
        if parsed.database in (None, "", ":memory:") or not directory.is_dir():
            raise InvalidInput(
                f"the SQLite scratch {shown} must name an existing directory "
                "(sqlite:////path/to/dir); rehearsal files are created in it"
            )
        if directory.is_symlink():
            raise InvalidInput(f"the SQLite scratch directory {directory} is a symbolic link")
    elif dialect == "postgresql" and not parsed.database:
        parsed = parsed.set(database="postgres")  # the maintenance database
    return ScratchServer(parsed, dialect, _target_tag(target))


def new_name(server: ScratchServer) -> str:
    return f"{PREFIX}{server.tag}_{secrets.token_hex(6)}"


def _admin(server: ScratchServer) -> sa.Engine:
    engine = create_engine(server.url.render_as_string(hide_password=False))
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def _listed(server: ScratchServer) -> list[str]:
    """This target's rehearsal databases on the server (its leftovers, between runs)."""
    mine = f"{PREFIX}{server.tag}_"
    if server.dialect == "sqlite":
        names = [p.name.removesuffix(".db") for p in server.directory.glob(f"{mine}*.db")]
    else:
        sql = (
            "select datname from pg_database"
            if server.dialect == "postgresql"
            else "select schema_name from information_schema.schemata"
        )
        engine = _admin(server)
        try:
            with classified(f"the scratch server {server.label}"), engine.connect() as conn:
                names = [str(r[0]) for r in conn.exec_driver_sql(sql)]
        finally:
            engine.dispose()
    return sorted(n for n in names if n.startswith(mine) and _NAME.fullmatch(n))


def drop_leftovers(server: ScratchServer) -> tuple[str, ...]:
    """Drop the rehearsal databases of this target a crash left behind; their names."""
    names = _listed(server)
    for name in names:
        drop(server, name)
    return tuple(names)


def _mysql_charset(target_url: str) -> tuple[str, str] | None:
    """The target database's default character set and collation, so unique keys and
    comparisons on the copy behave as on the target."""
    engine = create_engine(target_url)
    try:
        with classified("the target"), engine.connect() as conn:
            row = conn.exec_driver_sql(
                "select default_character_set_name, default_collation_name "
                "from information_schema.schemata where schema_name = database()"
            ).first()
    finally:
        engine.dispose()
    if row is None or not all(_CHARSET.fullmatch(str(v)) for v in row):
        return None
    return str(row[0]), str(row[1])


def create(server: ScratchServer, name: str, target_url: str) -> str:
    """Create the empty database ``name``; its URL (which may hold a password)."""
    _check_name(name)
    if server.dialect == "sqlite":
        (server.directory / f"{name}.db").touch(exist_ok=False)
        return server.url_of(name)
    if server.dialect == "postgresql":
        sql = f"create database \"{name}\" encoding 'UTF8' template template0"
    else:
        charset = _mysql_charset(target_url) or ("utf8mb4", "utf8mb4_bin")
        sql = f"create database `{name}` character set {charset[0]} collate {charset[1]}"
    _execute(server, sql)
    return server.url_of(name)


def drop(server: ScratchServer, name: str) -> None:
    """Drop the rehearsal database ``name`` if it exists (sessions still on it first)."""
    _check_name(name)
    if server.dialect == "sqlite":
        for side in _SQLITE_SIDES:
            (server.directory / f"{name}.db{side}").unlink(missing_ok=True)
        return
    sql = (
        f'drop database if exists "{name}" with (force)'
        if server.dialect == "postgresql"
        else f"drop database if exists `{name}`"
    )
    _execute(server, sql)


def _execute(server: ScratchServer, sql: str) -> None:
    """One statement on the scratch server, outside any transaction (CREATE/DROP
    DATABASE)."""
    engine = _admin(server)
    try:
        with classified(f"the scratch server {server.label}"), engine.connect() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


@dataclass(frozen=True)
class ScratchDatabase:
    name: str
    url: str  # may hold a password
    leftovers: tuple[str, ...]  # this target's earlier rehearsal databases, dropped first


@contextmanager
def scratch_database(server: ScratchServer, target_url: str) -> Iterator[ScratchDatabase]:
    """A fresh rehearsal database, dropped afterwards whatever happens. The leftovers of
    this target's earlier rehearsals are dropped first."""
    leftovers = drop_leftovers(server)
    name = new_name(server)
    url = create(server, name, target_url)
    try:
        yield ScratchDatabase(name, url, leftovers)
    finally:
        drop(server, name)
