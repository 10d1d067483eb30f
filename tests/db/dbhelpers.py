"""Helpers for database tests: whole-database dumps to prove "untouched" exactly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, Phase, settings

from controller.api.rules import Merge
from controller.backups.store import FilesystemStore
from controller.cli.inputs import load_rules
from controller.commands.planning import PlanOptions

MERGED_RELEASE = Path(__file__).parents[2] / "docs/examples/rules/nocobase-merged-release.yaml"


def dump(url: str) -> dict[str, Any]:
    """Every table's column types and rows (sorted), as the driver returns them."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            insp = sa.inspect(conn)
            out: dict[str, Any] = {}
            for name in sorted(insp.get_table_names()):
                cols = [c["name"] for c in insp.get_columns(name)]
                types = [str(c["type"]) for c in insp.get_columns(name)]
                rows = conn.execute(
                    sa.select(*[sa.column(c) for c in cols]).select_from(sa.table(name))
                ).all()
                out[name] = {
                    "columns": list(zip(cols, types, strict=True)),
                    "rows": sorted((tuple(r) for r in rows), key=repr),
                }
            return out
    finally:
        engine.dispose()


def rows(url: str, table: str, *columns: str, order: str = "id") -> list[tuple[Any, ...]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stmt = sa.select(*[sa.column(c) for c in columns]).select_from(sa.table(table))
            return [tuple(r) for r in conn.execute(stmt.order_by(sa.column(order))).all()]
    finally:
        engine.dispose()


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for sql in statements:
                conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def q(dialect: str, name: str) -> str:
    return f"`{name}`" if dialect == "mysql" else f'"{name}"'


#: Property tests against real databases: ten derandomized examples, so a failure
#: reproduces, and no shrinking, so the tier's time stays bounded.
DB_EXAMPLES = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def merged_release(three_way: bool, tmp_path: Path) -> tuple[PlanOptions, FilesystemStore]:
    """The shipped merged-release rules as they are (``upsert``) or with ``merge:
    threeWay`` (its bases in a store under ``tmp_path``), and that store."""
    rules = load_rules(str(MERGED_RELEASE))
    if three_way:
        rules = replace(rules, merge=Merge.THREE_WAY)
    store = FilesystemStore(tmp_path / "store")
    return PlanOptions(rules=rules, base_store=store if three_way else None), store


def damage(path: Path, how: str) -> None:
    """Damage a stored file at rest: ``flip`` a byte in the middle, or ``truncate`` it
    to half."""
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    path.write_bytes(bytes(data))
