"""Fixtures of the real-NocoBase tier: installed templates and running applications.

NocoBase is installed once per machine (``hack/nocobase/install.sh``, cached), and
``nocobase install`` runs twice per session: template ``A`` (the lineage every
environment of one project shares) and template ``B`` (an independently installed
application, for the merged release). Both templates are started once, so the rows
NocoBase writes at first start exist before any copy is made. Each application a test
uses is a ``CREATE DATABASE … TEMPLATE`` copy with its own storage directory (its own
AES key) and its own port; processes are stopped at fixture teardown.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import nocobase as nb
from tests.harness.dbservers import RunningServer
from tests.harness.pytest_plugin import strict_mode

MakeApp = Callable[..., nb.NocoBaseApp]


@pytest.fixture(scope="session")
def nocobase_app_dir() -> Path:
    """The installed NocoBase (installing it if needed); fails in CI when impossible."""
    try:
        return nb.ensure_installed()
    except nb.NocoBaseUnavailable as exc:
        message = f"{exc}\nInstall it with `bash {nb.INSTALL_SCRIPT}` (npm registry access)."
        if strict_mode():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def nocobase_workdir() -> Iterator[Path]:
    """Storage directories live here (short paths: gateway.sock is a unix socket)."""
    path = Path(tempfile.mkdtemp(prefix="ferry-nb-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _template(server: RunningServer | nb.SqliteFiles, workdir: Path, label: str) -> str:
    name = f"ferry_nb_template_{label}_{secrets.token_hex(3)}"
    storage = workdir / f"template-{label}"
    nb.install_database(server, name, storage, app_key=f"tpl-{label}", log=storage / "install.log")
    # First start writes more rows (AI employees, skills, ...); copies start from there.
    app = nb.NocoBaseApp(f"template-{label}", server, name, storage)
    try:
        app.start()
        problems = nb.log_problems(app.log_text())
        assert not problems, f"template {label} logged errors:\n" + "\n".join(problems)
    finally:
        app.stop()
    return name


@pytest.fixture(scope="session")
def nocobase_template(
    nocobase_app_dir: Path, postgres_server: RunningServer, nocobase_workdir: Path
) -> str:
    """Database installed by NocoBase (and started once): the project's lineage."""
    return _template(postgres_server, nocobase_workdir, "a")


@pytest.fixture(scope="session")
def nocobase_template_b(
    nocobase_app_dir: Path, postgres_server: RunningServer, nocobase_workdir: Path
) -> str:
    """A second, independent ``nocobase install`` (other random uids and snowflake ids)."""
    return _template(postgres_server, nocobase_workdir, "b")


class AppFactory:
    """``make_app(name, template=None, *, empty=False)`` → a stopped NocoBaseApp."""

    def __init__(
        self, server: RunningServer | nb.SqliteFiles, template: str, workdir: Path
    ) -> None:
        self.server = server
        self.template = template
        self.workdir = workdir
        self.apps: list[nb.NocoBaseApp] = []
        self.databases: list[str] = []

    def __call__(
        self, name: str, template: str | None = None, *, empty: bool = False
    ) -> nb.NocoBaseApp:
        database = f"ferry_nb_{name}_{secrets.token_hex(3)}"
        if empty:
            self.server.create_database(database)
        else:
            nb.clone_database(self.server, template or self.template, database)
        self.databases.append(database)
        app = nb.NocoBaseApp(
            name, self.server, database, Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.workdir))
        )
        self.apps.append(app)
        return app

    def close(self) -> None:
        for app in self.apps:
            app.stop()
        for database in self.databases:
            self.server.drop_database(database)


@pytest.fixture(scope="session")
def nocobase_template_mariadb(
    nocobase_app_dir: Path, mariadb_server: RunningServer, nocobase_workdir: Path
) -> str:
    """Template ``A`` installed by NocoBase on MariaDB (its ``mariadb`` dialect)."""
    return _template(mariadb_server, nocobase_workdir, "m")


@pytest.fixture(scope="session")
def nocobase_sqlite(nocobase_app_dir: Path, nocobase_workdir: Path) -> nb.SqliteFiles:
    """SQLite databases for NocoBase's ``sqlite`` dialect (the driver built once)."""
    try:
        nb.ensure_sqlite3()
    except nb.NocoBaseUnavailable as exc:
        if strict_mode():
            pytest.fail(str(exc), pytrace=False)
        pytest.skip(str(exc))
    return nb.SqliteFiles(nocobase_workdir / "sqlite")


@pytest.fixture(scope="session")
def nocobase_template_sqlite(nocobase_sqlite: nb.SqliteFiles, nocobase_workdir: Path) -> str:
    """Template ``A`` installed by NocoBase on SQLite."""
    return _template(nocobase_sqlite, nocobase_workdir, "s")


#: The fixtures of the database server and template for each dialect the tier runs on.
DIALECTS = {
    "postgresql": ("postgres_server", "nocobase_template"),
    "mariadb": ("mariadb_server", "nocobase_template_mariadb"),
    "sqlite": ("nocobase_sqlite", "nocobase_template_sqlite"),
}


@pytest.fixture(scope="module")
def nocobase_dialect(request: pytest.FixtureRequest) -> str:
    """The database NocoBase runs on: PostgreSQL unless a module parametrizes it
    (``pytest.mark.parametrize("nocobase_dialect", [...], indirect=True, scope="module")``).
    """
    value = getattr(request, "param", "postgresql")
    assert value in DIALECTS, value
    return str(value)


@pytest.fixture(scope="module")
def make_app(
    request: pytest.FixtureRequest, nocobase_dialect: str, nocobase_workdir: Path
) -> Iterator[AppFactory]:
    server_fixture, template_fixture = DIALECTS[nocobase_dialect]
    server = request.getfixturevalue(server_fixture)
    template = request.getfixturevalue(template_fixture)
    factory = AppFactory(server, template, nocobase_workdir)
    yield factory
    factory.close()


# The e2e tier's fixtures (control plane, CRDs, a namespace per test, the operator), for
# the test that drives real NocoBase through a Migration resource.
from tests.e2e.conftest import (  # noqa: E402, F401
    control_plane,
    ferry_crds,
    kubectl,
    namespace,
    operator,
    pytest_runtest_makereport,
)
