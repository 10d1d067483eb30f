"""Migration IDs: one syntax, sized to the ledger's column and safe as a store key."""

from __future__ import annotations

import pytest

from controller.api.ids import MIGRATION_ID_MAX, validate_migration_id
from controller.backups import layout
from controller.db.ledger import ledger
from controller.errors import InvalidInput


def test_the_limit_is_the_ledger_column() -> None:
    assert ledger.c.id.type.length == MIGRATION_ID_MAX  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "value",
    [
        "r1",
        "release-42",
        "m-20260115-093000-1a2b3c4d",
        "apps.release-42.1a2b3c4d",
        "v1.2_3",
        "x" * MIGRATION_ID_MAX,
    ],
)
def test_valid_ids_are_kept_and_fit_a_store_key(value: str) -> None:
    assert validate_migration_id(value) == value
    assert layout.post_state_key(value) == f"post/{value}.json.zst"


def test_no_id_is_derived_later() -> None:
    assert validate_migration_id(None) is None


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("", "empty"),
        ("release 42", "only letters"),
        ("a/b", "only letters"),
        ("../x", "start with"),
        ("-rf", "start with"),
        ("r1\n", "only letters"),
        ("r\x00", "only letters"),
        ("réléase", "only letters"),
        ("é", "start with"),
        ("x" * (MIGRATION_ID_MAX + 1), f"at most {MIGRATION_ID_MAX}"),
    ],
)
def test_invalid_ids_are_refused_by_name(value: str, says: str) -> None:
    with pytest.raises(InvalidInput) as err:
        validate_migration_id(value)
    assert says in str(err.value) and "invalid migration ID" in str(err.value)
    assert "\n" not in str(err.value).replace("\\n", "")


def test_a_huge_id_is_shown_cut() -> None:
    with pytest.raises(InvalidInput) as err:
        validate_migration_id("y" * 100_000)
    assert len(str(err.value)) < 200 and "100000 characters" in str(err.value)


def test_the_operators_ids_fit_the_ledger_for_the_longest_names() -> None:
    from controller.flows.migration import ledger_id

    meta = {"namespace": "n" * 63, "name": "m" * 253, "uid": "0123456789abcdef"}
    other = {**meta, "name": "m" * 252 + "x"}
    long_id = ledger_id(meta)
    assert validate_migration_id(long_id) == long_id
    assert long_id.endswith(".01234567") and ledger_id(other) != long_id
    assert ledger_id({"namespace": "ns", "name": "rel", "uid": "abcdef0123"}) == "ns.rel.abcdef01"
