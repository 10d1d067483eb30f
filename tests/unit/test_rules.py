"""Rules: parsing rejects typos with the offending value; resolution follows precedence."""

from __future__ import annotations

import pytest

from controller.api.rules import Rule, RulesSpec, TableRule, parse_rules
from controller.engine.catalog import Category
from controller.engine.profiles import Profile, classify
from controller.engine.rules import resolve_rules
from controller.errors import CheckFailed, InvalidInput


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"system": "overwrite-all"}, "overwrite-all"),
        ({"user": "merge"}, "merge"),
        ({"sytem": "upsert"}, "sytem"),
        ({"tables": [{"match": "ui[Schemas", "rule": "skip"}]}, "ui[Schemas"),
        ({"tables": [{"match": "a b", "rule": "skip"}]}, "a b"),
        ({"tables": [{"match": "roles", "rule": "upsert", "key": "name"}]}, "'name'"),
        ({"tables": [{"match": "roles", "rule": "upsert", "key": ["na-me"]}]}, "na-me"),
        ({"tables": [{"match": "roles", "rule": "upsert", "keys": ["name"]}]}, "keys"),
        ({"tables": [{"match": "roles"}]}, "required"),
        ({"strict": "yes"}, "'yes'"),
        ({"tables": [{"match": "a", "rule": "upsert", "references": ["b"]}]}, "['b']"),
        ({"tables": [{"match": "a", "rule": "upsert", "references": {"b-c": "t"}}]}, "'b-c'"),
        ({"tables": [{"match": "a", "rule": "upsert", "references": {"b": "t*"}}]}, "'t*'"),
        ({"ignoreColumns": "updatedAt"}, "'updatedAt'"),
        ({"ignoreColumns": ["updated at"]}, "'updated at'"),
        ({"tables": [{"match": "a", "rule": "upsert", "ignore": ["x", "x"]}]}, "twice"),
    ],
)
def test_bad_rules_name_the_offending_value(data: dict[str, object], needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_rules(data)
    assert needle in str(err.value)


def test_rules_round_trip() -> None:
    spec = parse_rules(
        {
            "system": "upsert",
            "user": "overwrite",
            "strict": True,
            "allowDestructive": True,
            "ignoreColumns": ["createdAt", "updatedAt"],
            "tables": [
                {
                    "match": "desktopRoutes",
                    "rule": "upsert",
                    "key": ["title"],
                    "references": {"parentId": "desktopRoutes"},
                    "ignore": ["sort"],
                }
            ],
        }
    )
    assert spec.system is Rule.UPSERT and spec.user is Rule.OVERWRITE
    assert spec.ignore_columns == ("createdAt", "updatedAt")
    assert spec.tables == (
        TableRule(
            "desktopRoutes", Rule.UPSERT, ("title",), (("parentId", "desktopRoutes"),), ("sort",)
        ),
    )
    assert parse_rules(spec.to_dict()) == spec


def _classes(*tables: str, collections: tuple[str, ...] = ()) -> dict[str, object]:
    return classify(Profile.NOCOBASE, tables, collections)  # type: ignore[return-value]


def test_precedence_exact_then_glob_then_default() -> None:
    classes = classify(
        Profile.NOCOBASE, ["uiSchemas", "uiSchemaTreePath", "roles", "orders"], ["orders"]
    )
    spec = RulesSpec(
        system=Rule.UPSERT,
        tables=(TableRule("ui*", Rule.INSERT_IGNORE), TableRule("uiSchemas", Rule.OVERWRITE)),
    )
    resolved, warnings = resolve_rules(classes, spec)
    assert resolved["uiSchemas"].rule is Rule.OVERWRITE  # exact beats glob
    assert resolved["uiSchemaTreePath"].rule is Rule.INSERT_IGNORE  # glob
    assert resolved["roles"].rule is Rule.UPSERT  # system default
    assert resolved["orders"].rule is Rule.SCHEMA_ONLY  # user default
    assert resolved["orders"].category is Category.USER
    assert warnings == []


def test_catalog_defaults_when_no_system_rule() -> None:
    classes = classify(Profile.NOCOBASE, ["roles", "users", "migrations", "lcCheckpoints"])
    resolved, _ = resolve_rules(classes, RulesSpec())
    assert resolved["roles"].rule is Rule.OVERWRITE
    assert resolved["users"].rule is Rule.SCHEMA_ONLY  # business data stays
    assert resolved["migrations"].rule is Rule.SCHEMA_ONLY
    assert resolved["lcCheckpoints"].rule is Rule.SCHEMA_ONLY


def test_system_default_does_not_force_restricted_tables() -> None:
    classes = classify(Profile.NOCOBASE, ["migrations", "environmentVariables", "roles"])
    resolved, _ = resolve_rules(classes, RulesSpec(system=Rule.OVERWRITE))
    assert resolved["migrations"].rule is Rule.SCHEMA_ONLY
    assert resolved["environmentVariables"].rule is Rule.SCHEMA_ONLY
    assert resolved["roles"].rule is Rule.OVERWRITE


def test_refused_rule_on_restricted_table_is_named() -> None:
    classes = classify(Profile.NOCOBASE, ["environmentVariables"])
    spec = RulesSpec(tables=(TableRule("environmentVariables", Rule.OVERWRITE),))
    with pytest.raises(CheckFailed) as err:
        resolve_rules(classes, spec)
    assert "environmentVariables" in str(err.value) and "overwrite" in str(err.value)


def test_glob_hitting_restricted_table_warns_and_keeps_default() -> None:
    classes = classify(Profile.NOCOBASE, ["users", "roles"])
    resolved, warnings = resolve_rules(classes, RulesSpec(tables=(TableRule("*", Rule.UPSERT),)))
    assert resolved["users"].rule is Rule.SCHEMA_ONLY
    assert resolved["roles"].rule is Rule.UPSERT
    assert any("users" in w for w in warnings)


def test_uncovered_table_is_a_warning_or_strict_error() -> None:
    classes = classify(Profile.NOCOBASE, ["roles", "mystery"])
    resolved, warnings = resolve_rules(classes, RulesSpec())
    assert resolved["mystery"].rule is Rule.SKIP
    assert any("mystery" in w for w in warnings)
    with pytest.raises(CheckFailed) as err:
        resolve_rules(classes, RulesSpec(strict=True))
    assert "mystery" in str(err.value)
    named = RulesSpec(strict=True, tables=(TableRule("mystery", Rule.OVERWRITE),))
    assert resolve_rules(classes, named)[0]["mystery"].rule is Rule.OVERWRITE


def test_override_matching_nothing_is_reported() -> None:
    classes = classify(Profile.GENERIC, ["a"])
    _, warnings = resolve_rules(classes, RulesSpec(tables=(TableRule("b*", Rule.SKIP),)))
    assert warnings == ["rules.tables[0] (b*) matches no table"]


def test_generic_profile_treats_every_table_as_user() -> None:
    classes = classify(Profile.GENERIC, ["roles", "anything", "ferry_migrations"])
    resolved, _ = resolve_rules(classes, RulesSpec(user=Rule.UPSERT))
    assert set(resolved) == {"roles", "anything"}  # the ledger is never planned
    assert all(r.rule is Rule.UPSERT for r in resolved.values())


def test_underscored_names_are_found_in_the_catalog() -> None:
    classes = classify(Profile.NOCOBASE, ["application_plugins", "ui_schemas"])
    assert classes["application_plugins"].category is Category.SYSTEM
    assert classes["ui_schemas"].category is Category.SYSTEM


def test_ignored_columns_are_everywhere_plus_the_override() -> None:
    classes = classify(Profile.GENERIC, ["a", "b"])
    spec = parse_rules(
        {
            "user": "upsert",
            "ignoreColumns": ["updatedAt"],
            "tables": [{"match": "a", "rule": "upsert", "ignore": ["sort", "updatedAt"]}],
        }
    )
    resolved, _ = resolve_rules(classes, spec)
    assert resolved["a"].ignore == ("updatedAt", "sort")
    assert resolved["b"].ignore == ("updatedAt",)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"system": 0}, "unknown rule 0"),
        ({"system": ""}, "unknown rule ''"),
        ({"user": False}, "unknown rule False"),
        ({"tables": ""}, "expected a list"),
        ({"tables": 0}, "expected a list"),
        ({1: "overwrite"}, "must be strings"),
        ({"tables": [{"match": "a", "rule": "skip", None: 1}]}, "must be strings"),
        ({"tables": [{"match": "[]", "rule": "skip"}]}, "malformed"),
        ({"tables": [{"match": "[!]x", "rule": "skip"}]}, "malformed"),
        ({"tables": [{"match": "a[[b]]", "rule": "skip"}]}, "malformed"),
        ({"tables": [{"match": "a]b[", "rule": "skip"}]}, "malformed"),
        ({"tables": [{"match": "t" * 254, "rule": "skip"}]}, "longer than 253"),
        ({"tables": [{"match": "a", "rule": "skip", "key": ["c" * 129]}]}, "bad key"),
    ],
)
def test_values_once_read_as_defaults_are_refused(data: dict[object, object], needle: str) -> None:
    """``system: 0`` or ``tables: ""`` used to mean "not given": a typo picked a default."""
    with pytest.raises(InvalidInput) as err:
        parse_rules(data)  # type: ignore[arg-type]
    assert needle in str(err.value)


