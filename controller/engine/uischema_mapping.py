"""Remap the x-uids of UI schema nodes paired by position (:mod:`.uischema_tree`).

When ``uiSchemas`` and ``uiSchemaTreePath`` both move, a source node paired with a
target node of another x-uid takes the target's x-uid everywhere the source holds it:
the node's row, both ends of its closure rows, and the NocoBase rows that name a UI
schema (routes, templates, button permissions). Then both tables are promoted
consistently: the node and its paths match the target's instead of arriving beside
them. The map is an :class:`IdMap` of ``uiSchemas``, so it is in the plan's digest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from functools import partial

from controller.engine.beside import at_once
from controller.engine.buckets import BucketSum, DigestSource, Level
from controller.engine.catalog import underscored
from controller.engine.idmap import IdMap, Translation
from controller.engine.idmapping import IdMapping
from controller.engine.model import INTEGER_KINDS, DatabaseSchema
from controller.engine.source import Batch, FilteredSource, SnapshotSource
from controller.engine.uischema_tree import Tree, pair_by_position
from controller.engine.values import canonical

NODES, CLOSURE, UID, NAME = "uiSchemas", "uiSchemaTreePath", "x-uid", "name"
PATH_COLUMNS = ("ancestor", "descendant", "depth")
# NocoBase's columns that hold a UI schema's x-uid (besides the tree's own).
UID_REFERENCES: tuple[tuple[str, str], ...] = (
    ("desktopRoutes", "schemaUid"),
    ("desktopRoutes", "menuSchemaUid"),
    ("mobileRoutes", "schemaUid"),
    ("uiSchemaTemplates", "uid"),
    ("uiSchemaServerHooks", "uid"),
    ("uiButtonSchemasRoles", "uid"),
)


def _has(schema: DatabaseSchema, table: str, *columns: str) -> bool:
    found = schema.table(table)
    return found is not None and all(found.column(c) is not None for c in columns)


def _closure(side: SnapshotSource) -> Iterator[Batch]:
    """The closure rows a tree is made of: only those of depth 1 count (``Tree.of``),
    so a database with an integer depth keeps only those (a deep tree has several
    closure rows per node)."""
    columns = list(PATH_COLUMNS)
    depth = side.schema().tables[CLOSURE].column("depth")
    if isinstance(side, FilteredSource) and depth is not None and depth.type.kind in INTEGER_KINDS:
        return side.batches_equal(CLOSURE, columns, "depth", 1)
    return side.batches(CLOSURE, columns)


def _tree(side: SnapshotSource) -> Tree:
    nodes = (row for batch in side.batches(NODES, [UID, NAME]) for row in batch)
    paths = (row for batch in _closure(side) for row in batch)
    return Tree.of(((r[0], r[1]) for r in nodes), ((r[0], r[1], r[2]) for r in paths))


def _nothing_to_pair(source: SnapshotSource, target: SnapshotSource) -> bool:
    """Whether pairing would pair nothing and say nothing: both sides hold the same set
    of x-uids (every source node is the target's), or one side holds no node at all.
    Found by one in-database aggregate per side (row count and digest sum of the key
    alone) where both are databases of one dialect that hash in place; False when
    unknown, and then both trees are read."""
    if not (isinstance(source, DigestSource) and isinstance(target, DigestSource)):
        return False
    if source.dialect != target.dialect:
        return False
    if not (source.digests_enabled() and target.digests_enabled()):
        return False
    types = [side.schema().tables[NODES].column(UID) for side in (source, target)]
    if types[0] is None or types[1] is None or types[0].type != types[1].type:
        return False
    key = (UID,)

    def sums(side: DigestSource) -> list[BucketSum]:
        return list(side.bucket_sums(NODES, key, key, Level(1)))

    ours, theirs = at_once(partial(sums, source), partial(sums, target))
    return not ours or not theirs or ours == theirs


def _columns(schema: DatabaseSchema, moved: Sequence[str]) -> dict[str, list[str]]:
    """Moved table → its columns holding a UI schema's x-uid (either naming style)."""
    out: dict[str, list[str]] = {NODES: [UID], CLOSURE: ["ancestor", "descendant"]}
    for table, column in UID_REFERENCES:
        for t, c in ((table, column), (underscored(table), underscored(column))):
            if t in moved and _has(schema, t, c):
                out.setdefault(t, []).append(c)
                break
    return out


def map_ui_schemas(
    source: SnapshotSource, target: SnapshotSource, moved: Sequence[str], ids: IdMapping
) -> list[str]:
    """Add the position pairing of UI schema nodes to ``ids``; the plan's warnings."""
    src, tgt = source.schema(), target.schema()
    if NODES not in moved or CLOSURE not in moved or NODES in ids.maps:
        return []  # (already mapped: the rules gave uiSchemas a natural key)
    if not all(
        _has(schema, NODES, UID, NAME) and _has(schema, CLOSURE, *PATH_COLUMNS)
        for schema in (src, tgt)
    ):
        return []
    if _nothing_to_pair(source, target):
        return []
    pairing = pair_by_position(_tree(source), _tree(target))
    warnings = [f"{NODES}: not paired by position, {why}" for why in pairing.listed()]
    if not pairing.ids:
        return warnings
    pk_type = src.tables[NODES].column(UID).type  # type: ignore[union-attr]
    uids = {canonical(s, pk_type): t for s, t in sorted(pairing.ids.items())}
    id_map = IdMap(NODES, pk_type, uids, matched=len(uids))
    ids.maps[NODES] = id_map
    for table, columns in _columns(src, moved).items():
        old = ids.translations.get(table)
        mapped = {**(old.columns if old else {}), **dict.fromkeys(columns, id_map)}
        ids.translations[table] = Translation(table, mapped)
    return warnings
