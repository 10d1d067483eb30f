"""Open databases, hide passwords, and classify driver errors at the edge."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, OperationalError

from controller.errors import InvalidInput, PermanentError, Unreachable

SUPPORTED = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
_PASSWORD_IN_TEXT = re.compile(r"(://[^:/@\s]+:)[^@\s]+@")


def redact(url: str) -> str:
    """A URL safe to print: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _PASSWORD_IN_TEXT.sub(r"\1***@", url)


def scrub(text: str) -> str:
    """Remove anything that looks like a password inside a URL from an error message."""
    return _PASSWORD_IN_TEXT.sub(r"\1***@", text)


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


def dialect_of(url: str) -> str:
    try:
        backend = make_url(url).get_backend_name()
    except ArgumentError:
        raise InvalidInput(f"not a database URL: {redact(url)}") from None
    if backend not in SUPPORTED:
        raise InvalidInput(
            f"unsupported database {backend!r} in {redact(url)} "
            "(supported: sqlite, postgresql, mysql/mariadb)"
        )
    return SUPPORTED[backend]


def create_engine(url: str) -> sa.Engine:
    dialect = dialect_of(url)
    try:
        if dialect == "sqlite":
            engine = sa.create_engine(url, connect_args={"timeout": 5})
            _sqlite_transactions(engine)
        elif dialect == "postgresql":
            engine = sa.create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
        else:
            engine = sa.create_engine(
                url, pool_pre_ping=True, connect_args={"connect_timeout": 10, "charset": "utf8mb4"}
            )
    except (ArgumentError, NoSuchModuleError) as err:
        raise InvalidInput(f"cannot open {redact(url)}: {scrub(str(err))}") from err
    return engine


def classify(err: Exception, what: str) -> Exception:
    """Map a driver error to Ferry's error tree, scrubbed of credentials."""
    text = scrub(str(getattr(err, "orig", None) or err)).strip().splitlines()[0][:500]
    if isinstance(err, OperationalError) and _looks_unreachable(text):
        return Unreachable(f"{what}: database unreachable: {text}")
    if isinstance(err, DBAPIError):
        return PermanentError(f"{what}: {text}")
    return PermanentError(f"{what}: {type(err).__name__}: {text}")


def _looks_unreachable(text: str) -> bool:
    lowered = text.lower()
    return any(
        s in lowered
        for s in (
            "connection refused",
            "could not connect",
            "can't connect",
            "timeout",
            "timed out",
            "unable to open database",
            "server has gone away",
            "lost connection",
            "name or service not known",
            "no such host",
            "connection is bad",
            "terminating connection",
        )
    )


@contextmanager
def classified(what: str) -> Iterator[None]:
    try:
        yield
    except (DBAPIError, sa.exc.SQLAlchemyError) as err:
        raise classify(err, what) from err


def default_environment(url: str) -> str:
    """A name for an environment known only by its URL: the database (file) name."""
    try:
        database = make_url(url).database or "default"
    except ArgumentError:
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
    from sqlalchemy.engine import URL

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
