"""Merged releases on every dialect: two teams' sources promote into one target with
``merge: threeWay``, each against the base it last promoted."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.api.rules import Merge, OnConflict, Rule, RulesSpec, TableRule
from controller.backups.store import FilesystemStore
from controller.cli.inputs import load_rules
from controller.commands.backup import create_backup
from controller.commands.migrate import MigrationRequest, MigrationResult, migrate, plan_only
from controller.commands.planning import PlanOptions
from controller.commands.rollback import rollback
from controller.engine.plan import Plan
from controller.engine.profiles import Profile
from controller.engine.render import plan_markdown, plan_text
from controller.errors import CheckFailed
from tests.db.dbhelpers import dump, execute, q, rows
from tests.db.test_promotion import VARS
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_refused, run_cli

MakeDb = Callable[..., str]
ONE_WAY = Path(__file__).parents[2] / "docs/examples/rules/nocobase-one-way-release.yaml"
PAGES = [(1, "home", "Home", "h0"), (2, "about", "About", "a0"), (3, "contact", "Contact", "c0")]


def _build(url: str, dialect: str) -> None:
    pk = (
        "integer primary key autoincrement"
        if dialect == "sqlite"
        else (
            "serial primary key"
            if dialect == "postgresql"
            else "integer primary key auto_increment"
        )
    )
    execute(
        url,
        f"create table {q(dialect, 'pages')} (id {pk}, name varchar(40) not null unique, "
        "title varchar(80), body varchar(200))",
        f"create table {q(dialect, 'settings')} (id integer primary key, title varchar(80), "
        "lang varchar(8), smtppassword varchar(80))",
        *(
            f"insert into {q(dialect, 'pages')} (id, name, title, body) "
            f"values ({i}, '{n}', '{t}', '{b}')"
            for i, n, t, b in PAGES
        ),
        f"insert into {q(dialect, 'settings')} values (1, 'App', 'en', 's3cret-base')",
    )
    if dialect == "postgresql":
        execute(url, "select setval('pages_id_seq', 3)")


def _options(
    on_pages: OnConflict = OnConflict.FAIL, on_settings: OnConflict = OnConflict.FAIL
) -> PlanOptions:
    return PlanOptions(
        rules=RulesSpec(
            merge=Merge.THREE_WAY,
            tables=(
                TableRule("pages", Rule.UPSERT, key=("name",), on_conflict=on_pages),
                TableRule("settings", Rule.UPSERT, on_conflict=on_settings),
            ),
        ),
        profile=Profile.GENERIC,
    )


class Release:
    """A pre-release target, two teams' development copies of it, and a backup store."""

    def __init__(self, dialect: str, make_database: MakeDb, tmp_path: Path) -> None:
        self.dialect = dialect
        self.target, self.a, self.b = (make_database(dialect, n) for n in ("pre", "teama", "teamb"))
        for url in (self.target, self.a, self.b):
            _build(url, dialect)
        self.store = FilesystemStore(tmp_path / "store")
        create_backup(self.target, self.store, environment="pre")
        self.runs = 0

    def promote(self, source: str, options: PlanOptions | None = None) -> MigrationResult:
        self.runs += 1
        return migrate(
            MigrationRequest(
                source,
                self.target,
                options or _options(),
                migration_id=f"merge-{self.runs}",
                store=self.store,
                environment="pre",
            )
        )

    def plan(self, source: str, options: PlanOptions) -> Plan:
        return plan_only(source, self.target, replace(options, base_store=self.store)).plan

    def sql(self, url: str, *statements: str) -> None:
        execute(url, *(s.replace("`", '"') if self.dialect != "mysql" else s for s in statements))

    def pages(self) -> dict[str, tuple[str, str]]:
        return {n: (t, b) for n, t, b in rows(self.target, "pages", "name", "title", "body")}


@pytest.fixture
def release(dialect: str, make_database: MakeDb, tmp_path: Path) -> Release:
    rel = Release(dialect, make_database, tmp_path)
    # each team's first promotion changes nothing and records its base
    for team in (rel.a, rel.b):
        assert rel.promote(team).status == "noop"
    return rel


