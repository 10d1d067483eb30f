"""Index a table's rows through a key specification, as the planner and rollback see them.

Both sides of a plan, the verification after a write and a rollback's comparison with
what a migration left all read rows through these functions, over the
``SnapshotSource`` protocol, so they can never disagree on a key or a digest.
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.engine.model import ColumnType, TableSchema
from controller.engine.plan import KeySpec
from controller.engine.rowindex import RowIndex, RowShape, build_index
from controller.engine.source import SnapshotSource


def source_shape(table: TableSchema, ks: KeySpec) -> RowShape:
    return RowShape(
        table.name,
        table.column_names,
        [c.type for c in table.columns],
        key_columns=ks.key,
        compared_columns=ks.compared,
        pk_columns=ks.pk,
        side="source",
    )


def index_as(
    target: SnapshotSource, table: TableSchema, ks: KeySpec, types: Mapping[str, ColumnType]
) -> RowIndex:
    """Index ``table``'s rows of ``target`` through ``ks``, canonicalising each column with
    ``types`` where it names one (the source's types, so both sides compare alike)."""
    wanted = set(ks.compared) | set(ks.key) | set(ks.pk)
    columns = [c.name for c in table.columns if c.name in wanted]
    shape = RowShape(
        table.name,
        columns,
        [types.get(c.name) or c.type for c in table.columns if c.name in wanted],
        key_columns=ks.key,
        compared_columns=ks.compared,
        pk_columns=ks.pk,
        side="target",
    )
    return build_index(shape, target.batches(table.name, columns))


def index_target(
    target: SnapshotSource, source: TableSchema, tgt: TableSchema | None, ks: KeySpec
) -> RowIndex:
    if tgt is None:
        return RowIndex(source.name, ks.key, ks.compared)
    return index_as(target, tgt, ks, {c.name: c.type for c in source.columns})
