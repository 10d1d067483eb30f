"""NocoBase's own pre-checks on SQLite, PostgreSQL and MariaDB, through ``ferry``.

Each side is a NocoBase-shaped database (``tests/fixtures/nocobase_shape.py``) changed
the way the setting in question changes a real installation: the anchor tables renamed
(``DB_UNDERSCORED``, ``DB_TABLE_PREFIX``), ``applicationVersion.value``,
``applicationPlugins`` rows, ``collections.options.schema``. A refusal exits 2 with one
line of error naming the values, and neither database changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.db.dbhelpers import execute, q
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_refused, fingerprint, run_cli

Pair = tuple[str, str]
UNDERSCORED = {
    "applicationPlugins": "application_plugins",
    "applicationVersion": "application_version",
}
PREFIXED = {
    "applicationPlugins": "nb_applicationPlugins",
    "applicationVersion": "nb_applicationVersion",
}
VARS = {"HOOK_TOKEN": ("secret", "x"), "TICKET_WEBHOOK": ("plain", "y")}


@pytest.fixture
def pair(dialect: str, make_database: Callable[..., str]) -> Pair:
    dev, pre = make_database(dialect, "dev"), make_database(dialect, "pre")
    shape.build(dev, app="dev", variables=VARS)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables=VARS)
    return dev, pre


def _rename(dialect: str, url: str, renames: dict[str, str]) -> None:
    execute(
        url, *(f"ALTER TABLE {q(dialect, a)} RENAME TO {q(dialect, b)}" for a, b in renames.items())
    )


def _version(dialect: str, url: str, value: str) -> None:
    execute(url, f"UPDATE {q(dialect, 'applicationVersion')} SET {q(dialect, 'value')} = '{value}'")


def _refused(pair: Pair, says: list[str], *extra: str) -> str:
    dev, pre = pair
    argv = ["migrate", "--source", dev, "--target", pre, "--id", "r1", *extra]
    out = assert_refused(argv, 2, watched=[dev, pre], says=says[0])
    for word in says[1:]:
        assert word in out.stderr, out.stderr
    return out.stderr


@pytest.mark.parametrize(
    ("renames", "says"),
    [
        (
            UNDERSCORED,
            ["DB_UNDERSCORED is false in the source", "true in the target (application_plugins)"],
        ),
        (
            PREFIXED,
            ["DB_TABLE_PREFIX is '' in the source", "'nb_' in the target"],
        ),
    ],
    ids=["underscored", "prefix"],
)  # fmt: skip
def test_differing_naming_settings_are_refused_before_any_change(
    dialect: str, pair: Pair, renames: dict[str, str], says: list[str]
) -> None:
    _rename(dialect, pair[1], renames)
    _refused(pair, [*says, "naming settings differ"])


def test_an_older_target_is_refused_naming_both_versions(dialect: str, pair: Pair) -> None:
    _version(dialect, pair[0], "2.2.15")
    _version(dialect, pair[1], "2.2.9")  # older, though "2.2.9" > "2.2.15" as text
    _refused(pair, ["the target runs NocoBase 2.2.9, older than the source's 2.2.15"])


def test_a_newer_target_is_accepted(dialect: str, pair: Pair) -> None:
    _version(dialect, pair[1], "2.10.0")
    dev, pre = pair
    out = run_cli(["plan", "--source", dev, "--target", pre, "--format", "json"])
    assert out.code == 0, out.stderr


def test_missing_plugins_warn_and_refuse_in_strict_mode(
    dialect: str, pair: Pair, tmp_path: Path
) -> None:
    dev, pre = pair
    t, name, enabled = q(dialect, "applicationPlugins"), q(dialect, "name"), q(dialect, "enabled")
    execute(
        pre,
        f"DELETE FROM {t} WHERE {name} = 'acl'",
        f"UPDATE {t} SET {enabled} = {'false' if dialect == 'postgresql' else '0'} "
        f"WHERE {name} = 'workflow'",
    )
    expected = (
        "plugins enabled in the source are not enabled in the target: "
        "acl (absent), workflow (disabled)"
    )
    out = run_cli(["plan", "--source", dev, "--target", pre, "--format", "json"])
    assert out.code == 0, out.stderr
    assert expected in json.loads(out.stdout)["warnings"]
    rules = tmp_path / "strict.yaml"
    rules.write_text("strict: true\n")
    _refused(pair, [expected + " (strict mode)"], "--rules", str(rules))


def test_collection_schemas_count_on_postgresql_only(dialect: str, pair: Pair) -> None:
    """NocoBase records COLLECTION_MANAGER_SCHEMA in ``collections.options.schema`` and
    uses it on PostgreSQL; on MariaDB and SQLite it drops the option, so it is no
    reason to refuse there."""
    dev, pre = pair
    t, options = q(dialect, "collections"), q(dialect, "options")
    execute(dev, f'UPDATE {t} SET {options} = \'{{"schema": "public"}}\'')
    execute(pre, f'UPDATE {t} SET {options} = \'{{"schema": "tenant_a"}}\'')
    if dialect == "postgresql":
        _refused(pair, ["COLLECTION_MANAGER_SCHEMA", "in schema public, the target's in tenant_a"])
        return
    before = fingerprint([pre])
    out = run_cli(["plan", "--source", dev, "--target", pre, "--format", "json"])
    assert out.code == 0, out.stderr
    assert fingerprint([pre]) == before


def test_every_problem_in_one_refusal(dialect: str, pair: Pair, tmp_path: Path) -> None:
    _rename(
        dialect,
        pair[1],
        {"applicationPlugins": "application_plugins", "applicationVersion": "application_version"},
    )
    execute(
        pair[1], f"UPDATE {q(dialect, 'application_version')} SET {q(dialect, 'value')} = '1.9.0'"
    )
    rules = tmp_path / "strict.yaml"
    rules.write_text("strict: true\n")
    err = _refused(pair, ["DB_UNDERSCORED", "older than the source's 2.0.0"], "--rules", str(rules))
    assert err.count("\n  - ") == 2, err  # two problems listed; the plugins still match
