"""Two current revisions of one workflow in a three-way merge, on real NocoBase: the
pre-release and a team (copies of one production) each make a new revision of the same
workflow current. The merge conflicts on ``current``; with ``onConflict: source`` the
team's revision is current and the pre-release's is retired as NocoBase itself retires
a revision (not current, disabled), and NocoBase boots and serves both revisions with
their node chains.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api.rules import Merge, OnConflict, Rule, TableRule, parse_rules
from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions
from controller.errors import CheckFailed
from tests.harness.cluster import REPO_ROOT
from tests.harness.nocobase import NocoBaseApp
from tests.nocobase import builder as b
from tests.nocobase.conftest import AppFactory

pytestmark = pytest.mark.nocobase

RULES_FILE = REPO_ROOT / "docs" / "examples" / "rules" / "nocobase-merged-release.yaml"
THREE_WAY = replace(parse_rules(yaml.safe_load(RULES_FILE.read_text())), merge=Merge.THREE_WAY)


def _new_current_revision(app: NocoBaseApp, workflow: dict[str, Any], title: str) -> None:
    """A revision of ``workflow`` (its nodes copied), enabled: NocoBase makes it current
    and retires the one before. Written in a second of its own (apps of one lineage
    mint the same snowflake IDs within one second)."""
    time.sleep(1.05 - time.time() % 1.0)
    app.start()
    app.sign_in()
    made = app.post(f"workflows:revision?filterByTk={workflow['id']}&filter[key]={workflow['key']}")
    app.post(f"workflows:update?filterByTk={made['id']}", {"title": title, "enabled": True})
    app.stop()


def _revisions(app: NocoBaseApp) -> dict[str, tuple[bool, bool, int]]:
    """title → (current, enabled, nodes) as NocoBase serves them."""
    return {
        w["title"]: (bool(w["current"]), bool(w["enabled"]), len(b.workflow_chain(app, w["id"])))
        for w in app.list_all("workflows")
    }


def test_two_current_revisions_resolved_by_on_conflict(
    make_app: AppFactory, tmp_path: Path
) -> None:
    production = make_app("wrprod")
    production.start()
    production.sign_in()
    workflow = b.create_chain_workflow(production, "p_")
    production.post(f"workflows:update?filterByTk={workflow['id']}", {"enabled": True})
    production.stop()
    pre = make_app("wrpre", production.database)
    team = make_app("wrteam", production.database)
    store = FilesystemStore(tmp_path / "store")
    create_backup(pre.url, store, environment="pre")
    options = PlanOptions(rules=THREE_WAY, base_store=store)

    def promote(name: str, opts: PlanOptions) -> str:
        request = MigrationRequest(team.url, pre.url, opts, name, store=store)
        result = migrate(replace(request, environment="pre"))
        return f"{result.status}: {result.message}"

    assert promote("base", options).startswith("noop")  # the team's base
    _new_current_revision(pre, workflow, "pre's revision")
    _new_current_revision(team, workflow, "team's revision")

    with pytest.raises(CheckFailed) as refused:
        plan_only(team.url, pre.url, options)
    assert refused.value.reason == "MergeConflict"
    assert f"table workflows, key ('{workflow['key']}'), column current" in str(refused.value)

    source_wins = TableRule("workflows", Rule.UPSERT, on_conflict=OnConflict.SOURCE)
    resolved = replace(options, rules=replace(THREE_WAY, tables=(*THREE_WAY.tables, source_wins)))
    assert promote("team", resolved).startswith("succeeded")
    pre.start()
    pre.sign_in()
    b.assert_boots_cleanly(pre)
    assert _revisions(pre) == {
        "p_ chain": (False, False, 5),  # production's, retired before by each side
        "pre's revision": (False, False, 5),  # retired by the merge, kept
        "team's revision": (True, True, 5),
    }
    pre.stop()