def test_a_stale_copy_is_not_a_change_and_both_teams_changes_arrive(release: Release) -> None:
    rel = release
    rel.sql(
        rel.a,
        "update `pages` set title = 'Home A' where name = 'home'",
        "insert into `pages` (id, name, title, body) values (4, 'a-page', 'A', 'a')",
        "update `settings` set title = 'App A'",
    )
    first = rel.promote(rel.a)
    assert first.status == "succeeded", first.message
    # team B never saw A's changes: its home and settings title are stale, not changes
    rel.sql(
        rel.b,
        "update `pages` set body = 'b1' where name = 'about'",
        "insert into `pages` (id, name, title, body) values (4, 'b-page', 'B', 'b')",
        "delete from `pages` where name = 'contact'",
        "update `settings` set lang = 'de'",
    )
    second = rel.promote(rel.b)
    assert second.status == "succeeded", second.message
    assert rel.pages() == {
        "home": ("Home A", "h0"),
        "about": ("About", "b1"),
        "a-page": ("A", "a"),
        "b-page": ("B", "b"),
    }  # contact: deleted by B, whose base had it and the target had not changed it
    assert rows(rel.target, "settings", "title", "lang") == [("App A", "de")]
    assert second.plan is not None
    merge = second.plan.table("pages").merge  # type: ignore[union-attr]
    assert merge is not None and merge.base == "migration merge-2" and merge.conflicts == ()
    merged = rel.pages()
    again = rel.plan(rel.b, _options())
    assert not again.changes_anything  # B's base moved on: nothing left to promote

    # rolled back, B's promotion no longer counts: its base is the one before, again
    rollback(rel.store, second.id, rel.target)
    assert rel.pages() == {
        "home": ("Home A", "h0"),
        "about": ("About", "a0"),
        "contact": ("Contact", "c0"),
        "a-page": ("A", "a"),
    }
    replan = rel.plan(rel.b, _options())
    pages = replan.table("pages")
    assert pages is not None and pages.merge is not None
    assert pages.merge.base == "migration merge-2"  # B's first (no-change) promotion
    assert rel.promote(rel.b).status == "succeeded"
    assert rel.pages() == merged


def test_a_real_conflict_blocks_until_a_rule_resolves_it(release: Release, dialect: str) -> None:
    rel = release
    rel.sql(
        rel.b,
        "update `pages` set body = 'b1' where name = 'about'",
        "update `settings` set smtppassword = 'hunter2-b'",
    )
    assert rel.promote(rel.b).status == "succeeded"
    rel.sql(
        rel.a,
        "update `pages` set body = 'a2' where name = 'about'",
        "update `settings` set smtppassword = 'hunter2-a'",
    )
    before = dump(rel.target)
    with pytest.raises(CheckFailed) as refused:
        rel.promote(rel.a)
    assert refused.value.reason == "MergeConflict"
    text = str(refused.value)
    assert "table pages, key ('about'), column body" in text
    assert '"a0"' in text and '"a2"' in text and '"b1"' in text
    assert "table settings, key ('1'), column smtp" in text.lower()
    assert not any(s in text for s in ("hunter2", "s3cret"))  # secrets masked
    assert dump(rel.target) == before  # refused before any change

    by_target = rel.plan(rel.a, _options(OnConflict.TARGET, OnConflict.TARGET))
    by_source = rel.plan(rel.a, _options(OnConflict.SOURCE, OnConflict.TARGET))
    assert by_target.digest != by_source.digest  # the digest covers the resolutions
    assert not by_target.changes_anything
    shown = plan_text(by_source) + plan_markdown(by_source)
    assert "conflict [source] table pages, key ('about'), column body" in shown
    assert "conflict [target] table settings" in shown
    assert not any(s in shown for s in ("hunter2", "s3cret"))
    result = rel.promote(rel.a, _options(OnConflict.SOURCE, OnConflict.TARGET))
    assert result.status == "succeeded", result.message
    assert rel.pages()["about"] == ("About", "a2")
    assert rows(rel.target, "settings", "smtppassword") == [("hunter2-b",)]


