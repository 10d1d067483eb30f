"""NocoBase's own pre-checks (naming settings, versions, plugins), as pure logic.

The same cases on real databases are in ``tests/db/test_nocobase_checks.py`` and on
real NocoBase in ``tests/nocobase/test_prechecks.py``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.api.reasons import PreCheckReason
from controller.engine.nocobase_checks import (
    Installation,
    Naming,
    PreCheck,
    detect_naming,
    precheck,
    require,
)
from controller.errors import CheckFailed

CAMEL = Naming(underscored=False, table_prefix="")
PLUGINS = {"acl": True, "users": True, "workflow": True}


def side(
    naming: Naming | None = CAMEL,
    version: str | None = "2.2.15",
    plugins: dict[str, bool] | None = None,
    schemas: frozenset[str] = frozenset(),
) -> Installation:
    return Installation(naming, schemas, version, PLUGINS if plugins is None else plugins)


def reasons(result: PreCheck) -> list[PreCheckReason]:
    return [f.reason for f in result.problems]


@pytest.mark.parametrize(
    ("tables", "expected"),
    [
        ({"applicationPlugins", "applicationVersion", "users"}, CAMEL),
        ({"application_plugins", "application_version"}, Naming(True, "")),
        ({"nb_applicationPlugins", "nb_applicationVersion"}, Naming(False, "nb_")),
        ({"t1_application_plugins", "t1_application_version"}, Naming(True, "t1_")),
        # A prefix ending in an underscore is not the underscored spelling.
        ({"x_application_plugins", "x_application_version", "x_users"}, Naming(True, "x_")),
        # Both anchors are needed: one table alone is not an installation.
        ({"applicationPlugins", "users"}, None),
        ({"nb_applicationPlugins", "applicationVersion"}, None),
        (set(), None),
        ({"orders", "customers"}, None),
        # Two installations in one database: the unprefixed one, deterministically.
        (
            {"applicationPlugins", "applicationVersion", "nb_applicationPlugins",
             "nb_applicationVersion"},
            CAMEL,
        ),
    ],
)  # fmt: skip
def test_naming_is_read_from_the_spelling_of_the_anchor_tables(
    tables: set[str], expected: Naming | None
) -> None:
    assert detect_naming(tables) == expected


def test_the_same_installation_passes_without_a_word() -> None:
    assert precheck(side(), side(), strict=True) == PreCheck()


@pytest.mark.parametrize(
    ("source", "target", "words"),
    [
        (CAMEL, Naming(True, ""), ["DB_UNDERSCORED is false", "true in the target"]),
        (Naming(True, ""), CAMEL, ["DB_UNDERSCORED is true", "false in the target"]),
        (CAMEL, Naming(False, "nb_"), ["DB_TABLE_PREFIX is '' in the source", "'nb_'"]),
        (Naming(False, "a_"), Naming(False, "b_"), ["'a_' in the source", "'b_' in the target"]),
    ],
)
def test_naming_settings_that_differ_are_refused_naming_both_values(
    source: Naming, target: Naming, words: list[str]
) -> None:
    result = precheck(side(naming=source), side(naming=target), strict=False)
    assert reasons(result) == [PreCheckReason.NAMING_SETTINGS_DIFFER]
    for word in words:
        assert word in result.problems[0].message


def test_underscored_and_prefix_both_differ_two_problems_in_one_round() -> None:
    result = precheck(side(naming=CAMEL), side(naming=Naming(True, "nb_")), strict=False)
    assert reasons(result) == [PreCheckReason.NAMING_SETTINGS_DIFFER] * 2


def test_collection_schemas_that_differ_name_both() -> None:
    result = precheck(
        side(schemas=frozenset({"public"})), side(schemas=frozenset({"app"})), strict=False
    )
    assert reasons(result) == [PreCheckReason.NAMING_SETTINGS_DIFFER]
    assert "COLLECTION_MANAGER_SCHEMA" in result.problems[0].message
    assert "schema public" in result.problems[0].message
    assert "target's in app" in result.problems[0].message


def test_collection_schemas_known_on_one_side_only_are_not_compared() -> None:
    # A fresh target has no collection yet: nothing says what its setting is.
    assert precheck(side(schemas=frozenset({"app"})), side(), strict=True) == PreCheck()


@pytest.mark.parametrize(
    ("source", "target", "refused"),
    [
        ("2.2.15", "2.2.14", True),
        ("2.2.15", "2.2.15", False),
        ("2.2.15", "2.3.0", False),
        ("2.2.15", "10.0.0", False),  # numbers, not text: "10" > "2"
        ("10.0.0", "9.9.9", True),
        ("2.0.0", "2.0.0-beta.3", True),  # a pre-release precedes its release
        ("2.0.0-beta.10", "2.0.0-beta.9", True),  # numeric pre-release identifiers
        ("2.0.0-beta.9", "2.0.0-beta.10", False),
        ("2.0.0-alpha.1", "2.0.0-beta.1", False),
        ("2.0.0-rc.1", "2.0.0-beta.5", True),
        ("2.2.15+build.2", "2.2.15+build.1", False),  # build metadata has no order
        ("v2.2.15", "2.2.14", True),
    ],
)
def test_a_target_older_than_the_source_is_refused(source: str, target: str, refused: bool) -> None:
    result = precheck(side(version=source), side(version=target), strict=False)
    if refused:
        assert reasons(result) == [PreCheckReason.TARGET_VERSION_OLDER]
        message = result.problems[0].message
        assert target.removeprefix("v") in message and source.removeprefix("v") in message
    else:
        assert result == PreCheck()


@pytest.mark.parametrize(("source", "target"), [("2.2.15", None), (None, "2.2.15"), (None, None)])
def test_an_unknown_version_is_not_compared(source: str | None, target: str | None) -> None:
    assert precheck(side(version=source), side(version=target), strict=True) == PreCheck()


def test_a_version_that_is_not_semver_is_warned_about_not_guessed() -> None:
    result = precheck(side(version="2.2.15"), side(version="latest"), strict=True)
    assert result.problems == ()
    assert len(result.warnings) == 1 and "'latest'" in result.warnings[0]


@given(
    st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30)),
    st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30)),
)
def test_version_order_is_numeric_tuple_order(src: tuple[int, ...], tgt: tuple[int, ...]) -> None:
    result = precheck(
        side(version=".".join(map(str, src))), side(version=".".join(map(str, tgt))), strict=False
    )
    assert bool(result.problems) is (tgt < src)


def test_missing_plugins_warn_naming_each_and_how_it_is_missing() -> None:
    target = {"acl": True, "users": False}  # workflow absent, users disabled
    result = precheck(side(), side(plugins=target), strict=False)
    assert result.problems == ()
    assert result.warnings == (
        "plugins enabled in the source are not enabled in the target: "
        "users (disabled), workflow (absent)",
    )


def test_missing_plugins_are_refused_in_strict_mode() -> None:
    result = precheck(side(), side(plugins={"acl": True}), strict=True)
    assert reasons(result) == [PreCheckReason.PLUGINS_MISSING]
    assert "users (absent), workflow (absent)" in result.problems[0].message


def test_plugins_disabled_in_the_source_or_extra_in_the_target_do_not_count() -> None:
    source = {"acl": True, "graph": False}
    target = {"acl": True, "extra": True}
    assert precheck(side(plugins=source), side(plugins=target), strict=True) == PreCheck()


def test_plugins_unknown_on_a_side_are_not_compared() -> None:
    unknown = Installation(CAMEL, frozenset(), "2.2.15", None)
    assert precheck(side(), unknown, strict=True) == PreCheck()
    assert precheck(unknown, side(plugins={}), strict=True) == PreCheck()


def test_hostile_plugin_names_are_quoted_and_cut() -> None:
    long = "p" * 500
    result = precheck(side(plugins={"bad\nname": True, long: True}), side(plugins={}), strict=True)
    message = result.problems[0].message
    assert "\n" not in message
    assert "'bad\\nname'" in message
    assert len(message) < 300


def test_every_problem_at_once_and_the_first_kind_is_the_reason() -> None:
    result = precheck(
        side(version="2.2.15"),
        side(naming=Naming(True, ""), version="2.2.0", plugins={}),
        strict=True,
    )
    assert reasons(result) == [
        PreCheckReason.NAMING_SETTINGS_DIFFER,
        PreCheckReason.TARGET_VERSION_OLDER,
        PreCheckReason.PLUGINS_MISSING,
    ]
    with pytest.raises(CheckFailed) as err:
        require(result)
    assert err.value.reason == "NamingSettingsDiffer"
    assert len(err.value.problems) == 3
    assert "\n" not in str(err.value)


def test_require_returns_the_warnings_when_nothing_is_refused() -> None:
    result = precheck(side(), side(plugins={"acl": True, "users": True}), strict=False)
    assert require(result) == [
        "plugins enabled in the source are not enabled in the target: workflow (absent)"
    ]
