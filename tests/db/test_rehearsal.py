"""``ferry migrate --rehearse`` on real SQLite, PostgreSQL and MariaDB.

A rehearsal backs the target up, restores it into a ``ferry_rehearsal_*`` database it
creates on the scratch server (SQLite: a file in the scratch directory), applies the
same plan there, and drops it. These tests prove: a passed rehearsal is followed by
the real apply of the very digest the copy took; a plan that fails only because of
what the target holds (a unique index the source does not have) fails on the copy,
exit 1, with the target's rows, schema and ledger exactly as they were and nothing
left on the scratch server; the leftovers of this target's crashed rehearsals are
dropped while another target's and unprefixed databases are kept; a scratch server
that does not fit is refused before anything is created (exit 2, one line).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.backups.store import FilesystemStore
from controller.commands.migrate import MigrationRequest
from controller.commands.migrate import migrate as migrate_command
from controller.commands.rehearsal import rehearse
from controller.db.scratch import PREFIX, ScratchServer, create, new_name, scratch_server
from controller.errors import CheckFailed
from tests.db.dbhelpers import dump, execute, q, rows
from tests.db.test_promotion import VARS
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_refused, run_cli

pytestmark = pytest.mark.db
MakeDb = Callable[..., str]


@pytest.fixture
def envs(dialect: str, make_database: MakeDb) -> tuple[str, str]:
    dev, pre = make_database(dialect, "dev"), make_database(dialect, "pre")
    shape.build(dev, app="dev", seed=1)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", seed=1, variables=VARS)
    return dev, pre


@pytest.fixture
def scratch(dialect: str, make_database: MakeDb, tmp_path: Path) -> str:
    """The scratch server: the test server's superuser connection, or a directory."""
    if dialect == "sqlite":
        (tmp_path / "scratch").mkdir()
        return f"sqlite:///{tmp_path / 'scratch'}"
    return make_database.server(dialect).admin_url()  # type: ignore[attr-defined]


def rehearsal_databases(server: str) -> list[str]:
    """Every ``ferry_rehearsal_*`` database on the scratch server (any target's)."""
    url = sa.engine.make_url(server)
    if url.get_backend_name() == "sqlite":
        return sorted(p.name for p in Path(url.database or "").iterdir())
    sql = (
        "select datname from pg_database"
        if url.get_backend_name() == "postgresql"
        else "select schema_name from information_schema.schemata"
    )
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            names = [str(r[0]) for r in conn.exec_driver_sql(sql)]
    finally:
        engine.dispose()
    return sorted(n for n in names if n.startswith(PREFIX))


def migrate(dev: str, pre: str, scratch: str, store: Path, *extra: str) -> tuple[int, str, str]:
    argv = ["migrate", "--source", dev, "--target", pre, "--backup-store", str(store)]
    out = run_cli([*argv, "--rehearse", "--scratch", scratch, *extra])
    return out.code, out.stdout, out.stderr


def test_a_passed_rehearsal_is_followed_by_the_real_apply_of_its_digest(
    envs: tuple[str, str], scratch: str, tmp_path: Path
) -> None:
    dev, pre = envs
    code, out, err = migrate(dev, pre, scratch, tmp_path / "store", "--format", "json")
    assert code == 0, out + err
    result = json.loads(out)
    rehearsal = result["rehearsal"]
    assert rehearsal["outcome"] == "Passed" and rehearsal["reason"] == "RehearsalPassed"
    assert rehearsal["planDigest"] == result["digest"] and result["status"] == "succeeded"
    assert rehearsal["scratchDatabase"].startswith(PREFIX)
    used = FilesystemStore(tmp_path / "store").manifest(rehearsal["backupId"])
    assert used.reason == "rehearsal" and used.rows > 50
    assert rehearsal_databases(scratch) == []
    assert rows(pre, "roles", "name", order="name")[-1] == ("support",)
    assert rows(pre, "ferry_migrations", "id", "digest") == [(result["id"], result["digest"])]


def test_a_plan_that_fails_on_the_copy_leaves_the_target_untouched(
    envs: tuple[str, str], dialect: str, scratch: str, tmp_path: Path
) -> None:
    dev, pre = envs
    roles = q(dialect, "roles")
    execute(
        pre,
        f"create unique index uq_roles_title on {roles} (title)",
        f"update {roles} set title = 'Support' where name = 'member'",  # dev adds 'Support'
    )
    before = dump(pre)
    code, out, err = migrate(dev, pre, scratch, tmp_path / "store")
    assert code == 1, out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: rehearsal failed (RehearsalFailed)")
    assert "roles" in lines[0] and "the target was not touched" in lines[0]
    assert out.startswith("rehearsal: failed")
    assert dump(pre) == before and "ferry_migrations" not in before  # no ledger row
    assert rehearsal_databases(scratch) == []


