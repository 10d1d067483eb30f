"""``ferry export``: write a database's configuration as a reviewable snapshot."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controller.commands.planning import PlanOptions, collections_of
from controller.db.database import Database
from controller.engine.catalog import nocobase_catalog
from controller.engine.profiles import Profile, classify
from controller.engine.rules import resolve_rules
from controller.errors import CheckFailed
from controller.gitsource.export import table_document, write_snapshot
from controller.gitsource.snapshot_dir import Manifest


@dataclass(frozen=True)
class ExportResult:
    directory: Path
    tables: int
    with_rows: int
    warnings: tuple[str, ...]


def export(source_url: str, directory: Path, options: PlanOptions) -> ExportResult:
    db = Database(source_url)
    try:
        with db.reader() as snap:
            schema = snap.schema()
            nocobase = options.profile is Profile.NOCOBASE
            collections = collections_of(snap, schema) if nocobase else []
            classes = classify(options.profile, set(schema.tables), collections)
            resolved, warnings = resolve_rules(classes, options.rules)
            exported = sorted(n for n, r in resolved.items() if r.rule.syncs_schema)
            with_rows = [n for n in exported if resolved[n].rule.moves_rows]
            naming = nocobase_catalog().naming(set(schema.tables)) if nocobase else None
            manifest = Manifest(
                schema.dialect,
                schema.server_version,
                options.profile.value,
                naming,
                tuple(exported),
            )

            def documents() -> Iterator[dict[str, Any]]:
                for name in exported:
                    table = schema.tables[name]
                    res = resolved[name]
                    key = res.key or table.primary_key
                    rows = snap.batches(name, table.column_names) if res.rule.moves_rows else None
                    yield table_document(table, res.rule.value, key, rows, secrets)

            def no_secrets() -> None:
                if secrets:
                    shown = secrets[:20] + (
                        [f"… and {len(secrets) - 20} more"] if len(secrets) > 20 else []
                    )
                    raise CheckFailed(
                        "credentials are written literally in configuration rows; a snapshot "
                        "for Git must not hold them: reference a variable instead "
                        "({{$env.NAME}}) or skip the table. Nothing was written",
                        problems=shown,
                        reason="SecretInSnapshot",
                    )

            secrets: list[str] = []
            directory.mkdir(parents=True, exist_ok=True)
            count = write_snapshot(directory, manifest, documents(), accept=no_secrets)
    finally:
        db.dispose()
    return ExportResult(directory, count, len(with_rows), tuple(warnings))
