"""One writer per target: a database-level lock held for the whole write.

PostgreSQL uses a transaction-scoped advisory lock, MySQL/MariaDB a named lock on
the connection, SQLite the write lock ``BEGIN IMMEDIATE`` takes. The lock lives in
the target itself, so it also holds across operator replicas and CLI runs.

It guards one *database*, not the server: PostgreSQL's advisory locks already belong to
the current database, but MySQL's named locks are server-wide, so the name carries a
digest of the current database's name (a digest, because lock names are limited to 64
characters and database names may use characters a lock name should not). Two
migrations into two databases of one server run side by side; two into one database
do not.
"""

from __future__ import annotations

import hashlib
import zlib

import sqlalchemy as sa

from controller.errors import Busy

LOCK_NAME = "ferry.write"


def mysql_lock_name(database: str | None) -> str:
    """The named lock for one MySQL/MariaDB database (at most 64 characters)."""
    digest = hashlib.sha256((database or "").encode()).hexdigest()[:40]
    return f"{LOCK_NAME}.{digest}"


def _mysql_name(conn: sa.Connection) -> str:
    database = conn.execute(sa.text("select database()")).scalar()
    return mysql_lock_name(None if database is None else str(database))


def acquire(conn: sa.Connection) -> None:
    """Take the write lock inside the current transaction, or raise :class:`Busy`."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        key = zlib.crc32(LOCK_NAME.encode())
        got = conn.execute(sa.text("select pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar()
    elif dialect == "mysql":
        name = _mysql_name(conn)
        got = conn.execute(sa.text("select get_lock(:n, 0)"), {"n": name}).scalar() == 1
    else:
        got = True  # BEGIN IMMEDIATE already holds the database's write lock
    if not got:
        raise Busy(
            "another write (migration or restore) is running against this database", delay=15
        )


def release(conn: sa.Connection) -> None:
    if conn.dialect.name == "mysql":
        conn.execute(sa.text("select release_lock(:n)"), {"n": _mysql_name(conn)})
