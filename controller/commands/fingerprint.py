"""The configuration fingerprint of an environment: what drift is measured against.

It covers the rows of every table a promotion would carry by default (the profile's
built-in configuration tables), so an edit made by hand in a locked environment changes
it, while business data written by the application does not.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from controller.api.rules import Rule, RulesSpec, TableRule
from controller.commands.planning import collections_of
from controller.engine.catalog import Category
from controller.engine.indexing import index_target
from controller.engine.plan import key_spec, schema_fingerprint
from controller.engine.profiles import Profile, classify
from controller.engine.rules import resolve_rules
from controller.engine.source import SnapshotSource


@dataclass(frozen=True)
class Fingerprint:
    value: str
    tables: int  # tables in the database
    configuration_tables: int  # tables the fingerprint covers
    configuration_rows: int


def configuration_fingerprint(
    snap: SnapshotSource, profile: Profile, system_tables: tuple[str, ...] = ()
) -> Fingerprint:
    """``system_tables``: for the generic profile, globs naming the configuration tables."""
    schema = snap.schema()
    collections = collections_of(snap, schema) if profile is Profile.NOCOBASE else []
    classes = classify(profile, schema.tables, collections)
    rules = RulesSpec(tables=tuple(TableRule(g, Rule.OVERWRITE) for g in system_tables))
    resolved, _ = resolve_rules(classes, rules)
    h = hashlib.sha256()
    covered = rows = 0
    for name in sorted(resolved):
        res = resolved[name]
        table = schema.tables.get(name)
        builders_own = profile is Profile.NOCOBASE and res.category is Category.USER
        if table is None or not res.rule.moves_rows or builders_own:
            continue
        index = index_target(snap, table, table, key_spec(res, table, table))
        h.update(f"{name}\x1f{schema_fingerprint(table)}\x1f{index.fingerprint()}\x1e".encode())
        covered += 1
        rows += index.count
    return Fingerprint("sha256:" + h.hexdigest(), len(schema.tables), covered, rows)
