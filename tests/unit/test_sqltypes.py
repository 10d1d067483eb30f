"""The type and default grammars accept what real databases report, and render it.

The accepted spellings are those SQLAlchemy reflects from PostgreSQL 15, MariaDB and
SQLite (measured on the test servers) and every type and default of the real NocoBase
schema in tests/fixtures/nocobase. Hostile spellings are in test_hostile_snapshot.py
and tests/db/test_ddl_injection.py.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from controller.engine.sqldefaults import parse_default
from controller.engine.sqltypes import parse_type
from controller.errors import InvalidInput

NOCOBASE = Path(__file__).parents[1] / "fixtures" / "nocobase" / "2.2.15" / "schema.json"

TYPES = [
    ("postgresql", "INTEGER[]", "INTEGER[]"),
    ("postgresql", "TIMESTAMP(3) WITHOUT TIME ZONE", "TIMESTAMP(3) WITHOUT TIME ZONE"),
    ("postgresql", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP WITH TIME ZONE"),
    ("postgresql", "CHARACTER VARYING(255)", "CHARACTER VARYING(255)"),
    ("postgresql", "DOUBLE PRECISION", "DOUBLE PRECISION"),
    ("postgresql", "NUMERIC(10,2)", "NUMERIC(10, 2)"),
    ("postgresql", "TIME WITH TIME ZONE", "TIME WITH TIME ZONE"),
    ("mysql", "INTEGER(11)", "INTEGER(11)"),
    ("mysql", "ENUM('x','it''s')", "ENUM('x','it''s')"),
    ("mysql", "DECIMAL(10, 2) UNSIGNED", "DECIMAL(10, 2) UNSIGNED"),
    (
        "mysql",
        "VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        "VARCHAR(10) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
    ),
    ("mysql", "DATETIME(6)", "DATETIME(6)"),
    ("mysql", "TINYINT(1)", "TINYINT(1)"),
    ("sqlite", "varchar(20)", "varchar(20)"),
    ("sqlite", "UNSIGNED BIG INT", "UNSIGNED BIG INT"),
    ("sqlite", "VARCHAR(255) BINARY", "VARCHAR(255) BINARY"),
]


@pytest.mark.parametrize(("dialect", "text", "rendered"), TYPES)
def test_real_types_parse_and_render(dialect: str, text: str, rendered: str) -> None:
    assert parse_type(text, dialect).render() == rendered


DEFAULTS = [
    ("postgresql", "'it''s \\ x'::character varying", "literal", "it's \\ x"),
    ("postgresql", "'-1'::integer", "literal", "-1"),
    ("postgresql", "(-1)", "literal", -1),
    ("postgresql", "1.50", "literal", Decimal("1.50")),
    ("postgresql", "NULL::character varying", "literal", None),
    ("postgresql", "now()", "expression", "now()"),
    ("postgresql", "CURRENT_TIMESTAMP(3)", "expression", "CURRENT_TIMESTAMP(3)"),
    ("mysql", "'it''s \\\\ x'", "literal", "it's \\ x"),
    ("mysql", "current_timestamp()", "expression", "CURRENT_TIMESTAMP()"),
    ("mysql", "uuid()", "expression", "UUID()"),
    ("sqlite", "datetime('now')", "expression", "(datetime('now'))"),
    ("sqlite", "'1'", "literal", "1"),
]


@pytest.mark.parametrize(("dialect", "text", "kind", "value"), DEFAULTS)
def test_real_defaults_parse(dialect: str, text: str, kind: str, value: object) -> None:
    parsed = parse_default(text, dialect, table="t", column="c")
    assert parsed.kind == kind
    assert (parsed.value if kind == "literal" else parsed.sql) == value


def test_mysql_on_update_is_kept() -> None:
    parsed = parse_default(
        "current_timestamp(6) ON UPDATE current_timestamp(6)", "mysql", table="t", column="c"
    )
    assert (parsed.sql, parsed.on_update) == ("CURRENT_TIMESTAMP(6)", "CURRENT_TIMESTAMP(6)")


def test_only_the_columns_own_sequence() -> None:
    own = parse_default(
        "nextval('\"aiFiles_id_seq\"'::regclass)", "postgresql", table="aiFiles", column="id"
    )
    assert own.sql == "nextval('\"aiFiles_id_seq\"'::regclass)"
    with pytest.raises(InvalidInput):
        parse_default(
            "nextval('users_id_seq'::regclass)", "postgresql", table="aiFiles", column="id"
        )


def test_long_names_use_postgresqls_truncated_sequence_name() -> None:
    table, column = "t" * 60, "identifier"
    name = ("t" * 48) + "_identifier_seq"  # PostgreSQL shortens the longer name
    assert len(name) == 63
    parse_default(f"nextval('{name}'::regclass)", "postgresql", table=table, column=column)


def test_every_type_and_default_of_real_nocobase_is_accepted() -> None:
    schema = json.loads(NOCOBASE.read_text(encoding="utf-8"))
    seen = 0
    for table, spec in schema["tables"].items():
        for column in spec["columns"]:
            parse_type(column["type"], "postgresql")
            if column["default"] is not None:
                parse_default(column["default"], "postgresql", table=table, column=column["name"])
            seen += 1
    assert seen > 900