def test_a_copy_that_plans_another_digest_fails_with_plan_differs(
    envs: tuple[str, str], scratch: str
) -> None:
    dev, pre = envs
    before = dump(pre)
    elsewhere = "sha256:" + "0" * 64  # approved against a target that is not this one
    result = rehearse(MigrationRequest(dev, pre, approved_digest=elsewhere), scratch)
    assert (result.outcome, result.reason) == ("Failed", "RehearsalPlanDiffers")
    assert elsewhere in result.message and result.digest is None
    assert not result.backup_kept and result.backup_id  # a throw-away store
    assert dump(pre) == before and rehearsal_databases(scratch) == []


def test_production_changed_after_a_passed_rehearsal_is_seen_at_apply_time(
    envs: tuple[str, str], dialect: str, scratch: str, tmp_path: Path
) -> None:
    """The issue's "if production changed between the rehearsal and the apply, Ferry
    sees it at apply time": the apply is held to the digest the copy took, so an edit
    made in between refuses it before anything is written (no backup, no ledger)."""
    dev, pre = envs
    store = FilesystemStore(tmp_path / "store")
    request = MigrationRequest(dev, pre, store=store, migration_id="r1")
    rehearsal = rehearse(request, scratch, store=store)
    assert rehearsal.passed and rehearsal.digest
    execute(pre, f"update {q(dialect, 'roles')} set title = 'edited by hand' where name = 'member'")
    before, backups = dump(pre), store.manifests()
    with pytest.raises(CheckFailed) as refused:
        migrate_command(replace(request, approved_digest=rehearsal.digest))
    assert refused.value.reason == "PlanChanged"
    assert rehearsal.digest in refused.value.message
    assert dump(pre) == before and "ferry_migrations" not in before
    assert store.manifests() == backups  # the rehearsal's backup only


def test_without_a_rehearsal_the_same_plan_fails_on_the_target_itself(
    envs: tuple[str, str], dialect: str, tmp_path: Path
) -> None:
    """What the rehearsal spares the target: the failure happens there, is undone, and
    leaves a ledger row (on PostgreSQL a driver error of the fast write path, classified
    like any other, not an internal error)."""
    dev, pre = envs
    roles = q(dialect, "roles")
    execute(
        pre,
        f"create unique index uq_roles_title on {roles} (title)",
        f"update {roles} set title = 'Support' where name = 'member'",
    )
    before = rows(pre, "roles", "name", "title", order="name")
    argv = ["migrate", "--source", dev, "--target", pre, "--backup-store", str(tmp_path / "s")]
    out = run_cli(argv)
    assert out.code == 1, out.stdout + out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "writing roles" in lines[0] and "internal error" not in lines[0]
    assert rows(pre, "roles", "name", "title", order="name") == before
    assert [r[1] for r in rows(pre, "ferry_migrations", "id", "result")] == ["rolled-back"]


def test_this_targets_leftovers_are_dropped_and_nothing_else(
    envs: tuple[str, str], dialect: str, scratch: str, make_database: MakeDb, tmp_path: Path
) -> None:
    dev, pre = envs
    server = scratch_server(scratch, pre)
    crashed = create(server, new_name(server), pre)  # a crashed rehearsal of this target
    execute(crashed, f"create table {q(dialect, 'half')} (id integer primary key)")
    other = ScratchServer(server.url, server.dialect, "0" * 8 if server.tag != "0" * 8 else "1" * 8)
    kept = new_name(other)
    create(other, kept, pre)
    try:
        code, out, err = migrate(dev, pre, scratch, tmp_path / "store", "--format", "json")
        assert code == 0, out + err
        dropped = json.loads(out)["rehearsal"]["leftoversDropped"]
        assert dropped == [crashed.rsplit("/", 1)[-1].split("?")[0].removesuffix(".db")]
        left = rehearsal_databases(scratch)
        assert left == ([f"{kept}.db"] if dialect == "sqlite" else [kept])
        assert dump(dev) and rows(pre, "roles", "name", order="name")[-1] == ("support",)
    finally:
        from controller.db.scratch import drop

        drop(other, kept)