def test_null_means_the_default() -> None:
    assert parse_rules({"system": None, "user": None, "tables": None}) == RulesSpec()


@pytest.mark.parametrize("glob", ["ui*", "ui?chemas", "[a-z]*", "[!x]y", "a[bc]d[ef]", "t$1.x-y"])
def test_ordinary_globs_are_accepted(glob: str) -> None:
    assert parse_rules({"tables": [{"match": glob, "rule": "skip"}]}).tables[0].match == glob


def test_limits_are_the_crds() -> None:
    """A rules file the CLI accepts is one the API server accepts in spec.rules."""
    from pathlib import Path

    import yaml

    from controller.api import rules as r

    crd = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "crds" / "ferry.dev_migrations.yaml").read_text()
    )
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    rules = spec["properties"]["rules"]["properties"]
    table = rules["tables"]["items"]["properties"]
    assert rules["tables"]["maxItems"] == r.MAX_TABLES
    assert rules["ignoreColumns"]["maxItems"] == r.MAX_IGNORE == table["ignore"]["maxItems"]
    assert table["key"]["maxItems"] == r.MAX_KEY
    assert table["references"]["maxProperties"] == r.MAX_REFERENCES
    assert table["key"]["items"]["maxLength"] == r.MAX_COLUMN
    assert table["match"]["maxLength"] == r.MAX_TABLE
    assert table["references"]["additionalProperties"]["maxLength"] == r.MAX_TABLE
