"""One writer per target: a database-level lock held for the whole write.

PostgreSQL uses a transaction-scoped advisory lock, MySQL/MariaDB a named lock on
the connection, SQLite the write lock ``BEGIN IMMEDIATE`` takes. The lock lives in
the target itself, so it also holds across operator replicas and CLI runs.
"""

from __future__ import annotations

import zlib

import sqlalchemy as sa

from controller.errors import Busy

LOCK_NAME = "ferry.write"


def acquire(conn: sa.Connection) -> None:
    """Take the write lock inside the current transaction, or raise :class:`Busy`."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        key = zlib.crc32(LOCK_NAME.encode())
        got = conn.execute(sa.text("select pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar()
    elif dialect == "mysql":
        got = conn.execute(sa.text("select get_lock(:n, 0)"), {"n": LOCK_NAME}).scalar() == 1
    else:
        got = True  # BEGIN IMMEDIATE already holds the database's write lock
    if not got:
        raise Busy(
            "another write (migration or restore) is running against this database", delay=15
        )


def release(conn: sa.Connection) -> None:
    if conn.dialect.name == "mysql":
        conn.execute(sa.text("select release_lock(:n)"), {"n": LOCK_NAME})
