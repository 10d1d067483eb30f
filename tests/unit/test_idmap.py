"""ID maps: which source ID stands for which target ID, and rows rewritten through them."""

from __future__ import annotations

from controller.engine.idmap import Translation, match_ids
from controller.engine.idmapping import map_ids
from controller.engine.model import Column, ColumnType, DatabaseSchema, Kind, TableSchema
from controller.engine.plan import KeySpec
from controller.engine.profiles import Profile
from controller.engine.references import merged, profile_references

INT = ColumnType(kind=Kind.INTEGER)
TEXT = ColumnType(kind=Kind.TEXT)


def test_matched_rows_take_the_target_id_and_taken_ids_get_fresh_ones() -> None:
    source = [(("home",), 2), (("reports",), 1), (("stats",), 3)]
    target = [(("home",), 1), (("sales",), 2)]
    id_map, conflicts = match_ids("menus", INT, source, target, frees_unmatched=False)
    assert conflicts == []
    # home: 2 → 1 (matched); reports: 1 is taken → 4, above every ID of both sides;
    # stats keeps 3, free in the target.
    assert dict(id_map.ids) == {"i:2": 1, "i:1": 4}
    assert (id_map.matched, id_map.assigned) == (1, 1)
    assert [id_map.target_id(v) for v in (1, 2, 3, None)] == [4, 1, 3, None]


def test_ids_of_rows_the_rule_deletes_are_free() -> None:
    source = [(("new",), 2)]
    target = [(("old",), 2)]
    kept, _ = match_ids("t", INT, source, target, frees_unmatched=False)
    freed, _ = match_ids("t", INT, source, target, frees_unmatched=True)
    assert dict(kept.ids) == {"i:2": 3} and dict(freed.ids) == {}


def test_a_taken_non_integer_id_is_a_conflict_named() -> None:
    id_map, conflicts = match_ids(
        "roles", TEXT, [(("b",), "x1")], [(("a",), "x1")], frees_unmatched=False
    )
    assert dict(id_map.ids) == {}
    assert conflicts == [
        "table roles: new row ('b',) has ID 'x1', already used by another row of the "
        "target, and a non-integer ID cannot be replaced"
    ]


def test_the_fingerprint_changes_with_the_mapping() -> None:
    a, _ = match_ids("t", INT, [(("k",), 1)], [(("k",), 2)], frees_unmatched=False)
    b, _ = match_ids("t", INT, [(("k",), 1)], [(("k",), 3)], frees_unmatched=False)
    c, _ = match_ids("t", INT, [(("k",), 1)], [(("k",), 2)], frees_unmatched=False)
    assert a.fingerprint() != b.fingerprint() and a.fingerprint() == c.fingerprint()


def test_translation_rewrites_only_the_referencing_columns() -> None:
    menus, _ = match_ids("menus", INT, [(("home",), 2)], [(("home",), 1)], frees_unmatched=False)
    translation = Translation("entries", {"menu_id": menus})
    batches = [[(7, 2, "welcome"), (8, None, "orphan")], [(9, 5, "other")]]
    got = list(translation.rows(iter(batches), ["id", "menu_id", "label"]))
    assert got == [[(7, 1, "welcome"), (8, None, "orphan")], [(9, 5, "other")]]
    # columns asked for without the reference pass through untouched
    assert list(translation.rows(iter(batches), ["id", "x", "label"])) == batches


def _table(name: str, *columns: str) -> TableSchema:
    return TableSchema(name, tuple(Column(c, INT) for c in ("id", *columns)), primary_key=("id",))


def test_nocobase_references_are_found_in_either_naming_style() -> None:
    camel = DatabaseSchema(
        "postgresql",
        "15",
        {
            "desktopRoutes": _table("desktopRoutes", "parentId"),
            "flow_nodes": _table("flow_nodes", "workflowId"),  # upstreamId absent here
        },
    )
    assert profile_references(Profile.NOCOBASE, camel) == {
        "desktopRoutes": {"parentId": "desktopRoutes"},
        "flow_nodes": {"workflowId": "workflows"},
    }
    snake = DatabaseSchema(
        "postgresql", "15", {"desktop_routes": _table("desktop_routes", "parent_id")}
    )
    assert profile_references(Profile.NOCOBASE, snake) == {
        "desktop_routes": {"parent_id": "desktop_routes"}
    }
    assert profile_references(Profile.GENERIC, camel) == {}


def test_declared_references_add_to_the_profile_and_win() -> None:
    defaults = {"desktopRoutes": {"parentId": "desktopRoutes"}}
    declared = {"desktopRoutes": (("parentId", "menus"), ("x", "y")), "t": (("a", "b"),)}
    assert merged(defaults, declared) == {
        "desktopRoutes": {"parentId": "menus", "x": "y"},
        "t": {"a": "b"},
    }


class _Unread:
    """A source the checks must refuse before reading any row."""

    def batches(self, table: str, columns: object) -> object:
        raise AssertionError(f"read {table} although the references were refused")


def _natural(key: tuple[str, ...]) -> KeySpec:
    return KeySpec(key, key, ("id",), natural=True, pk_reassignable=True)


def test_a_natural_key_that_references_its_own_table_is_refused() -> None:
    schema = DatabaseSchema("postgresql", "15", {"menus": _table("menus", "parent_id")})
    mapping = map_ids(
        _Unread(),  # type: ignore[arg-type]
        _Unread(),  # type: ignore[arg-type]
        (schema, schema),
        {"menus": _natural(("parent_id",))},
        {"menus": {"parent_id": "menus"}},
        {},
    )
    assert mapping.problems == [
        "table menus: its natural key column parent_id references the table itself; "
        "choose key columns that identify a row on their own"
    ]


def test_natural_keys_referencing_each_other_are_refused() -> None:
    schema = DatabaseSchema(
        "postgresql", "15", {"a": _table("a", "b_id"), "b": _table("b", "a_id")}
    )
    mapping = map_ids(
        _Unread(),  # type: ignore[arg-type]
        _Unread(),  # type: ignore[arg-type]
        (schema, schema),
        {"a": _natural(("b_id",)), "b": _natural(("a_id",))},
        {"a": {"b_id": "b"}, "b": {"a_id": "a"}},
        {},
    )
    assert mapping.problems == ["natural keys reference each other: a → b → a"]
