"""Build the ID maps of a migration and the row translation of every moved table.

A table gets an :class:`IdMap` when its rows move, it is matched by a natural key, it
has a one-column primary key, and some moved table references it (itself included).
Its map comes from a pass over only the key and ID columns of both sides; tables whose
natural key holds a reference are mapped after the table they reference.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from controller.engine.idmap import IdMap, Translation, match_ids
from controller.engine.model import DatabaseSchema, TableSchema
from controller.engine.plan import KeySpec
from controller.engine.references import References
from controller.engine.rowindex import CanonKey, RowShape
from controller.engine.source import Batch, SnapshotSource


@dataclass(frozen=True)
class PathMap(IdMap):
    """The IDs of a materialised path ("/1/5/9"), each segment through the table's map."""

    def target_id(self, value: Any) -> Any:
        if not isinstance(value, str) or not self.ids:
            return value
        return "/".join(str(IdMap.target_id(self, p)) if p else p for p in value.split("/"))


def _with_paths(
    translation: Translation | None, table: str, paths: References, maps: Mapping[str, IdMap]
) -> Translation | None:
    """``translation`` with the table's path columns added (IDs held inside strings)."""
    columns = {
        column: PathMap(parent, maps[parent].pk_type, maps[parent].ids)
        for column, parent in paths.get(table, {}).items()
        if parent in maps
    }
    if not columns:
        return translation
    return Translation(table, {**(translation.columns if translation else {}), **columns})


@dataclass
class IdMapping:
    maps: dict[str, IdMap] = field(default_factory=dict)
    translations: dict[str, Translation] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # references that cannot be followed
    conflicts: list[str] = field(default_factory=list)  # new rows whose ID cannot be replaced

    def rows(self, source: SnapshotSource, table: str, columns: Sequence[str]) -> Iterator[Batch]:
        """The source's rows of ``table`` as the target will hold them."""
        batches = source.batches(table, columns)
        translation = self.translations.get(table)
        return translation.rows(batches, columns) if translation else batches

    def translate(self, table: str, columns: Mapping[str, IdMap]) -> None:
        """Rewrite ``table``'s ``columns`` through these maps too (beside its others)."""
        old = self.translations.get(table)
        self.translations[table] = Translation(table, {**(old.columns if old else {}), **columns})


def reference_problems(
    references: References, moved: Sequence[str], schema: DatabaseSchema
) -> list[str]:
    problems = []
    for table in moved:
        for column, parent in sorted(references.get(table, {}).items()):
            where = f"table {table}: references.{column}"
            source_table = schema.tables[table]
            if source_table.column(column) is None:
                problems.append(f"{where}: no such column in the source")
            elif parent not in schema.tables:
                problems.append(f"{where}: no table {parent} in the source")
    return problems


def _mapped_tables(
    references: References, moved: Sequence[str], keyspecs: Mapping[str, KeySpec]
) -> set[str]:
    referenced = {parent for table in moved for parent in references.get(table, {}).values()}
    return {
        t for t in referenced if t in keyspecs and keyspecs[t].natural and len(keyspecs[t].pk) == 1
    }


def _order(
    mapped: set[str], references: References, keyspecs: Mapping[str, KeySpec]
) -> tuple[list[str], list[str]]:
    """Mapped tables, each after the mapped tables its natural key references."""
    order: list[str] = []
    problems: list[str] = []
    state: dict[str, str] = {}

    def visit(table: str, path: list[str]) -> None:
        if state.get(table) == "done":
            return
        if state.get(table) == "visiting":
            problems.append("natural keys reference each other: " + " → ".join(path))
            return
        state[table] = "visiting"
        refs = references.get(table, {})
        for column in keyspecs[table].key:
            parent = refs.get(column)
            if parent == table:
                problems.append(
                    f"table {table}: its natural key column {column} references the table "
                    "itself; choose key columns that identify a row on their own"
                )
            elif parent in mapped:
                visit(parent, [*path, parent])
        state[table] = "done"
        order.append(table)

    for table in sorted(mapped):
        visit(table, [table])
    return order, problems


def _translation(
    table: str, references: References, maps: Mapping[str, IdMap], pk: Sequence[str]
) -> Translation | None:
    columns = {
        column: maps[parent]
        for column, parent in references.get(table, {}).items()
        if parent in maps
    }
    if table in maps:
        columns[pk[0]] = maps[table]
    return Translation(table, columns) if columns else None


def key_pairs(
    side: SnapshotSource,
    table: TableSchema,
    source_table: TableSchema,
    ks: KeySpec,
    translation: Translation | None,
    name: str,
) -> Iterator[tuple[CanonKey, object]]:
    """(canonical natural key, raw ID) of every row of ``table`` on one side."""
    columns = [*ks.key, *(c for c in ks.pk if c not in ks.key)]
    types = {c.name: c.type for c in source_table.columns}
    shape = RowShape(
        table.name,
        columns,
        [types.get(c) or table.column(c).type for c in columns],  # type: ignore[union-attr]
        key_columns=ks.key,
        compared_columns=(),
        pk_columns=ks.pk,
        side=name,
    )
    batches = side.batches(table.name, columns)
    if translation is not None:
        batches = translation.rows(batches, columns)
    for batch in batches:
        for row in batch:
            yield shape.canon_key(shape.raw_key(row)), shape.pk(row)[0]


def map_ids(
    source: SnapshotSource,
    target: SnapshotSource,
    schemas: tuple[DatabaseSchema, DatabaseSchema],
    keyspecs: Mapping[str, KeySpec],
    references: References,
    deletes_unmatched: Mapping[str, bool],
    paths: References | None = None,
) -> IdMapping:
    """Map the IDs of every table that needs it, and say how each moved table's rows are
    rewritten. ``deletes_unmatched[t]``: the rule removes target rows the source lacks;
    ``paths``: columns holding a materialised path of a table's IDs."""
    src_schema, tgt_schema = schemas
    moved = sorted(keyspecs)
    result = IdMapping(problems=reference_problems(references, moved, src_schema))
    if result.problems:
        return result
    mapped = _mapped_tables(references, moved, keyspecs)
    order, result.problems = _order(mapped, references, keyspecs)
    if result.problems:
        return result
    for table in order:
        ks, src_table = keyspecs[table], src_schema.tables[table]
        key_refs = {c: p for c, p in references.get(table, {}).items() if c in ks.key}
        partial = _translation(table, {table: key_refs}, result.maps, ())
        tgt_table = tgt_schema.table(table)
        tgt_pairs = (
            key_pairs(target, tgt_table, src_table, ks, None, "target")
            if tgt_table is not None
            else iter(())
        )
        pk_type = src_table.column(ks.pk[0]).type  # type: ignore[union-attr]
        result.maps[table], conflicts = match_ids(
            table,
            pk_type,
            key_pairs(source, src_table, src_table, ks, partial, "source"),
            tgt_pairs,
            frees_unmatched=deletes_unmatched.get(table, False),
        )
        result.conflicts += conflicts
    for table in moved:
        translation = _translation(table, references, result.maps, keyspecs[table].pk)
        translation = _with_paths(translation, table, paths or {}, result.maps)
        if translation is not None:
            result.translations[table] = translation
    return result
