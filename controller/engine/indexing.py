"""Index a table's rows through a key specification, as the planner and rollback see them.

Both sides of a plan, the verification after a write and a rollback's comparison with
what a migration left all read rows through these functions, over the
``SnapshotSource`` protocol, so they can never disagree on a key or a digest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from functools import partial

from controller.engine.beside import at_once
from controller.engine.buckets import (
    BucketSum,
    DigestSource,
    Level,
    RowDigests,
    Search,
    Selection,
    search,
)
from controller.engine.model import ColumnType, TableSchema
from controller.engine.plan import KeySpec
from controller.engine.rowindex import RowIndex, RowShape, build_index
from controller.engine.source import SnapshotSource
from controller.engine.values import env_references


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


def _target_shape(
    table: TableSchema, ks: KeySpec, types: Mapping[str, ColumnType]
) -> tuple[list[str], RowShape]:
    wanted = set(ks.compared) | set(ks.key) | set(ks.pk)
    columns = [c.name for c in table.columns if c.name in wanted]
    return columns, RowShape(
        table.name,
        columns,
        [types.get(c.name) or c.type for c in table.columns if c.name in wanted],
        key_columns=ks.key,
        compared_columns=ks.compared,
        pk_columns=ks.pk,
        side="target",
    )


def index_as(
    target: SnapshotSource, table: TableSchema, ks: KeySpec, types: Mapping[str, ColumnType]
) -> RowIndex:
    """Index ``table``'s rows of ``target`` through ``ks``, canonicalising each column with
    ``types`` where it names one (the source's types, so both sides compare alike)."""
    columns, shape = _target_shape(table, ks, types)
    return build_index(shape, target.batches(table.name, columns))


def index_target(
    target: SnapshotSource, source: TableSchema, tgt: TableSchema | None, ks: KeySpec
) -> RowIndex:
    if tgt is None:
        return RowIndex(source.name, ks.key, ks.compared)
    return index_as(target, tgt, ks, {c.name: c.type for c in source.columns})


def hashes_in_place(
    source: SnapshotSource,
    target: SnapshotSource,
    src: TableSchema,
    tgt: TableSchema | None,
    ks: KeySpec,
) -> bool:
    """Whether this table's rows can be compared by in-database digests: both sides live
    databases of one dialect that allow it, a key that is the primary key (natural keys
    re-assign IDs against every target row), and the compared columns of one type on
    both sides (a native digest is then finer than Ferry's canonical equality)."""
    if not (isinstance(source, DigestSource) and isinstance(target, DigestSource)):
        return False
    if source.dialect != target.dialect or tgt is None or not ks.key or ks.natural:
        return False
    if not set(ks.key) <= set(ks.compared):  # a row's digest must cover its key
        return False
    if not (source.digests_enabled() and target.digests_enabled()):
        return False
    for name in {*ks.compared, *ks.key}:
        a, b = src.column(name), tgt.column(name)
        if a is None or b is None or a.type != b.type:
            return False
    return True


def index_differences(
    source: DigestSource, target: DigestSource, src: TableSchema, tgt: TableSchema, ks: KeySpec
) -> tuple[RowIndex, RowIndex]:
    """Indexes of only the rows whose buckets differ; the others are ``settled``. The
    source's ``env_refs`` still cover every row (read from the rows that may hold one)."""
    columns = tuple(src.column_names)
    found = search(
        _sums(source, src.name, ks, columns),
        _sums(target, src.name, ks),
        rows=_rows(source, target, src.name, ks),
    )
    src_idx, tgt_idx = _held(source, target, src, tgt, ks, found, found.selection or [])
    if found.source_env_rows:  # only then read the rows that may name a variable
        for batch in source.env_batches(src.name, list(columns)):
            for row in batch:
                for value in row:
                    src_idx.env_refs.update(env_references(value))
    return src_idx, tgt_idx


def index_written(
    source: DigestSource,
    target: DigestSource,
    src: TableSchema,
    now: TableSchema,
    ks: KeySpec,
    written: Selection | None = None,
) -> tuple[RowIndex, RowIndex]:
    """After a write: the source's and the target's rows in the buckets where the two
    sides still differ, for :func:`controller.engine.verify`; rows outside them are
    identical in the database, so they hold what the source holds.

    ``written``: the buckets the plan read (where every row it changed lies); the rest
    were found identical on both sides in this same transaction and the write did not
    touch them, so only the rows of these buckets are hashed again (every row still
    counts: the tables' row counts are compared whole)."""
    found = search(
        _sums(source, src.name, ks),
        _sums(target, src.name, ks),
        written,
        _rows(source, target, src.name, ks),
    )
    return _held(source, target, src, now, ks, found, found.selection or [])


def _sums(
    side: DigestSource, name: str, ks: KeySpec, env_columns: tuple[str, ...] = ()
) -> Callable[[Level], Iterator[BucketSum]]:
    """The side's aggregates per level; the whole-table one also counts the rows of
    ``env_columns`` that may reference a variable."""

    def sums(level: Level) -> Iterator[BucketSum]:
        env = env_columns if level.modulus == 1 else ()
        return side.bucket_sums(name, ks.key, ks.compared, level, env)

    return sums


def _rows(
    source: DigestSource, target: DigestSource, name: str, ks: KeySpec
) -> tuple[RowDigests, RowDigests]:
    """Each side's (key hash, row digest) of the rows of a selection."""

    def side(of: DigestSource) -> RowDigests:
        return lambda selection: of.bucket_digests(name, ks.key, ks.compared, selection)

    return side(source), side(target)


def _held(
    source: DigestSource,
    target: DigestSource,
    src: TableSchema,
    tgt: TableSchema,
    ks: KeySpec,
    found: Search,
    selection: Selection,
) -> tuple[RowIndex, RowIndex]:
    """Indexes of the rows of ``selection`` on both sides; the rest is ``settled``."""
    name = src.name
    tgt_columns, tgt_shape = _target_shape(tgt, ks, {c.name: c.type for c in src.columns})
    src_idx = RowIndex(name, ks.key, ks.compared)
    tgt_idx = RowIndex(name, ks.key, ks.compared)
    if selection:  # both sides read at once, each on its own connection
        columns = list(src.column_names)
        src_rows = source.bucket_batches(name, columns, ks.key, ks.compared, selection)
        tgt_rows = target.bucket_batches(name, tgt_columns, ks.key, ks.compared, selection)
        src_idx, tgt_idx = at_once(
            partial(build_index, source_shape(src, ks), src_rows),
            partial(build_index, tgt_shape, tgt_rows),
        )
    src_idx.settled = found.source_rows - len(src_idx.rows)
    tgt_idx.settled = found.target_rows - len(tgt_idx.rows)
    src_idx.buckets = tgt_idx.buckets = selection
    return src_idx, tgt_idx
