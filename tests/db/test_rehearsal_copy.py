"""``RehearsalCopyFailed``, the real way: the scratch server will not take the copy.

A rehearsal creates its database on the scratch server, then restores the target's
fresh backup into it. A scratch user that may create and drop the rehearsal databases
but not fill them passes the first step and fails the second:

- MariaDB: a user granted ``CREATE, DROP`` on ``ferry_rehearsal_%`` (what "a user that
  may create and drop databases" reads as) and nothing else: its INSERTs are refused.
- PostgreSQL: a role with ``CREATEDB`` whose ``search_path`` is ``"$user"``, the secure
  schema usage pattern of PostgreSQL's documentation: in the fresh copy no schema is
  selected, so its ``CREATE TABLE`` is refused.

Through ``ferry migrate --rehearse``: exit 1, one line with the reason and the
server's own words, the target's rows, schema and ledger exactly as they were, nothing
left on the scratch server, and the scratch user's password nowhere in the output.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup
from controller.commands.drill import restore_checked
from controller.db.database import Database
from controller.db.scratch import PREFIX, scratch_database, scratch_server
from tests.db.dbhelpers import dump
from tests.db.test_rehearsal import envs, migrate, rehearsal_databases  # noqa: F401

pytestmark = pytest.mark.db
MakeDb = Callable[..., str]
DIALECTS = pytest.mark.parametrize(
    "dialect", ["postgresql", "mysql"], ids=["postgresql", "mariadb"]
)


def _admin(make_database: MakeDb, dialect: str, *sql: str) -> None:
    server = make_database.server(dialect)  # type: ignore[attr-defined]
    with server.admin_engine().connect() as conn:
        for statement in sql:
            conn.execute(sa.text(statement))


REFUSED = {
    "postgresql": "no schema has been selected to create in",
    "mysql": "INSERT command denied to user",
}


@contextmanager
def cramped_scratch(
    make_database: MakeDb, dialect: str, enough: bool = False
) -> Iterator[tuple[str, str]]:
    """A scratch server URL whose user may create and drop rehearsal databases but not
    fill them (``enough``: with the rights docs/concepts.md asks for), and that user's
    password; the user is removed afterwards."""
    server = make_database.server(dialect)  # type: ignore[attr-defined]
    user, password = f"ferry_scratch_{secrets.token_hex(4)}", f"pw-{secrets.token_hex(8)}"
    if dialect == "postgresql":
        setup = [
            f"create role {user} login createdb password '{password}'",
            f"alter role {user} set search_path = " + ('"$user", public' if enough else '"$user"'),
        ]
        teardown = [f"drop role if exists {user}"]
    else:
        setup = [
            f"create user '{user}'@'%' identified by '{password}'",
            f"grant {'all' if enough else 'create, drop'} on `ferry\\_rehearsal\\_%`.* "
            f"to '{user}'@'%'",
        ]
        teardown = [f"drop user if exists '{user}'@'%'"]
    _admin(make_database, dialect, *setup)
    database = "postgres" if dialect == "postgresql" else None
    url = server.sa_url(database).set(username=user, password=password)
    try:
        yield url.render_as_string(hide_password=False), password
    finally:
        _admin(make_database, dialect, *teardown)


@DIALECTS
def test_a_scratch_server_that_refuses_the_copy_fails_it_and_spares_the_target(
    envs: tuple[str, str],  # noqa: F811
    dialect: str,
    make_database: MakeDb,
    tmp_path: Path,
) -> None:
    dev, pre = envs
    before = dump(pre)
    admin = make_database.server(dialect).admin_url()  # type: ignore[attr-defined]
    with cramped_scratch(make_database, dialect) as (scratch, password):
        code, out, err = migrate(dev, pre, scratch, tmp_path / "store")
        assert rehearsal_databases(admin) == []  # the copy was dropped, as the user may
    assert code == 1, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    line = lines[0]
    assert line.startswith("error: rehearsal failed (RehearsalCopyFailed)"), line
    assert "the target was not touched" in line
    assert f"the scratch database {PREFIX}" in line and "would not take the target's backup" in line
    assert REFUSED[dialect] in line  # the server's own words: the cause
    assert "safety backup" not in line and "target is unchanged" not in line  # of the copy
    assert out.startswith("rehearsal: failed")
    assert password not in out + err
    assert dump(pre) == before and "ferry_migrations" not in before  # no ledger row


@DIALECTS
def test_the_same_user_with_the_documented_rights_rehearses(
    envs: tuple[str, str],  # noqa: F811
    dialect: str,
    make_database: MakeDb,
    tmp_path: Path,
) -> None:
    """The control: only the missing right made the copy fail."""
    dev, pre = envs
    with cramped_scratch(make_database, dialect, enough=True) as (scratch, _password):
        code, out, err = migrate(dev, pre, scratch, tmp_path / "store")
    assert code == 0, out + err
    assert out.startswith("rehearsal: passed"), out


@DIALECTS
def test_the_checked_restore_hands_the_refusal_over_apart_from_the_copys_state(
    envs: tuple[str, str],  # noqa: F811
    dialect: str,
    make_database: MakeDb,
    tmp_path: Path,
) -> None:
    """What the rehearsal reads instead of parsing text: ``refused`` is the server's
    refusal alone; the drill's problem still tells the whole story."""
    _, pre = envs
    store = FilesystemStore(tmp_path / "store")
    manifest, _ = create_backup(pre, store, environment="pre", reason="rehearsal")
    with (
        cramped_scratch(make_database, dialect) as (scratch, _password),
        scratch_database(scratch_server(scratch, pre), pre) as copy,
    ):
        db = Database(copy.url)
        try:
            check = restore_checked(store, manifest, db)
        finally:
            db.dispose()
    assert check.tables == () and check.refused is not None
    assert REFUSED[dialect] in check.refused
    assert "unchanged" not in check.refused and "safety backup" not in check.refused
    (problem,) = check.problems
    assert problem.startswith(f"the backup did not restore: restore failed: {check.refused}; ")