OTHER_SERVER = {
    "sqlite": "postgresql+psycopg://u:pw@127.0.0.1:1/postgres",
    "postgresql": "mysql+pymysql://u:pw@127.0.0.1:1/",
    "mysql": "postgresql+psycopg://u:pw@127.0.0.1:1/postgres",
}


def hostile_scratches(dialect: str, scratch: str, pre: str, tmp_path: Path) -> dict[str, str]:
    """Scratch servers that do not fit, with what the one-line error must say."""
    bad = {
        OTHER_SERVER[dialect]: "the target is",  # another dialect
        "oracle://u:pw@h/x": "unsupported database",
        "not a url": "not a database url",
    }
    if dialect == "sqlite":
        bad[f"sqlite:///{tmp_path / 'nodir'}"] = "existing directory"
        bad[pre] = "existing directory"  # the target's own file
        bad["sqlite://"] = "existing directory"  # in memory
        bad[scratch + "?bogus=1"] = "bogus"
    else:
        bad[f"sqlite:///{tmp_path}"] = "the target is"
        bad[scratch + ("&" if "?" in scratch else "?") + "bogus_option=1"] = "bogus_option"
    return bad


def test_a_scratch_server_that_does_not_fit_is_refused(
    envs: tuple[str, str], dialect: str, scratch: str, tmp_path: Path
) -> None:
    dev, pre = envs
    store = tmp_path / "store"
    argv = ["migrate", "--source", dev, "--target", pre, "--backup-store", str(store)]
    watched = [pre, store, tmp_path / "scratch"]
    for bad, says in hostile_scratches(dialect, scratch, pre, tmp_path).items():
        outcome = assert_refused([*argv, "--rehearse", "--scratch", bad], 2, watched, says)
        assert ":pw@" not in outcome.stderr  # a password in the URL is never shown
    assert_refused([*argv, "--scratch", scratch], 2, watched, "only for --rehearse")
    assert_refused([*argv, "--rehearse"], 2, watched, "needs a scratch server")
    env_file = tmp_path / "env.yaml"
    env_file.write_text(
        "kind: Environment\nspec:\n  stage: production\n  database: {dialect: sqlite, url: "
        "'sqlite:///x'}\n  rehearsal:\n    scratch: {directory: relative/dir}\n"
    )
    assert_refused(
        [*argv, "--rehearse", "--scratch-from", str(env_file)], 2, watched, "absolute path"
    )
    both = [*argv, "--rehearse", "--scratch", scratch, "--scratch-from", str(env_file)]
    assert_refused(both, 2, watched, "not both")
    assert rehearsal_databases(scratch) == []


def test_a_target_named_like_a_rehearsal_database_is_refused(
    dialect: str, make_database: MakeDb, scratch: str, tmp_path: Path
) -> None:
    dev = make_database(dialect, "dev")
    shape.build(dev, app="dev", seed=1)
    name = f"{PREFIX}target"
    if dialect == "sqlite":
        pre = f"sqlite:///{tmp_path / (name + '.db')}"
        (tmp_path / f"{name}.db").touch()
    else:
        server = make_database.server(dialect)  # type: ignore[attr-defined]
        pre = server.create_database(name)
    try:
        store = tmp_path / "store"
        argv = ["migrate", "--source", dev, "--target", pre, "--backup-store", str(store)]
        assert_refused(
            [*argv, "--rehearse", "--scratch", scratch], 2, [pre, store], "named like a rehearsal"
        )
    finally:
        if dialect != "sqlite":
            server.drop_database(name)


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"], ids=["postgresql", "mariadb"])
def test_an_unreachable_scratch_server_is_temporary_and_costs_no_backup(
    envs: tuple[str, str], dialect: str, tmp_path: Path
) -> None:
    """Exit 75 (retry later) before the target is backed up: the store stays absent."""
    dev, pre = envs
    closed = {
        "postgresql": "postgresql+psycopg://ferry:pw@127.0.0.1:1/postgres",
        "mysql": "mysql+pymysql://ferry:pw@127.0.0.1:1/",
    }[dialect]
    store = tmp_path / "store"
    argv = ["migrate", "--source", dev, "--target", pre, "--backup-store", str(store)]
    outcome = assert_refused([*argv, "--rehearse", "--scratch", closed], 75, [pre, store])
    assert "unreachable" in outcome.stderr and ":pw@" not in outcome.stderr
    assert not store.exists()
