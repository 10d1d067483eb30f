"""Time one restore drill of the 100k-row NocoBase-shaped database on PostgreSQL.

    .venv/bin/python bench/drill_bench.py [--rows 100000]

Starts a throwaway PostgreSQL (``tests.harness.dbservers``), fills a source database with
``migration_bench``'s generator, backs it up into a ``FilesystemStore``, and times
``drill`` into an empty scratch database on the same server (restore, row-by-row read
back, clearing), next to the backup and a plain restore for scale.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    from bench.migration_bench import empty_tables, fill_source
    from controller.backups.store import FilesystemStore
    from controller.commands.backup import create_backup, restore
    from controller.commands.drill import drill
    from tests.fixtures import nocobase_shape as shape
    from tests.harness.dbservers import get_postgres, make_base_dir

    server = get_postgres(make_base_dir("bench"))
    try:
        tag = secrets.token_hex(3)
        names = {r: f"ferry_drill_{r}_{tag}" for r in ("src", "scratch", "copy")}
        urls = {r: server.create_database(n) for r, n in names.items()}
        shape.build(urls["src"], app="prod")
        empty_tables(server, names["src"])
        written = fill_source(server, names["src"], args.rows)
        with tempfile.TemporaryDirectory(prefix="ferry-drill-bench-") as tmp:
            store = FilesystemStore(Path(tmp))
            t0 = time.perf_counter()
            manifest, _ = create_backup(urls["src"], store, environment="prod")
            t1 = time.perf_counter()
            restore(store, manifest.id, urls["copy"], safety=False, force=True)
            t2 = time.perf_counter()
            result = drill(store, manifest.id, urls["scratch"])
            t3 = time.perf_counter()
        assert result.passed, result.to_dict()
        print(
            f"{sum(written.values()):,} rows in {len(manifest.members)} tables, "
            f"{manifest.bytes / 2**20:.1f} MiB of members: backup {t1 - t0:.2f}s, "
            f"restore {t2 - t1:.2f}s, drill {t3 - t2:.2f}s (outcome {result.outcome})"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
