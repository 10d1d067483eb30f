"""Open databases, and classify driver errors at the edge.

Everything that can be wrong with a URL is refused before the first connection
(:mod:`controller.db.urls`), and the options the driver would receive are checked
against what it accepts, so a typo is exit 2 with one line, not a ``TypeError``
traceback. SQLite files are opened with ``mode=rw``: Ferry never creates a database,
not even as the side effect of a ``plan`` against a mistyped path. Driver errors are
mapped to the error tree by what they mean: an invalid option is invalid input, a busy
or locked database is temporary, and every message is scrubbed of secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    NoSuchModuleError,
    OperationalError,
)

from controller.db.urls import SUPPORTED, dialect_of, parse, redact, scrub
from controller.errors import Busy, InvalidInput, PermanentError, Unreachable

__all__ = [
    "SUPPORTED",
    "build_url",
    "check_sqlite_file",
    "classified",
    "classify",
    "create_engine",
    "default_environment",
    "dialect_of",
    "identity",
    "redact",
    "scrub",
]

_BUSY = ("database is locked", "database table is locked", "database schema is locked")
# What libpq, PyMySQL and SQLite say when the URL, not the server, is wrong.
_INVALID = re.compile(
    r"invalid connection option|invalid \w+ value: |invalid integer value \S+ for connection"
    r"|invalid port number|invalid value for parameter|unable to open database file"
    r"|file is not a database|unknown (?:character set|collation)|not a valid \w+ value"
    r"|server does not support ssl|ssl connection is required|ssl is required but the server",
    re.IGNORECASE,
)
# Refusals of who connects, or to what: wrong credentials or database name are input
# to correct, not a failure while applying, nor worth retrying unchanged.
_DENIED = re.compile(
    r"password authentication failed|no password supplied|role \S+ does not exist"
    r"|no pg_hba\.conf entry|access denied for user",
    re.IGNORECASE,
)
_NO_DATABASE = re.compile(r"database \S+ does not exist|unknown database", re.IGNORECASE)
_UNREACHABLE = (
    "connection refused",
    "could not connect",
    "can't connect",
    "timeout",
    "timed out",
    "server has gone away",
    "lost connection",
    "name or service not known",
    "no such host",
    "could not translate host name",
    "failed to resolve host",
    "connection is bad",
    "terminating connection",
)


def _sqlite_transactions(engine: sa.Engine) -> None:
    # pysqlite starts transactions lazily and never around DDL; take over so a
    # migration's DDL and DML share one transaction, and writers take the lock up front.
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def check_sqlite_file(url: str) -> None:
    """Refuse, as :func:`create_engine` does, a SQLite URL whose file is not (or no
    longer) an existing, readable regular file."""
    parsed = parse(url)
    _sqlite_file(parsed, redact(parsed))


def _sqlite_file(url: URL, shown: str) -> None:
    """Refuse a SQLite path that is not an existing, readable regular file."""
    if url.database in (None, "", ":memory:"):
        return
    path = Path(url.database or "")
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise InvalidInput(
            f"{shown}: no SQLite database at {path} (Ferry never creates one)"
        ) from None
    except OSError as err:
        raise InvalidInput(f"{shown}: cannot open {path}: {err.strerror}") from None
    if stat.S_ISDIR(mode):
        raise InvalidInput(f"{shown}: {path} is a directory, not a SQLite database")
    if not stat.S_ISREG(mode):
        raise InvalidInput(f"{shown}: {path} is not a regular file")
    if not os.access(path, os.R_OK):
        raise InvalidInput(f"{shown}: {path} is not readable")


def _open_existing_only(engine: sa.Engine) -> None:
    """Open SQLite files as ``file:…?mode=rw``: a file deleted after the check above
    is an error, never a new empty database. A pooled connection is used again only
    while the path still names the file it opened (a file replaced or deleted since
    is opened afresh, or refused), so a kept pool never reads a stale file."""
    path = engine.url.database or ""
    if path in ("", ":memory:"):
        return

    @event.listens_for(engine, "do_connect")
    def _do_connect(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        if cargs and cargs[0] != ":memory:" and not cparams.get("uri"):
            cargs[0] = f"file:{quote(os.path.abspath(cargs[0]))}?mode=rw"
            cparams["uri"] = True
        return dialect.connect(*cargs, **cparams)

    @event.listens_for(engine, "connect")
    def _opened(_dbapi_conn: Any, record: Any) -> None:
        record.info["file"] = _file_id(path)

    @event.listens_for(engine, "checkout")
    def _same_file(_dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("file") != _file_id(path):
            raise DisconnectionError("the SQLite file was replaced")  # the pool reconnects


def _file_id(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _refuse_bad_options(engine: sa.Engine, shown: str) -> None:
    """Check option names against what the driver accepts, before any connection, and
    turn a driver's ``TypeError``/``ValueError`` at connect time into invalid input."""
    _, params = engine.dialect.create_connect_args(engine.url)
    if engine.dialect.name == "postgresql":
        import psycopg

        try:
            psycopg.conninfo.make_conninfo(
                "", **{k: v for k, v in params.items() if k != "context"}
            )
        except psycopg.Error as err:
            raise InvalidInput(f"{shown}: {scrub(str(err))}") from None
    elif engine.dialect.name == "mysql":
        accepted = set(inspect.signature(engine.dialect.loaded_dbapi.connect).parameters)
        accepted |= set(inspect.signature(engine.dialect.loaded_dbapi.Connection).parameters)
        unknown = sorted(set(params) - accepted)
        if unknown:
            raise InvalidInput(f"{shown}: unknown connection option(s) {', '.join(unknown)}")

    @event.listens_for(engine, "do_connect")
    def _do_connect(dialect: Any, _record: Any, cargs: list[Any], cparams: dict[str, Any]) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except (TypeError, ValueError, LookupError) as err:
            raise InvalidInput(f"{shown}: invalid connection option: {scrub(str(err))}") from None


