"""Smoke tests for the database test harness (tests/harness).

They start the real PostgreSQL and MariaDB servers, create databases on them
and round-trip 4-byte UTF-8 text, so a broken harness (or a server set up
with a 3-byte ``utf8`` charset) shows up here rather than as confusing
failures in the real database tests. The last tests check that strict mode
(CI=true / FERRY_STRICT=1) turns skips into a failed run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.harness.dbservers import RunningServer
from tests.harness.pytest_plugin import DatabaseFactory

REPO_ROOT = Path(__file__).resolve().parents[2]

# Outside the BMP: needs utf8mb4 on MariaDB (3-byte "utf8" would reject it).
EMOJI_TEXT = "ferry \U0001f6a2 \U0001f600 \U0001d11e ok"

notes = sa.Table(
    "harness_notes",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("body", sa.String(100), nullable=False),
)


def _roundtrip(url: str, body: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        notes.create(engine)
        with engine.begin() as conn:
            conn.execute(notes.insert(), [{"id": 1, "body": body}])
        with engine.connect() as conn:
            return list(conn.execute(sa.select(notes.c.body)).scalars())
    finally:
        engine.dispose()


def _scalar(url: str, sql: str) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(sa.text(sql)).scalar_one())
    finally:
        engine.dispose()


@pytest.mark.db
def test_postgres_two_databases_with_emoji(
    postgres_server: RunningServer, make_database: DatabaseFactory
) -> None:
    url_a = make_database("postgresql", "smoke_a")
    url_b = make_database("postgresql", "smoke_b")
    assert url_a.startswith("postgresql+psycopg://")
    assert url_a != url_b

    assert _roundtrip(url_a, EMOJI_TEXT) == [EMOJI_TEXT]
    assert _roundtrip(url_b, "second") == ["second"]  # table did not exist yet in b
    assert _scalar(url_a, "SELECT body FROM harness_notes") == EMOJI_TEXT
    assert _scalar(url_a, "SHOW server_encoding") == "UTF8"
    assert _scalar(url_b, "SELECT current_database()") == sa.make_url(url_b).database


@pytest.mark.db
def test_mariadb_two_databases_with_emoji(
    mariadb_server: RunningServer, make_database: DatabaseFactory
) -> None:
    url_a = make_database("mysql", "smoke_a")
    url_b = make_database("mariadb", "smoke_b")
    assert url_a.startswith("mysql+pymysql://")
    assert url_a.endswith("?charset=utf8mb4")
    assert url_a != url_b

    assert _roundtrip(url_a, EMOJI_TEXT) == [EMOJI_TEXT]
    assert _roundtrip(url_b, "second") == ["second"]
    assert _scalar(url_a, "SELECT body FROM harness_notes") == EMOJI_TEXT
    assert _scalar(url_a, "SELECT @@character_set_database") == "utf8mb4"
    assert _scalar(url_b, "SELECT DATABASE()") == sa.make_url(url_b).database


@pytest.mark.db
def test_postgres_version_and_tools(postgres_server: RunningServer) -> None:
    assert postgres_server.dialect == "postgresql"
    version = postgres_server.server_version()
    assert version == postgres_server.version
    match = re.match(r"PostgreSQL (\d+)\.", version)
    assert match, version
    # pg_dump/pg_restore of the server's major version, for benchmarks.
    for tool in ("pg_dump", "pg_restore"):
        out = subprocess.run(
            [str(postgres_server.tool(tool)), "--version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert re.search(rf"\) {match.group(1)}\.", out), out


@pytest.mark.db
def test_mariadb_version(mariadb_server: RunningServer) -> None:
    assert mariadb_server.dialect == "mysql"
    version = mariadb_server.server_version()
    assert version == mariadb_server.version
    assert re.match(r"\d+\.\d+\.\d+", version), version
    if not mariadb_server.external:
        assert "MariaDB" in version
        assert mariadb_server.process is not None
        assert mariadb_server.process.poll() is None


@pytest.mark.db
@pytest.mark.parametrize("dialect_name", ["postgresql", "mysql"])
def test_drop_database(make_database: DatabaseFactory, dialect_name: str) -> None:
    server = make_database.server(dialect_name)
    url = server.create_database("ferry_harness_drop_me")
    engine = sa.create_engine(url)
    conn = engine.connect()  # an open session must not block the drop
    conn.execute(sa.text("SELECT 1"))
    try:
        server.drop_database("ferry_harness_drop_me")
    finally:
        conn.invalidate()
        conn.close()
        engine.dispose()
    if dialect_name == "postgresql":
        sql = "SELECT count(*) FROM pg_database WHERE datname = 'ferry_harness_drop_me'"
    else:
        sql = (
            "SELECT count(*) FROM information_schema.schemata "
            "WHERE schema_name = 'ferry_harness_drop_me'"
        )
    assert _scalar(server.admin_url(), sql) == "0"


@pytest.mark.db
def test_db_url_per_dialect(dialect: str, db_url: str) -> None:
    expected_prefix = {"sqlite": "sqlite:///", "postgresql": "postgresql+", "mysql": "mysql+"}
    assert db_url.startswith(expected_prefix[dialect])
    assert _roundtrip(db_url, EMOJI_TEXT) == [EMOJI_TEXT]


# -- strict mode -------------------------------------------------------------

_SKIPPING_TESTS = textwrap.dedent(
    """
    import pytest

    def test_ok():
        pass

    def test_skipped():
        pytest.skip("no frobnicator")
    """
)


def _run_inner_pytest(
    tmp_path: Path, env_overrides: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_inner.py").write_text(_SKIPPING_TESTS)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "FERRY_STRICT")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env.update(env_overrides)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.harness.pytest_plugin",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            "-c",
            os.devnull,
            str(tmp_path / "test_inner.py"),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("env", [{"CI": "true"}, {"FERRY_STRICT": "1"}], ids=["CI", "FERRY_STRICT"])
def test_strict_mode_fails_on_skip(tmp_path: Path, env: dict[str, str]) -> None:
    result = _run_inner_pytest(tmp_path, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "no frobnicator" in result.stdout
    assert "strict mode" in result.stdout


def test_skips_allowed_locally(tmp_path: Path) -> None:
    result = _run_inner_pytest(tmp_path, {})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "would fail the run" in result.stdout
