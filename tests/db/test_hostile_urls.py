# ruff: noqa: E501 - the table reads best one case a line
"""Hostile and broken connection inputs, through the ``ferry`` command line.

One table: database URLs (wrong passwords in the user info or the query string, bad
ports, options, drivers, SSL modes), SQLite paths that do not exist or are not
databases, and Git sources (plain HTTP, ``ext::``/``fd::`` transports, option tricks,
malformed revisions and paths), across ``plan``, ``migrate``, ``export``, ``backup
create``, ``restore`` and ``rollback``. Each case proves, with
:func:`tests.hostile.assert_refused`, the exit code, one line of error without a
traceback, and that the target, the store, the export directory and the SQLite files
are byte-for-byte unchanged (a missing SQLite file stays missing). Every password
placed in a URL is then looked for in the output and in the log records: it never
appears. PostgreSQL and MariaDB cases run against the real servers.

Below the table: a busy SQLite database is exit 75, and the MySQL/MariaDB write lock
belongs to one database, not to the server.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy.engine import make_url

from controller.db.database import Database
from controller.errors import Busy
from tests.fixtures import nocobase_shape as shape
from tests.harness.dbservers import RunningServer
from tests.harness.gitserver import GitServer
from tests.hostile import assert_refused, run_cli

PW = "Hunter2-Wrong-Secret"  # a wrong password: must never be printed or logged
VARS = {"HOOK_TOKEN": ("secret", "t"), "TICKET_WEBHOOK": ("plain", "u")}


@dataclass(frozen=True)
class World:
    """What the cases point at; every URL here is valid and holds data."""

    tmp: Path
    dev: str  # SQLite source
    pre: str  # SQLite target
    pg: str  # PostgreSQL target
    my: str  # MariaDB target
    store: Path  # holds backup ``backup_id`` and migration ``m1`` of ``pre``
    backup_id: str
    export_dir: Path
    git: GitServer

    def fields(self) -> dict[str, str]:
        pg, my = make_url(self.pg), make_url(self.my)
        return {
            "tmp": str(self.tmp),
            "pw": PW,
            "pg_user": str(pg.username),
            "pg_host": f"{pg.host}:{pg.port}",
            "pg_db": str(pg.database),
            "pg_pw": str(pg.password),
            "my_user": str(my.username),
            "my_host": f"{my.host}:{my.port}",
            "my_db": str(my.database),
            "my_pw": str(my.password),
            "git": self.git.url("config").removeprefix("https://"),
        }


def _create(server: RunningServer, name: str) -> str:
    with contextlib.suppress(Exception):  # left over from an interrupted run
        server.drop_database(name)
    return server.create_database(name)


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: RunningServer,
    mariadb_server: RunningServer,
) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("hostile-urls")
    dev, pre = f"sqlite:///{tmp}/dev.db", f"sqlite:///{tmp}/pre.db"
    shape.build(dev, app="dev", variables=VARS)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables=VARS)
    pg = _create(postgres_server, "ferry_hostile_urls")
    my = _create(mariadb_server, "ferry_hostile_urls")
    shape.build(pg, app="pre", variables=VARS)
    shape.build(my, app="pre", variables=VARS)
    store = tmp / "store"
    made = run_cli(
        ["backup", "create", "--database", pre, "--store", str(store), "--format", "json"]
    )
    assert made.code == 0, made.stderr
    backup_id = json.loads(made.stdout)["id"]
    migrated = run_cli(
        ["migrate", "--source", dev, "--target", pre, "--id", "m1", "--backup-store", str(store)]
    )
    assert migrated.code == 0, migrated.stderr
    work = tmp / "repo"
    export_dir = tmp / "export"
    export_dir.mkdir()
    assert run_cli(["export", "--source", dev, "--dir", str(work / "snap")]).code == 0
    with GitServer(tmp / "served", token="unused") as git:
        import subprocess

        for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "c"]):
            subprocess.run(
                ["git", "-C", str(work), "-c", "user.email=t@t", "-c", "user.name=t", *args],
                check=True,
                capture_output=True,
            )
        git.create_repository("config", work)
        yield World(tmp, dev, pre, pg, my, store, backup_id, export_dir, git)
    postgres_server.drop_database("ferry_hostile_urls")
    mariadb_server.drop_database("ferry_hostile_urls")


def _argv(command: str, bad: str, w: World) -> list[str]:
    """``ferry`` arguments that use ``bad`` where ``command`` takes a database or source."""
    store = str(w.store)
    return {
        "plan-target": ["plan", "--source", w.dev, "--target", bad],
        "plan-source": ["plan", "--source", bad, "--target", w.pre],
        "migrate": ["migrate", "--source", w.dev, "--target", bad, "--backup-store", store],
        "migrate-source": ["migrate", "--source", bad, "--target", w.pre, "--skip-backup"],
        "export": ["export", "--source", bad, "--dir", str(w.export_dir / "out")],
        "backup": ["backup", "create", "--database", bad, "--store", store],
        "restore": ["restore", "--store", store, "--backup", w.backup_id, "--database", bad],
        "rollback": ["rollback", "--store", store, "--migration", "m1", "--database", bad],
    }[command]


PG = "postgresql+psycopg://{pg_user}:{pg_pw}@{pg_host}/{pg_db}"
MY = "mysql+pymysql://{my_user}:{my_pw}@{my_host}/{my_db}"
MISSING = "sqlite:///{tmp}/missing.db"

C = pytest.param
CASES = [
    # --- passwords: wrong, in the user info or the query string; never printed ---------
    C("plan-target", "postgresql+psycopg://{pg_user}:{pw}@{pg_host}/{pg_db}", 2, "access denied", id="pg-wrong-password-userinfo"),
    C("migrate", "postgresql+psycopg://{pg_user}@{pg_host}/{pg_db}?password={pw}", 2, "password=***", id="pg-wrong-password-query"),
    C("backup", "postgresql+psycopg://{pg_user}@{pg_host}/{pg_db}?PassWord={pw}", 2, "invalid connection option", id="pg-password-query-mixed-case"),
    C("export", "postgresql+psycopg://{pg_user}:{pw}@{pg_host}/{pg_db}?sslmode=require&sslpassword={pw}", 2, "ssl", id="pg-sslpassword-no-ssl-server"),
    C("restore", "postgresql+psycopg://{pg_user}:{pw}@{pg_host}/{pg_db}", 2, "access denied", id="pg-wrong-password-restore"),
    C("rollback", "postgresql+psycopg://{pg_user}@{pg_host}/{pg_db}?password={pw}", 2, "access denied", id="pg-wrong-password-rollback"),
    C("plan-source", "postgresql://{pg_user}:{pw}@{pg_host}/{pg_db}", 2, "access denied", id="pg-default-driver-wrong-password"),
    C("plan-target", "postgresql+psycopg://{pg_user}:{pw}@{pw}@{pg_host}/{pg_db}", 2, "percent-encoded", id="pg-unencoded-at-in-password"),
    C("plan-target", "mysql+pymysql://{my_user}:{pw}@{my_host}/{my_db}", 2, "access denied", id="my-wrong-password-userinfo"),
    C("migrate", "mysql+pymysql://{my_user}@{my_host}/{my_db}?password={pw}", 2, "password=***", id="my-wrong-password-query"),
    C("backup", "mysql+pymysql://{my_user}@{my_host}/{my_db}?passwd={pw}", 2, "passwd=***", id="my-wrong-passwd-query"),
    C("restore", "mysql+pymysql://{my_user}:{pw}@{my_host}/{my_db}?ssl_key_password={pw}", 2, "access denied", id="my-ssl-key-password"),
    C("export", "mysql://{my_user}:{pw}@{my_host}/{my_db}", 2, "access denied", id="my-default-driver-wrong-password"),
    # --- ports, options, SSL modes, drivers --------------------------------------------
    C("plan-target", "postgresql+psycopg://{pg_user}:{pw}@127.0.0.1:abc/{pg_db}", 2, "port is not a number", id="port-not-numeric"),
    C("migrate", "postgresql+psycopg://{pg_user}:{pw}@127.0.0.1:99999/{pg_db}", 2, "out of range", id="port-too-large"),
    C("backup", "mysql+pymysql://{my_user}:{pw}@127.0.0.1:0/{my_db}", 2, "out of range", id="port-zero"),
    C("restore", "postgresql+psycopg://{pg_user}:{pw}@127.0.0.1:-5/{pg_db}", 2, "out of range", id="port-negative"),
    C("plan-target", PG + "?sslmode=bogus", 2, "sslmode", id="pg-bad-sslmode"),
    C("rollback", PG + "?sslmode=Require", 2, "sslmode", id="pg-sslmode-wrong-case"),
    C("migrate", PG + "?no_such_option=1", 2, "no_such_option", id="pg-unknown-option"),
    C("export", PG + "?keepalives=soon", 2, "keepalives", id="pg-option-not-integer"),
    C("plan-target", PG + "?options=-cstatement_timeout%3Dsoon", 2, "statement_timeout", id="pg-bad-server-option"),
    C("plan-target", PG + "?target_session_attrs=whatever", 2, "target_session_attrs", id="pg-bad-session-attrs"),
    C("plan-target", MY + "?ssl_mode=bogus", 2, "ssl_mode", id="my-unknown-ssl-mode-option"),
    C("migrate", MY + "?no_such_option=1", 2, "no_such_option", id="my-unknown-option"),
    C("backup", MY + "?read_timeout=soon", 2, "cannot open", id="my-option-not-integer"),
    C("restore", MY + "?local_infile=maybe", 2, "true/false", id="my-option-not-boolean"),
    C("rollback", MY + "?ssl_verify_cert=true", 2, "ssl is required", id="my-ssl-required-no-ssl-server"),
    C("plan-target", "postgresql+psycopg://{pg_user}:{pg_pw}@{pg_host}/no_such_db", 2, "does not exist", id="pg-unknown-database"),
    C("plan-target", "mysql+pymysql://{my_user}:{my_pw}@{my_host}/no_such_db", 2, "unknown database", id="my-unknown-database"),
    C("plan-target", "oracle://scott:{pw}@db.example/orcl", 2, "unsupported database", id="unknown-dialect"),
    C("migrate", "postgresql+asyncpg://u:{pw}@127.0.0.1/db", 2, "unsupported driver", id="async-driver"),
    C("backup", "postgresql+psycopg2://u:{pw}@127.0.0.1/db", 2, "unsupported driver", id="driver-not-installed"),
    C("export", "mysql+nosuchdriver://u:{pw}@127.0.0.1/db", 2, "unsupported driver", id="unknown-driver"),
    C("plan-source", "://u:{pw}@", 2, "not a database url", id="no-scheme"),
    # --- SQLite files: never created, never a traceback ---------------------------------
    C("plan-target", MISSING, 2, "never creates", id="sqlite-missing-plan"),
    C("plan-source", MISSING, 2, "never creates", id="sqlite-missing-plan-source"),
    C("migrate", MISSING, 2, "never creates", id="sqlite-missing-migrate"),
    C("export", MISSING, 2, "never creates", id="sqlite-missing-export"),
    C("backup", MISSING, 2, "never creates", id="sqlite-missing-backup"),
    C("restore", MISSING, 2, "never creates", id="sqlite-missing-restore"),
    C("rollback", MISSING, 2, "never creates", id="sqlite-missing-rollback"),
    C("migrate", "sqlite:///{tmp}/no-such-dir/x.db", 2, "never creates", id="sqlite-missing-dir"),
    C("plan-target", "sqlite:///{tmp}", 2, "is a directory", id="sqlite-directory"),
    C("migrate", "sqlite:///{tmp}/dev.db/inner.db", 2, "not a directory", id="sqlite-under-a-file"),
    C("plan-target", "sqlite:///{tmp}/not-a-db.txt", 2, "not a database", id="sqlite-not-a-database"),
    C("backup", "sqlite:////dev/null", 2, "not a regular file", id="sqlite-device"),
    C("plan-target", "sqlite:///{tmp}/dev.db?mode=rwc", 2, "not supported", id="sqlite-create-mode"),
    C("migrate", "sqlite:///{tmp}/pre.db?timeout=soon", 2, "cannot open", id="sqlite-bad-timeout"),
    C("plan-target", "sqlite://host/{tmp}/pre.db", 2, "sqlite url", id="sqlite-with-host"),
    C("restore", "sqlite+pysqlcipher:///{tmp}/pre.db", 2, "unsupported driver", id="sqlite-other-driver"),
    # --- Git sources ----------------------------------------------------------------------
    C("plan-source", "git+http://{git}", 2, "http:// is not accepted", id="git-plain-http"),
    C("migrate-source", "git+http://x-access-token:{pw}@{git}#revision=main", 2, "http:// is not accepted", id="git-http-with-credentials"),
    C("plan-source", "git+git://127.0.0.1:9/config.git", 2, "git:// is not accepted", id="git-protocol"),
    C("plan-source", "git+ext::sh -c touch% {tmp}/pwned", 2, "git", id="git-ext-transport"),
    C("plan-source", "git+ext::sh", 2, "transport::address", id="git-ext-no-args"),
    C("plan-source", "git+fd::7", 2, "transport::address", id="git-fd-transport"),
    C("plan-source", "git+file::{tmp}/repo", 2, "transport::address", id="git-file-transport"),
    C("plan-source", "git+--upload-pack=touch {tmp}/pwned", 2, "git", id="git-upload-pack"),
    C("plan-source", "git+--upload-pack=/bin/true", 2, "starts with '-'", id="git-option-no-space"),
    C("plan-source", "git+ssh://-oProxyCommand=touch%20{tmp}%2Fpwned/x.git", 2, "may not start with '-'", id="git-ssh-host-option"),
    C("plan-source", "git+-oProxyCommand=x:repo.git", 2, "starts with '-'", id="git-scp-option"),
    C("plan-source", "git+https://{git}#revision=main..HEAD", 2, "not a revision name", id="git-revision-range"),
    C("plan-source", "git+https://{git}#revision=--output=x", 2, "not a revision name", id="git-revision-option"),
    C("plan-source", "git+https://{git}#revision=main&path=../..", 2, "leaves the repository", id="git-path-escape"),
    C("plan-source", "git+https://{git}#revision=main&path=/etc", 2, "leaves the repository", id="git-path-absolute"),
    C("plan-source", "git+https://{git}#rev=main", 2, "unknown: rev", id="git-unknown-parameter"),
    C("plan-source", "git+https://{git}#revision=main&revision=v2", 2, "expected git+url", id="git-parameter-twice"),
    C("plan-source", "git+https://{git}#revision", 2, "expected git+url", id="git-fragment-malformed"),
    C("plan-source", "git+", 2, "expected git+url", id="git-empty"),
    C("plan-source", "git+https://{git}#revision=main&path=snap%00x", 2, "control characters", id="git-path-nul"),
]  # fmt: skip


@pytest.mark.parametrize(("command", "bad", "code", "says"), CASES)
def test_refused(
    world: World,
    command: str,
    bad: str,
    code: int,
    says: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (world.tmp / "not-a-db.txt").write_text("not a database\n")
    bad = bad.format(**world.fields())
    watched: list[str | Path] = [world.pre, world.pg, world.my, world.store, world.export_dir]
    watched += [world.tmp / "dev.db", world.tmp / "missing.db", world.tmp / "no-such-dir"]
    watched += [world.tmp / "not-a-db.txt", world.tmp / "pwned"]
    caplog.set_level(logging.DEBUG)
    outcome = assert_refused(_argv(command, bad, world), code, watched=watched, says=says)
    for text in (outcome.stdout, outcome.stderr, caplog.text):
        assert PW not in text and quote(PW) not in text
    assert not (world.tmp / "pwned").exists()


# --- busy and locked ----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["migrate", "restore", "rollback"])
def test_a_busy_sqlite_database_is_temporary(world: World, command: str) -> None:
    """Another writer holds the SQLite file: exit 75 (retry later), nothing changed."""
    path = make_url(world.pre).database
    assert path is not None
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        # restore and rollback take their safety backup before the write lock, so the
        # store may gain one; the target is what must not change.
        watched: list[str | Path] = [world.tmp / "pre.db"]
        watched += [world.store] if command == "migrate" else []
        assert_refused(_argv(command, world.pre, world), 75, watched=watched, says="busy")
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"], ids=["postgresql", "mariadb"])
def test_the_write_lock_belongs_to_one_database(dialect: str, make_database: Any) -> None:
    """Two writes into two databases of one server run side by side; into one, the
    second is refused as busy while the first holds the lock, and gets it afterwards."""
    first, second = make_database(dialect, "lock_a"), make_database(dialect, "lock_b")
    a, a_again, b = Database(first), Database(first), Database(second)
    try:
        with a.writer():
            with b.writer():
                pass  # another database of the same server: not blocked
            with pytest.raises(Busy), a_again.writer():
                pass
        with a_again.writer():
            pass  # released with the first writer
    finally:
        for db in (a, a_again, b):
            db.dispose()
