"""Fuzzing the rules readers: any input is a RulesSpec or a FerryError, nothing else.

Rules come from files anyone in a pull request can edit and from custom resources;
``parse_rules`` and the CLI's ``load_rules`` are fed arbitrary bytes, arbitrary
YAML-shaped values and near-miss rules documents (right field names, wrong values).
Whatever they accept must also survive what the engine does with it (globs matched
against table names) and round-trip through ``to_dict``. Bounded: a few seconds.
"""

from __future__ import annotations

import tempfile
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.api.rules import RulesSpec, parse_rules
from controller.cli.inputs import load_rules
from controller.errors import FerryError

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

RULE_NAMES = ["overwrite", "upsert", "insert-ignore", "schema-only", "skip"]
FIELDS = ["system", "user", "strict", "allowDestructive", "ignoreColumns", "tables"]
TABLE_FIELDS = ["match", "rule", "key", "references", "ignore"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=20),
    st.sampled_from([*RULE_NAMES, "*", "[", "]", "[]", "[!]", "a[b", "a]b[", "..", "ui*"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5),
        st.dictionaries(
            st.one_of(st.text(max_size=8), st.integers(), st.none()), inner, max_size=5
        ),
    ),
    max_leaves=20,
)
glob_text = st.text(alphabet="abcXY_$.-*?[]!0", min_size=0, max_size=12)
column_text = st.one_of(st.text(alphabet="abcXY_$0-", max_size=10), values)
near_table = st.fixed_dictionaries(
    {},
    optional={
        "match": st.one_of(glob_text, values),
        "rule": st.one_of(st.sampled_from(RULE_NAMES), values),
        "key": st.one_of(st.lists(column_text, max_size=4), values),
        "references": st.one_of(
            st.dictionaries(
                column_text.filter(lambda v: isinstance(v, str)), glob_text, max_size=3
            ),
            values,
        ),
        "ignore": st.one_of(st.lists(column_text, max_size=4), values),
        "extra": values,
    },
)
near_rules = st.fixed_dictionaries(
    {},
    optional={
        "system": st.one_of(st.sampled_from(RULE_NAMES), values),
        "user": st.one_of(st.sampled_from(RULE_NAMES), values),
        "strict": st.one_of(st.booleans(), values),
        "allowDestructive": st.one_of(st.booleans(), values),
        "ignoreColumns": st.one_of(st.lists(column_text, max_size=4), values),
        "tables": st.one_of(st.lists(near_table, max_size=4), values),
    },
)
TABLES = ["roles", "uiSchemas", "ui[Schemas", "a]b", "desktopRoutes", "t*", ""]


def _accepted(spec: RulesSpec) -> None:
    """What the engine does with an accepted spec cannot fail, and it round-trips."""
    for table in TABLES:
        for rule in spec.tables:
            fnmatchcase(table, rule.match)
    assert parse_rules(spec.to_dict()) == spec


def _parse(data: Any) -> None:
    try:
        spec = parse_rules(data)
    except FerryError:
        return
    _accepted(spec)


@FUZZ
@given(values)
def test_any_value_is_a_spec_or_a_ferry_error(data: Any) -> None:
    _parse(data)


@FUZZ
@given(near_rules)
def test_near_miss_rules_are_a_spec_or_a_ferry_error(data: dict[str, Any]) -> None:
    _parse(data)


def _load(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rules.yaml"
        path.write_bytes(content)
        try:
            spec = load_rules(str(path))
        except FerryError:
            return
    _accepted(spec)


YAML_PIECES = st.sampled_from(
    [
        "system: ",
        "user: ",
        "tables:\n",
        "  - ",
        "match: ",
        "rule: ",
        "key: ",
        "[",
        "]",
        "{",
        "}",
        ", ",
        "\n",
        "&a ",
        "*a",
        "!!python/object ",
        "<<: ",
        "? ",
        "- ",
        "'",
        '"',
        "\t",
        "---\n",
        "...\n",
        "kind: Migration\nspec:\n  rules:\n",
        "overwrite",
        "upsert",
        "roles",
        "ui*",
        "[!x]",
        "\x00",
        "\ufeff",
        "\xff",
        "%YAML 1.1\n",
        "!!binary ",
        "~",
    ]
)


@FUZZ
@given(st.binary(max_size=200))
def test_any_bytes_as_a_rules_file(content: bytes) -> None:
    _load(content)


@FUZZ
@given(st.lists(YAML_PIECES, max_size=30))
def test_yaml_shaped_text_as_a_rules_file(pieces: list[str]) -> None:
    _load("".join(pieces).encode("utf-8", "surrogatepass"))
