"""A backup stopped (SIGTERM: a pod deleted, a node drained) while the database keeps
it waiting on a lock stops at once: its query is cancelled in the server, it removes
its partial backup and exits 143, instead of holding on until the grace period's
SIGKILL and leaving its partial for the stale-writer sweep. On real PostgreSQL (another
session holding ``LOCK TABLE … IN ACCESS EXCLUSIVE MODE``) and MariaDB (``LOCK TABLES
… WRITE``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.fixtures import nocobase_shape as shape
from tests.harness.cluster import wait_for

pytestmark = pytest.mark.db
ROOT = Path(__file__).resolve().parents[2]


# Another session's lock that a backup's read of ``roles`` waits on, and how to see
# a session waiting on it.
LOCK = {
    "postgresql": 'LOCK TABLE "roles" IN ACCESS EXCLUSIVE MODE',
    "mysql": "LOCK TABLES `roles` WRITE",
}
WAITING = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity "
    "WHERE wait_event_type = 'Lock' AND state = 'active'",
    "mysql": "SELECT count(*) FROM information_schema.PROCESSLIST "
    "WHERE STATE = 'Waiting for table metadata lock'",
}


# The CLI with PostgreSQL's fast path (ADBC) switched off: psycopg reads instead.
GENERIC = (
    "import sys; from controller.db import pg_fast; pg_fast.ENABLED = False; "
    "from controller.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def _waiting(engine: sa.Engine, dialect: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.exec_driver_sql(WAITING[dialect]).scalar_one())


@pytest.mark.parametrize(
    ("dialect", "fast"), [("postgresql", True), ("postgresql", False), ("mysql", False)]
)
def test_a_sigterm_cancels_the_query_a_backup_waits_on(
    make_database: Callable[..., str], tmp_path: Path, dialect: str, fast: bool
) -> None:
    url = make_database(dialect, "locked")
    shape.build(url)
    engine = sa.create_engine(url)
    store = tmp_path / "store"
    # The URL (with its password) through the environment: never in a shown command line.
    argv = ["backup", "create", "--store", str(store), "--environment", "e"]
    holder = engine.connect()
    try:
        holder.exec_driver_sql("BEGIN")
        holder.exec_driver_sql(LOCK[dialect])
        proc = subprocess.Popen(
            [sys.executable, *(["-m", "controller"] if fast else ["-c", GENERIC]), *argv],
            cwd=ROOT,
            env={**os.environ, "FERRY_DATABASE_URL": url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(lambda: _waiting(engine, dialect), timeout=60, interval=0.1,
                     description="the backup waiting on the locked table")  # fmt: skip
            assert any(store.rglob(".partial-*"))  # its partial backup, mid-run
            started = time.monotonic()
            os.kill(proc.pid, signal.SIGTERM)
            code = proc.wait(timeout=15)  # the lock is still held
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        took = time.monotonic() - started
        assert code == 128 + signal.SIGTERM, proc.stderr.read() if proc.stderr else ""
        assert took < 10, took
        assert [p for p in store.rglob("*") if p.is_file()] == []  # no partial left
        # Its query is gone from the server too: nothing waits on the lock any more.
        wait_for(lambda: not _waiting(engine, dialect), timeout=10,
                 description="no session left waiting on the lock")  # fmt: skip
    finally:
        holder.close()
        engine.dispose()
