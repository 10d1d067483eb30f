"""pytest plugin: real database servers and the "no silent skips in CI" rule.

Why this exists: Ferry's database tests must run against real PostgreSQL and
MariaDB servers (see :mod:`tests.harness.dbservers`), started once per test
session and only when a test needs them; and a test suite that quietly skips
its database tests in CI proves nothing, so in CI skips are failures.

Load it from ``tests/conftest.py`` with
``pytest_plugins = ["tests.harness.pytest_plugin"]`` (or ``-p
tests.harness.pytest_plugin``).

Fixtures:

``postgres_server`` / ``mariadb_server`` (session)
    A :class:`~tests.harness.dbservers.RunningServer`, started on first use
    and stopped at session end. ``$FERRY_TEST_POSTGRES_URL`` /
    ``$FERRY_TEST_MARIADB_URL`` select an existing server instead. If the
    server binaries are missing, the requesting tests are skipped with a hint
    to run ``hack/ensure-system-packages.sh``.
``make_database`` (function)
    ``make_database(dialect, hint="db") -> url``: creates a fresh, uniquely
    named, empty database and returns its SQLAlchemy URL. ``dialect`` is
    ``"sqlite"`` (a file in ``tmp_path``), ``"postgresql"`` or ``"mysql"``
    (alias ``"mariadb"``). Databases are dropped at test teardown.
``dialect`` (function, parametrized)
    ``"sqlite"``, ``"postgresql"``, ``"mysql"`` (test ids ``sqlite``,
    ``postgresql``, ``mariadb``); the server variants carry the ``db`` mark.
``db_url`` (function)
    ``make_database(dialect)`` for the current ``dialect`` parameter.

Strict mode: when ``CI=true`` or ``FERRY_STRICT=1``, every skipped test is
reported as failed (xfail is unaffected) and module-level skips fail the
run. Locally skips are allowed and listed in the summary.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from . import dbservers
from .dbservers import RunningServer, ServerUnavailableError

ENSURE_SCRIPT = "hack/ensure-system-packages.sh"
STRICT_HELP = "CI=true or FERRY_STRICT=1"

DIALECT_PARAMS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.db),
    pytest.param("mysql", id="mariadb", marks=pytest.mark.db),
]

_SERVER_FIXTURE = {"postgresql": "postgres_server", "mysql": "mariadb_server"}
_DIALECT_ALIASES = {"mariadb": "mysql", "postgres": "postgresql"}


def strict_mode() -> bool:
    """True when skipped tests must fail the run (CI=true or FERRY_STRICT=1)."""
    return os.environ.get("CI", "").strip().lower() == "true" or (
        os.environ.get("FERRY_STRICT", "").strip() == "1"
    )


# --------------------------------------------------------------------------
# server fixtures
# --------------------------------------------------------------------------


def _serve(
    kind: str, getter: Callable[[Path], RunningServer], env_var: str
) -> Iterator[RunningServer]:
    dbservers.cleanup_stale_base_dirs()
    base = dbservers.make_base_dir(kind)
    try:
        try:
            server = getter(base)
        except ServerUnavailableError as exc:
            pytest.skip(
                f"{kind} server not available: {exc}. Run `{ENSURE_SCRIPT}` as root to "
                f"install it, or set {env_var} to an existing server's superuser URL."
            )
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[RunningServer]:
    """A throwaway PostgreSQL server for the whole session (see module doc)."""
    yield from _serve("postgres", dbservers.get_postgres, dbservers.POSTGRES_URL_ENV)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[RunningServer]:
    """A throwaway MariaDB server for the whole session (see module doc)."""
    yield from _serve("mariadb", dbservers.get_mariadb, dbservers.MARIADB_URL_ENV)


# --------------------------------------------------------------------------
# database fixtures
# --------------------------------------------------------------------------

_counter = itertools.count(1)


def _unique_name(hint: str) -> str:
    clean = re.sub(r"[^a-z0-9_]+", "_", hint.lower()).strip("_") or "db"
    # ferry_<hint>_<n>_<random>: at most 63 chars (PostgreSQL's limit).
    return f"ferry_{clean[:36]}_{next(_counter)}_{secrets.token_hex(4)}"


class DatabaseFactory:
    """Callable behind the ``make_database`` fixture."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path: Path) -> None:
        self._request = request
        self._tmp_path = tmp_path
        self._created: list[tuple[RunningServer, str]] = []

    def server(self, dialect: str) -> RunningServer:
        """The session server for ``dialect`` (starting it if needed)."""
        dialect = _DIALECT_ALIASES.get(dialect, dialect)
        try:
            fixture = _SERVER_FIXTURE[dialect]
        except KeyError:
            raise ValueError(f"no server for dialect {dialect!r}") from None
        server = self._request.getfixturevalue(fixture)
        assert isinstance(server, RunningServer)
        return server

    def __call__(self, dialect: str, hint: str = "db") -> str:
        """Create a fresh empty database; return its SQLAlchemy URL."""
        dialect = _DIALECT_ALIASES.get(dialect, dialect)
        name = _unique_name(hint)
        if dialect == "sqlite":  # an empty file is an empty database; Ferry creates none
            (self._tmp_path / f"{name}.db").touch()
            return f"sqlite:///{self._tmp_path / name}.db"
        server = self.server(dialect)
        url = server.create_database(name)
        self._created.append((server, name))
        return url

    def cleanup(self) -> None:
        """Drop the databases created (called at test teardown)."""
        errors: list[str] = []
        for server, name in reversed(self._created):
            try:
                server.drop_database(name)
            except Exception as exc:
                errors.append(f"{server.dialect}/{name}: {exc}")
        self._created.clear()
        if errors:
            raise RuntimeError("could not drop test databases: " + "; ".join(errors))


