"""What a rehearsal costs next to the apply it rehearses, on PostgreSQL.

    .venv/bin/python bench/rehearsal_bench.py [--rows 100000] [--rounds 3]

Starts a throwaway PostgreSQL (``tests.harness.dbservers``), builds a target of
``--rows`` NocoBase-shaped configuration rows (``migration_bench``'s generator) and a
source with the same rows after ``migration_bench.change_source`` (~1 % edited, ~0.5 %
added, ~0.5 % deleted: a typical release), then per round times, on fresh copies:

- ``rehearse``: fresh backup of the target, checked restore into a new
  ``ferry_rehearsal_*`` database on the same server, the same ``migrate`` there
  (plan, apply, verify), drop;
- ``migrate``: the real apply (plan, pre-migration backup, apply, verify, ledger).

It prints the median of each and the ratio rehearsal / apply; the apply is the promotion
a release manager runs anyway, so the ratio is what ``spec.rehearsal: Required`` adds.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _round(server: object, rows: int, tag: str, store_dir: Path) -> tuple[float, float]:
    from bench.migration_bench import change_source, empty_tables, fill_source
    from controller.backups.store import FilesystemStore
    from controller.commands.migrate import MigrationRequest, migrate
    from controller.commands.rehearsal import rehearse
    from tests.fixtures import nocobase_shape as shape

    names = {r: f"ferry_rbench_{r}_{tag}" for r in ("src", "tgt")}
    urls = {r: server.create_database(n) for r, n in names.items()}  # type: ignore[attr-defined]
    for role, name in names.items():
        shape.build(urls[role], app="prod")
        empty_tables(server, name)
        fill_source(server, name, rows)
    change_source(server, names["src"], rows)
    store = FilesystemStore(store_dir)
    request = MigrationRequest(urls["src"], urls["tgt"], store=store, environment="prod")
    t0 = time.perf_counter()
    rehearsal = rehearse(request, server.admin_url(), store=store)  # type: ignore[attr-defined]
    t1 = time.perf_counter()
    assert rehearsal.passed, rehearsal.to_status()
    result = migrate(request)
    t2 = time.perf_counter()
    assert result.status == "succeeded", result.message
    assert result.plan is not None and result.plan.digest == rehearsal.digest
    for name in names.values():
        server.drop_database(name)  # type: ignore[attr-defined]
    return t1 - t0, t2 - t1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from tests.harness.dbservers import get_postgres, make_base_dir

    server = get_postgres(make_base_dir("bench"))
    try:
        times = []
        with tempfile.TemporaryDirectory(prefix="ferry-rehearsal-bench-") as tmp:
            for i in range(args.rounds):
                store = Path(tmp) / str(i)
                times.append(_round(server, args.rows, secrets.token_hex(3), store))
        rehearsal = statistics.median(t for t, _ in times)
        apply = statistics.median(t for _, t in times)
        print(
            f"{args.rows:,} configuration rows, a ~2 % release, median of {args.rounds}: "
            f"rehearsal {rehearsal:.2f}s, apply {apply:.2f}s, "
            f"ratio rehearsal/apply {rehearsal / apply:.2f}"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
