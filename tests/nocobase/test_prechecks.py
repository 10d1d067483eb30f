"""NocoBase's own pre-checks against what real NocoBase 2.2.15 writes.

The version and the plugins are read from the tables NocoBase itself keeps
(``applicationVersion``, ``applicationPlugins``): the version Ferry names is the one
``app:getInfo`` reports, and a plugin enabled through NocoBase's own plugin manager
(``pm:enable``) in development is one the pre-release does not have enabled — on
PostgreSQL, MariaDB and SQLite, whose booleans differ (``TINYINT(1)``). Only one
NocoBase release is installed here, so an older target is a copy whose
``applicationVersion`` row says what an older release writes there. Refusals exit 2
through ``ferry`` and leave the target's database exactly as it was.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.db.dbhelpers import execute, q, rows
from tests.harness import nocobase as nb
from tests.harness.nocobase import NocoBaseApp
from tests.hostile import assert_refused, run_cli
from tests.nocobase import builder as b
from tests.nocobase.conftest import AppFactory

# PostgreSQL only on real NocoBase (CI time): what the checks read is the same rows on
# every dialect, and tests/db/test_nocobase_checks*.py runs them on all three.
pytestmark = [
    pytest.mark.nocobase,
    pytest.mark.parametrize("nocobase_dialect", ["postgresql"], indirect=True, scope="module"),
]

# A plugin the preset ships but does not enable; enabling it is one builder's click.
PLUGIN = "field-code"


def _plan(dev: NocoBaseApp, pre: NocoBaseApp) -> dict[str, object]:
    out = run_cli(["plan", "--source", dev.url, "--target", pre.url, "--format", "json"])
    assert out.code == 0, out.stderr
    plan = json.loads(out.stdout)
    assert isinstance(plan, dict)
    return plan


def _prechecks(warnings: object) -> list[str]:
    assert isinstance(warnings, list)
    return [w for w in warnings if "plugins" in w or "version" in w]


def test_a_target_installed_with_other_naming_settings_is_refused(
    make_app: AppFactory, nocobase_workdir: Path
) -> None:
    """The pre-release installed by NocoBase itself with ``DB_UNDERSCORED=true`` (its
    tables and columns in snake case), the source with the default: refused before
    anything is written, naming both values, as NocoBase's own migration manager does."""
    dev = make_app("ndev")
    server = dev.server
    assert not isinstance(server, nb.SqliteFiles)
    storage = nocobase_workdir / "underscored"
    pre_url = nb.install_database(
        server,
        "ferry_nb_underscored",
        storage,
        app_key="underscored",
        log=storage / "install.log",
        env={"DB_UNDERSCORED": "true"},
    )
    engine = sa.create_engine(pre_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert "application_plugins" in tables and "applicationPlugins" not in tables
    assert_refused(
        ["migrate", "--source", dev.url, "--target", pre_url, "--id", "naming"],
        2,
        watched=[pre_url],
        says="DB_UNDERSCORED is false in the source",
    )


def test_an_older_target_is_refused_naming_both_versions(make_app: AppFactory) -> None:
    dev, pre = make_app("vdev"), make_app("vpre")
    dev.start()
    dev.sign_in()
    version = dev.get("app:getInfo")["version"]
    b.create_parent_collection(dev, "")  # something to promote
    dev.stop()
    # Two installations of one release: nothing to say (the real tables, no noise).
    assert _prechecks(_plan(dev, pre)["warnings"]) == []

    table, value = q(pre.server.dialect, "applicationVersion"), q(pre.server.dialect, "value")
    execute(pre.url, f"UPDATE {table} SET {value} = '2.2.9'")
    assert_refused(
        ["migrate", "--source", dev.url, "--target", pre.url, "--id", "older"],
        2,
        watched=[pre.url],
        says=f"the target runs NocoBase 2.2.9, older than the source's {version}",
    )


def test_a_plugin_enabled_only_in_the_source_warns_and_strict_refuses(
    make_app: AppFactory, tmp_path: Path
) -> None:
    dev, pre = make_app("pdev"), make_app("ppre")
    dev.start()
    dev.sign_in()
    dev.post(f"pm:enable?filterByTk={PLUGIN}&awaitResponse=true")
    dev.wait_ready()
    dev.stop()
    # booleans: true on PostgreSQL, 1 in MariaDB's and SQLite's TINYINT(1)
    enabled = dict(rows(dev.url, "applicationPlugins", "name", "enabled"))
    assert enabled[PLUGIN] in (True, 1), "NocoBase did not record the plugin as enabled"
    in_pre = dict(rows(pre.url, "applicationPlugins", "name", "enabled"))
    state = "absent" if PLUGIN not in in_pre else "disabled"
    assert in_pre.get(PLUGIN) in (None, False, 0)
    expected = f"plugins enabled in the source are not enabled in the target: {PLUGIN} ({state})"

    assert _prechecks(_plan(dev, pre)["warnings"]) == [expected]
    strict = tmp_path / "strict.yaml"
    strict.write_text("strict: true\n")
    assert_refused(
        ["migrate", "--source", dev.url, "--target", pre.url, "--id", "p1", "--rules", str(strict)],
        2,
        watched=[pre.url],
        says=expected + " (strict mode)",
    )