_SALT = os.urandom(32)  # per process: a key says nothing about a password
Identity = tuple[str, str]


def identity(url: str) -> Identity:
    """A database's key in the process's caches: its URL as shown (no password) and a
    keyed hash of the whole URL, so two credentials for one database are two keys."""
    tag = hmac.new(_SALT, url.encode(), hashlib.sha256).hexdigest()[:32]
    return redact(url), tag


def create_engine(url: str) -> sa.Engine:
    parsed = parse(url)
    shown = redact(parsed)
    dialect = dialect_of(url)
    try:
        if dialect == "sqlite":
            _sqlite_file(parsed, shown)
            engine = sa.create_engine(parsed, connect_args={"timeout": 5})
            _sqlite_transactions(engine)
            _open_existing_only(engine)
            return engine
        if dialect == "postgresql":
            engine = sa.create_engine(
                parsed, pool_pre_ping=True, connect_args={"connect_timeout": 10}
            )
        else:
            engine = sa.create_engine(
                parsed,
                pool_pre_ping=True,
                connect_args={"connect_timeout": 10, "charset": "utf8mb4"},
            )
        _refuse_bad_options(engine, shown)
    except (ArgumentError, NoSuchModuleError, ValueError, TypeError, ImportError) as err:
        raise InvalidInput(f"cannot open {shown}: {scrub(str(err)).splitlines()[0]}") from None
    return engine


def classify(err: Exception, what: str) -> Exception:
    """Map a driver error to Ferry's error tree, scrubbed of credentials."""
    original = getattr(err, "orig", None) or err
    lines = scrub(str(original)).strip().splitlines() or [type(original).__name__]
    text = lines[0][:500]
    lowered = text.lower()
    if any(s in lowered for s in _BUSY):
        return Busy(f"{what}: the database is busy ({text})", delay=15)
    if isinstance(err, DBAPIError) and "file is not a database" in text.lower():
        return InvalidInput(f"{what}: {text}", reason="NotADatabase")
    if isinstance(err, DBAPIError) and _INVALID.search(text):
        return InvalidInput(f"{what}: {text}")
    if isinstance(err, OperationalError | sa.exc.ProgrammingError):
        if _DENIED.search(text):
            return InvalidInput(f"{what}: access denied: {text}", reason="DatabaseAccessDenied")
        if _NO_DATABASE.search(text):
            return InvalidInput(f"{what}: {text}", reason="DatabaseNotFound")
    if isinstance(err, OperationalError) and any(s in lowered for s in _UNREACHABLE):
        return Unreachable(f"{what}: database unreachable: {text}")
    if isinstance(err, DBAPIError):
        return PermanentError(f"{what}: {text}")
    return PermanentError(f"{what}: {type(err).__name__}: {text}")


def _driver_error(err: Exception) -> DBAPIError | None:
    """A driver's own exception (raised through a raw connection: COPY, staging, hash
    functions), wrapped as SQLAlchemy wraps it, or None for any other exception."""
    for module, base in (("psycopg", "Error"), ("pymysql", "Error"), ("sqlite3", "Error")):
        if not type(err).__module__.startswith(module):
            continue
        dbapi = __import__(module)
        base_error = getattr(dbapi, base)
        if isinstance(err, base_error):
            wrapped = DBAPIError.instance(None, None, err, base_error)
            return wrapped if isinstance(wrapped, DBAPIError) else None
    return None


@contextmanager
def classified(what: str) -> Iterator[None]:
    try:
        yield
    except (DBAPIError, sa.exc.SQLAlchemyError) as err:
        raise classify(err, what) from err
    except Exception as err:
        wrapped = _driver_error(err)
        if wrapped is None:
            raise
        raise classify(wrapped, what) from err


def default_environment(url: str) -> str:
    """A name for an environment known only by its URL: the database (file) name."""
    try:
        database = make_url(url).database or "default"
    except (ArgumentError, ValueError):
        return "default"
    name = re.sub(r"[^A-Za-z0-9._-]", "-", database.rsplit("/", 1)[-1].rsplit(".", 1)[0])
    return name.strip("-.") or "default"


def build_url(
    dialect: str,
    *,
    host: str | None,
    port: int | None,
    database: str | None,
    user: str | None,
    password: str | None,
) -> str:
    """A SQLAlchemy URL from discrete fields (the password is escaped, never logged)."""
    if dialect == "sqlite":
        return f"sqlite:///{database or ''}"
    driver = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}.get(dialect)
    if driver is None:
        raise InvalidInput(f"unsupported dialect {dialect!r}")
    query = {"charset": "utf8mb4"} if dialect == "mysql" else {}
    return URL.create(
        driver,
        username=user,
        password=password,
        host=host,
        port=port,
        database=database,
        query=query,
    ).render_as_string(hide_password=False)