def test_a_ledger_of_an_older_format_is_no_base(release: Release, dialect: str) -> None:
    """Rows of ledger format 2 name no source: the merge has no base and says so, and a
    stale copy then conflicts instead of silently overwriting the other team's change."""
    rel = release
    rel.sql(rel.a, "update `pages` set title = 'Home A' where name = 'home'")
    assert rel.promote(rel.a).status == "succeeded"
    engine = sa.create_engine(rel.target)
    try:
        with engine.begin() as conn:
            ledger = sa.Table("ferry_migrations", sa.MetaData(), autoload_with=conn)
            for row in conn.execute(sa.select(ledger.c.id, ledger.c.summary)).all():
                summary = json.loads(row.summary)
                summary = {k: v for k, v in summary.items() if k not in ("source", "base")}
                summary["format"] = 2
                conn.execute(
                    ledger.update().where(ledger.c.id == row.id).values(summary=json.dumps(summary))
                )
    finally:
        engine.dispose()
    rel.sql(rel.b, "update `pages` set body = 'b1' where name = 'about'")
    with pytest.raises(CheckFailed) as refused:
        rel.plan(rel.b, _options())
    assert "key ('home'), column title" in str(refused.value)
    plan = rel.plan(rel.b, _options(OnConflict.TARGET, OnConflict.TARGET))
    assert any("without a base" in w for w in plan.warnings)
    pages = plan.table("pages")
    assert pages is not None and pages.merge is not None and pages.merge.base == "none"


HOSTILE_RULES = [
    ("merge: sideways\n", "rules.merge: unknown value 'sideways'"),
    ("merge: [threeWay]\n", "rules.merge: unknown value"),
    ("merge: true\n", "rules.merge: unknown value True"),
    (
        "merge: threeWay\ntables: [{match: pages, rule: upsert, key: [name], onConflict: ours}]\n",
        "rules.tables[0].onConflict: unknown value 'ours' (allowed: fail, source, target)",
    ),
    (
        "tables: [{match: pages, rule: upsert, onConflict: {source: 1}}]\n",
        "rules.tables[0].onConflict: unknown value",
    ),
    (
        "tables: [{match: pages, rule: upsert, on_conflict: source}]\n",
        "unknown field(s) on_conflict",
    ),
    ("merge: " + "x" * 5000 + "\n", "characters)"),  # a long value is cut, not echoed
]


@pytest.mark.parametrize(("text", "says"), HOSTILE_RULES, ids=range(len(HOSTILE_RULES)))
def test_hostile_merge_rules_are_refused_naming_the_field(
    release: Release, tmp_path: Path, text: str, says: str
) -> None:
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(text)
    rel = release
    rel.sql(rel.a, "update `pages` set title = 'Home A' where name = 'home'")
    for command in ("plan", "migrate"):
        argv = [command, "--source", rel.a, "--target", rel.target, "--profile", "generic"]
        argv += ["--rules", str(rules_file)]
        if command == "migrate":
            argv += ["--backup-store", str(tmp_path / "store")]
        outcome = assert_refused(argv, 2, [rel.target, tmp_path / "store"], says=says)
        assert "x" * 200 not in outcome.stderr


def test_the_one_way_example_rules_promote_a_nocobase_shaped_release(
    dialect: str, make_database: MakeDb
) -> None:
    """docs/examples/rules/nocobase-one-way-release.yaml, loaded as a user would."""
    dev, pre = make_database(dialect, "dev"), make_database(dialect, "pre")
    shape.build(dev, app="dev", seed=1)
    shape.builder_changes(dev)
    execute(dev, f"delete from {q(dialect, 'roles')} where name = 'member'")
    shape.build(pre, app="pre", seed=1, variables=VARS)
    options = PlanOptions(rules=load_rules(str(ONE_WAY)))
    result = migrate(MigrationRequest(dev, pre, options, migration_id="one-way"))
    assert result.status == "succeeded", result.message
    assert result.plan is not None
    roles = result.plan.table("roles")
    assert roles is not None and roles.rule is Rule.OVERWRITE and roles.delete == 1
    assert rows(pre, "roles", "name", order="name") == [("admin",), ("root",), ("support",)]
    assert not plan_only(dev, pre, options).plan.changes_anything