@pytest.fixture
def make_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseFactory]:
    """``make_database(dialect, hint="db") -> url`` for fresh empty databases."""
    factory = DatabaseFactory(request, tmp_path)
    yield factory
    factory.cleanup()


@pytest.fixture(params=DIALECT_PARAMS)
def dialect(request: pytest.FixtureRequest) -> str:
    """Each supported dialect: sqlite, postgresql, mysql (id ``mariadb``)."""
    value = request.param
    assert isinstance(value, str)
    return value


@pytest.fixture
def db_url(dialect: str, make_database: DatabaseFactory, request: pytest.FixtureRequest) -> str:
    """A fresh empty database of the current ``dialect``."""
    return make_database(dialect, hint=request.node.name.split("[", 1)[0])


# --------------------------------------------------------------------------
# strict skip policy
# --------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "db: needs real database servers (SQLite, PostgreSQL, MariaDB)"
    )
    if not config.pluginmanager.has_plugin(SkipPolicy.NAME):
        config.pluginmanager.register(SkipPolicy(strict=strict_mode()), SkipPolicy.NAME)


def _skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


class SkipPolicy:
    """Records skips; in strict mode turns them into failures."""

    NAME = "ferry-skip-policy"

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.skips: list[tuple[str, str]] = []

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """Record skips (in any phase); in strict mode report them as failed."""
        report = yield
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = _skip_reason(report)
            self.skips.append((report.nodeid, reason))
            if self.strict:
                report.outcome = "failed"
                report.longrepr = (
                    f"SKIPPED, which is an error in strict mode ({STRICT_HELP}): {reason}"
                )
        return report

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        """Record module-level skips. They are not turned into collection
        errors (that would abort the run); strict mode fails the run at the end
        instead."""
        if report.skipped:
            self.skips.append((report.nodeid, _skip_reason(report)))

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if (
            self.strict
            and self.skips
            and session.exitstatus
            in (
                pytest.ExitCode.OK,
                pytest.ExitCode.NO_TESTS_COLLECTED,
            )
        ):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.skips:
            return
        if self.strict:
            terminalreporter.section(
                f"skipped tests fail the run in strict mode ({STRICT_HELP})", red=True, bold=True
            )
            for nodeid, reason in self.skips:
                terminalreporter.line(f"SKIPPED -> FAILED {nodeid}: {reason}", red=True)
        else:
            terminalreporter.section("skipped tests (allowed locally)", yellow=True)
            for nodeid, reason in self.skips:
                terminalreporter.line(f"SKIPPED {nodeid}: {reason}", yellow=True)
            terminalreporter.line(
                f"{len(self.skips)} skipped; with {STRICT_HELP} they would fail the run.",
                yellow=True,
            )
