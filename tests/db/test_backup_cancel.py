"""A backup stopped (SIGTERM: a pod deleted, a node drained) while the database keeps
it waiting on a lock stops at once: its query is cancelled in the server, it removes
its partial backup and exits 143, instead of holding on until the grace period's
SIGKILL and leaving its partial for the stale-writer sweep. On real PostgreSQL, with
another session holding ``LOCK TABLE … IN ACCESS EXCLUSIVE MODE``."""

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


def _waiting_on_lock(engine: sa.Engine) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            sa.text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE wait_event_type = 'Lock' AND state = 'active' AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    return bool(found)


def _backends(engine: sa.Engine, database: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": database},
            ).scalar_one()
        )


def test_a_sigterm_cancels_the_query_a_backup_waits_on(
    make_database: Callable[..., str], tmp_path: Path
) -> None:
    url = make_database("postgresql", "locked")
    shape.build(url)
    engine = sa.create_engine(url)
    store = tmp_path / "store"
    # The URL (with its password) through the environment: never in a shown command line.
    argv = ["backup", "create", "--store", str(store), "--environment", "e"]
    holder = engine.connect()
    try:
        holder.begin()
        holder.exec_driver_sql('LOCK TABLE "roles" IN ACCESS EXCLUSIVE MODE')
        proc = subprocess.Popen(
            [sys.executable, "-m", "controller", *argv],
            cwd=ROOT,
            env={**os.environ, "FERRY_DATABASE_URL": url},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            wait_for(lambda: _waiting_on_lock(engine), timeout=60, interval=0.1,
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
        # Its session is gone from the server too: nothing left waiting on the lock.
        database = sa.make_url(url).database or ""
        wait_for(lambda: _backends(engine, database) == 1, timeout=10,
                 description="only the lock holder connected")  # fmt: skip
    finally:
        holder.rollback()
        holder.close()
        engine.dispose()