def test_ferry_plan_reads_the_base_from_the_store_it_is_given(
    release: Release, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FERRY_BACKUP_STORE", raising=False)
    rel = release
    rel.sql(rel.a, "update `pages` set title = 'Home A' where name = 'home'")
    assert rel.promote(rel.a).status == "succeeded"
    rel.sql(rel.b, "update `pages` set body = 'b1' where name = 'about'")
    rules_file = tmp_path / "merge.yaml"
    rules_file.write_text(
        "merge: threeWay\ntables:\n  - {match: pages, rule: upsert, key: [name]}\n"
        "  - {match: settings, rule: upsert}\n"
    )
    argv = ["plan", "--source", rel.b, "--target", rel.target, "--profile", "generic"]
    argv += ["--rules", str(rules_file)]
    with_store = run_cli([*argv, "--backup-store", str(tmp_path / "store")])
    assert with_store.code == 0, with_store.stderr
    assert "pages: three-way merge against base migration merge-2" in with_store.stdout
    # no store, no base: B's stale home is a difference nothing explains
    without = run_cli(argv)
    assert without.code == 2
    assert "key ('home'), column title" in without.stderr


def _tree_options() -> PlanOptions:
    return PlanOptions(
        rules=RulesSpec(
            merge=Merge.THREE_WAY,
            tables=(
                TableRule("uiSchemas", Rule.UPSERT),
                TableRule("uiSchemaTreePath", Rule.UPSERT),
            ),
        ),
        profile=Profile.GENERIC,
    )


def _schemas(dialect: str, *uids: str) -> str:
    values = ", ".join(f"('{u}', '{u}')" for u in uids)
    return f"insert into {q(dialect, 'uiSchemas')} ({q(dialect, 'x-uid')}, name) values {values}"


def _paths(dialect: str, *rows: tuple[str, str, int]) -> str:
    values = ", ".join(f"('{a}', '{d}', {n})" for a, d, n in rows)
    table = q(dialect, "uiSchemaTreePath")
    return f"insert into {table} (ancestor, descendant, depth) values {values}"


def test_a_merge_that_would_orphan_a_ui_schema_is_refused(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    """Team A deletes a block; team B, from its stale copy, adds a child under it."""
    target, a, b = (make_database(dialect, n) for n in ("pre", "teama", "teamb"))
    for url in (target, a, b):
        execute(
            url,
            f"create table {q(dialect, 'uiSchemas')} ({q(dialect, 'x-uid')} varchar(40) "
            "primary key, name varchar(40))",
            f"create table {q(dialect, 'uiSchemaTreePath')} (ancestor varchar(40) not null, "
            "descendant varchar(40) not null, depth integer, primary key (ancestor, descendant))",
            _schemas(dialect, "root", "c1"),
            _paths(dialect, ("root", "root", 0), ("c1", "c1", 0), ("root", "c1", 1)),
        )
    store = FilesystemStore(tmp_path / "store")
    create_backup(target, store, environment="pre")

    def promote(source: str, n: int) -> MigrationResult:
        request = MigrationRequest(source, target, _tree_options(), f"tree-{n}", store=store)
        return migrate(replace(request, environment="pre"))

    assert promote(a, 1).status == "noop" and promote(b, 2).status == "noop"
    execute(
        a,
        f"delete from {q(dialect, 'uiSchemaTreePath')} where descendant = 'c1'",
        f"delete from {q(dialect, 'uiSchemas')} where {q(dialect, 'x-uid')} = 'c1'",
    )
    assert promote(a, 3).status == "succeeded"
    execute(
        b,
        _schemas(dialect, "c2", "c3"),
        _paths(dialect, ("c2", "c2", 0), ("c1", "c2", 1), ("root", "c2", 2), ("c3", "c3", 0)),
        _paths(dialect, ("root", "c3", 1)),
    )
    before = dump(target)
    with pytest.raises(CheckFailed) as refused:
        promote(b, 4)
    assert refused.value.reason == "BrokenTree"
    assert "uiSchemaTreePath (c1 → c2) names c1, which uiSchemas does not hold" in str(
        refused.value
    )
    assert dump(target) == before
    execute(b, f"delete from {q(dialect, 'uiSchemaTreePath')} where descendant = 'c2'")
    execute(b, f"delete from {q(dialect, 'uiSchemas')} where {q(dialect, 'x-uid')} = 'c2'")
    assert promote(b, 5).status == "succeeded"
    assert rows(target, "uiSchemas", "x-uid", order="x-uid") == [("c3",), ("root",)]
