"""Benchmark of the migration engine: promote a large NocoBase-shaped configuration
between two PostgreSQL databases and report rows per second and peak memory.

    .venv/bin/python bench/migration_bench.py [--rows N] [--keep]

The parent process starts a throwaway PostgreSQL (or uses ``$FERRY_TEST_POSTGRES_URL``),
builds a source database of ``--rows`` configuration rows (default 100,000) across the
NocoBase system tables with COPY, and a target that has the same tables but no rows.
Every scenario then runs in a fresh child process (this script with ``--scenario``)
through Ferry's real entry points, ``plan_only`` and ``migrate``, so each child's peak
RSS belongs to that scenario alone. A ``pg_dump --data-only | psql`` of the same
tables into an empty copy gives a reference time. See bench/README.md.

Top-level imports are standard library only: the children import just what their
scenario needs, so the "baseline" child shows what importing the engine costs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    children_peak_rss_mib,
    fmt_row,
    in_child,
    peak_rss_mib,
    scenario_result,
)

OUT = ROOT / "bench" / "out"
ENV_SOURCE = "FERRY_BENCH_SOURCE"
ENV_TARGET = "FERRY_BENCH_TARGET"
ENV_PGTOOLS = "FERRY_BENCH_PG_BIN"

# The configuration tables the benchmark fills (all rule "overwrite" in the catalog),
# with the share of the requested rows each one gets.
SHARES: dict[str, float] = {
    "uiSchemas": 0.30,
    "uiSchemaTreePath": 0.34,
    "fields": 0.12,
    "desktopRoutes": 0.06,
    "collections": 0.01,
    "roles": 0.01,
    "rolesResources": 0.08,
    "workflows": 0.01,
    "flow_nodes": 0.07,
}
# Emptied in the target (and the reference copy): every table whose rows Ferry moves.
MOVED_TABLES = (*SHARES, "systemSettings", "applicationPlugins")
T0 = "2026-01-15 09:30:00.123+00"
COMPONENTS = ("Grid", "Grid.Row", "Grid.Col", "CardItem", "TableV2", "FormV2", "Action")
DECORATORS = ("TableBlockProvider", "FormBlockProvider", "BlockItem", None)
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


# --------------------------------------------------------------------------
# data generation (parent only)
# --------------------------------------------------------------------------


def _uid(rng: random.Random) -> str:
    return "".join(rng.choices(ALPHABET, k=11))


def ui_schema(rng: random.Random, title: str) -> dict[str, Any]:
    """A nested page → grid → row → col → block schema of about 0.5-3 KB."""
    depth = rng.choice((1, 2, 2, 3))

    def node(level: int) -> dict[str, Any]:
        fan = 0 if level >= depth else rng.choice((1, 1, 2))
        out: dict[str, Any] = {
            "type": "void",
            "x-uid": _uid(rng),
            "x-component": rng.choice(COMPONENTS),
            "x-decorator": rng.choice(DECORATORS),
            "x-settings": "blockSettings:table",
            "x-async": False,
            "x-index": level,
            "title": f"{title} · level {level} «ünïcødé»",
        }
        if level == depth:
            out["x-decorator-props"] = {
                "collection": f"bench_coll_{rng.randrange(1000):04d}",
                "dataSource": "main",
                "params": {"pageSize": rng.choice((10, 20, 50)), "sort": ["-createdAt"]},
                "action": "list",
            }
        if fan:
            out["properties"] = {_uid(rng): node(level + 1) for _ in range(fan)}
        return out

    return node(0)


def field_options(rng: random.Random, i: int) -> dict[str, Any]:
    return {
        "uiSchema": {
            "title": f"Field {i}",
            "x-component": rng.choice(("Input", "InputNumber", "Select", "DatePicker")),
            "x-component-props": {"style": {"width": "100%"}, "allowClear": True},
            "enum": [{"label": f"Option {k}", "value": f"o{k}"} for k in range(rng.randrange(4))],
        },
        "defaultValue": None,
        "unique": False,
        "allowNull": True,
    }


def table_counts(total: int) -> dict[str, int]:
    counts = {name: max(1, int(total * share)) for name, share in SHARES.items()}
    counts["uiSchemaTreePath"] += total - sum(counts.values())
    return counts


def _tree_paths(uids: list[str], count: int) -> Iterator[tuple[Any, ...]]:
    """(ancestor, descendant, depth) of a heap-shaped tree over ``uids``, by depth."""
    emitted, depth = 0, 0
    while emitted < count:
        progressed = False
        for i, descendant in enumerate(uids):
            a = i
            for _ in range(depth):
                a = (a - 1) // 2 if a > 0 else -1
            if a < 0:
                continue
            progressed = True
            yield (uids[a], descendant, depth, False, None if depth else "properties", i)
            emitted += 1
            if emitted >= count:
                return
        if not progressed:  # tree exhausted: pad with synthetic pairs
            for k in range(count - emitted):
                yield (f"tp-a{k:08d}", f"tp-d{k:08d}", 99, False, None, k)
            return
        depth += 1


def generate_rows(
    table: str, count: int, *, seed: int, prefix: str, id_start: int
) -> tuple[list[str], Iterator[tuple[Any, ...]]]:
    """Columns and rows for COPY into ``table``; keys carry ``prefix``, IDs ``id_start``."""
    rng = random.Random(f"{seed}:{table}:{prefix}")
    if table == "uiSchemas":
        return ["x-uid", "name", "schema"], (
            (f"{prefix}u{i:08d}", f"block{i}", json.dumps(ui_schema(rng, f"Page {i}")))
            for i in range(count)
        )
    if table == "uiSchemaTreePath":
        uids = [f"{prefix}u{i:08d}" for i in range(max(1, count // 3))]
        return ["ancestor", "descendant", "depth", "async", "type", "sort"], _tree_paths(
            uids, count
        )
    if table == "fields":
        return ["key", "name", "type", "interface", "collectionName", "options", "sort"], (
            (
                f"{prefix}f{i:08d}",
                f"field{i}",
                rng.choice(("string", "integer", "json", "boolean")),
                "input",
                f"bench_coll_{i % 1000:04d}",
                json.dumps(field_options(rng, i)),
                i,
            )
            for i in range(count)
        )
    if table == "desktopRoutes":
        return [
            "id",
            "parentId",
            "title",
            "icon",
            "schemaUid",
            "menuSchemaUid",
            "type",
            "options",
            "sort",
            "hideInMenu",
            "enableTabs",
            "createdAt",
            "updatedAt",
        ], (
            (
                id_start + i,
                None if i % 10 == 0 else id_start + i - i % 10,
                f"Route {i}",
                "AppstoreOutlined",
                f"{prefix}u{i:08d}",
                f"{prefix}m{i:08d}",
                "page" if i % 10 else "group",
                json.dumps({"documentTitle": f"Route {i}", "tabs": [{"title": "A"}]}),
                i,
                False,
                i % 2 == 0,
                T0,
                T0,
            )
            for i in range(count)
        )
    if table == "collections":
        return ["key", "name", "title", "inherit", "hidden", "options", "sort"], (
            (
                f"{prefix}c{i:06d}",
                f"{prefix}bench_coll_{i:04d}",
                f"Collection {i}",
                False,
                False,
                json.dumps({"logging": True, "autoGenId": True, "template": "general"}),
                i,
            )
            for i in range(count)
        )
    if table == "roles":
        return [
            "name",
            "title",
            "strategy",
            "default",
            "hidden",
            "allowConfigure",
            "allowNewMenu",
            "snippets",
            "sort",
            "createdAt",
            "updatedAt",
        ], (
            (
                f"{prefix}role{i:06d}",
                f"Role {i}",
                json.dumps({"actions": ["view", "create", "update:own"]}),
                False,
                False,
                i % 3 == 0,
                True,
                json.dumps(["ui.*", "pm.*", "!pm.acl"]),
                i,
                T0,
                T0,
            )
            for i in range(count)
        )
    if table == "rolesResources":
        return ["id", "roleName", "name", "usingActionsConfig", "createdAt", "updatedAt"], (
            (id_start + i, f"role{i % 500:06d}", f"bench_coll_{i % 1000:04d}", True, T0, T0)
            for i in range(count)
        )
    if table == "workflows":
        return [
            "id",
            "key",
            "title",
            "enabled",
            "description",
            "type",
            "config",
            "current",
            "sync",
            "options",
            "createdAt",
            "updatedAt",
        ], (
            (
                id_start + i,
                f"{prefix}wkf{i:06d}",
                f"Workflow {i}",
                i % 2 == 0,
                "Notify on new orders",
                "collection",
                json.dumps({"collection": "orders", "mode": 1, "changed": ["amount"]}),
                True,
                False,
                json.dumps({"deleteExecutionOnStatus": []}),
                T0,
                T0,
            )
            for i in range(count)
        )
    if table == "flow_nodes":
        return [
            "id",
            "key",
            "title",
            "workflowId",
            "type",
            "config",
            "upstreamId",
            "branchIndex",
            "createdAt",
            "updatedAt",
        ], (
            (
                id_start + i,
                f"{prefix}node{i:07d}",
                f"Node {i}",
                id_start + i // 7,
                "request" if i % 7 == 0 else "condition",
                json.dumps(
                    {"url": "https://hooks.example/{{$env.HOOK_TOKEN}}", "method": "POST"}
                    if i % 7 == 0
                    else {"engine": "formula.js", "calculation": f"{{{{$jobsMapByNodeKey.n{i}}}}}"}
                ),
                None if i % 7 == 0 else id_start + i - 1,
                None,
                T0,
                T0,
            )
            for i in range(count)
        )
    raise ValueError(table)


def _connect(server: Any, database: str) -> Any:
    import psycopg

    return psycopg.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        dbname=database,
        autocommit=False,
    )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def copy_rows(conn: Any, table: str, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> int:
    n = 0
    cols = ", ".join(_q(c) for c in columns)
    with conn.cursor() as cur, cur.copy(f"COPY {_q(table)} ({cols}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def fix_sequences(conn: Any) -> None:
    with conn.cursor() as cur:
        for table in ("desktopRoutes", "rolesResources", "workflows", "flow_nodes"):
            cur.execute(
                f"select setval(pg_get_serial_sequence('{_q(table)}', 'id'), "
                f"coalesce((select max(id) from {_q(table)}), 0) + 1, false)"
            )


def fill_source(server: Any, database: str, total: int) -> dict[str, int]:
    counts = table_counts(total)
    written: dict[str, int] = {}
    with _connect(server, database) as conn:
        for table, count in counts.items():
            cols, rows = generate_rows(table, count, seed=1, prefix="", id_start=1000)
            written[table] = copy_rows(conn, table, cols, rows)
        fix_sequences(conn)
        conn.commit()
        with conn.cursor() as cur:
            cur.execute("analyze")
    return written


def empty_tables(server: Any, database: str) -> None:
    with _connect(server, database) as conn:
        conn.execute("truncate " + ", ".join(_q(t) for t in MOVED_TABLES))
        conn.commit()


def count_rows(server: Any, database: str) -> dict[str, int]:
    with _connect(server, database) as conn:
        return {
            t: int(conn.execute(f"select count(*) from {_q(t)}").fetchone()[0])
            for t in MOVED_TABLES
        }


# Columns that an "edit" changes: JSON where the table has one.
EDIT = {
    "uiSchemas": ("x-uid", "schema = jsonb_set(schema, '{title}', to_jsonb('edited ' || {k}))"),
    "fields": ("key", "options = jsonb_set(options, '{uiSchema,title}', '\"Edited\"')"),
    "desktopRoutes": ("id", 'options = options || \'{"documentTitle": "Edited"}\''),
    "collections": ("key", "options = options || '{\"logging\": false}'"),
    "roles": ("name", 'strategy = \'{"actions": ["view"]}\''),
    "workflows": ("id", "config = config || '{\"mode\": 2}'"),
    "flow_nodes": ("id", "config = config || '{\"edited\": true}'"),
    "uiSchemaTreePath": ("descendant", "sort = sort + 1000000"),
    "rolesResources": ("id", '"usingActionsConfig" = false'),
}


def change_source(server: Any, database: str, total: int) -> dict[str, int]:
    """~1% of rows edited (JSON where there is JSON), ~0.5% added, ~0.5% deleted."""
    made = {"update": 0, "insert": 0, "delete": 0}
    counts = table_counts(total)
    with _connect(server, database) as conn, conn.cursor() as cur:
        for table, (key, assignment) in EDIT.items():
            k = f"{_q(key)}::text"
            by_key = f"abs(hashtext({k} || 'bench')) % 200"
            cur.execute(f"delete from {_q(table)} where {by_key} = 1")
            made["delete"] += cur.rowcount
            cur.execute(
                f"update {_q(table)} set {assignment.replace('{k}', k)} where {by_key} in (2, 3)"
            )
            made["update"] += cur.rowcount
            extra = max(1, counts[table] // 200)
            cols, rows = generate_rows(table, extra, seed=2, prefix="new-", id_start=10_000_000)
            made["insert"] += copy_rows(conn, table, cols, rows)
        fix_sequences(conn)
        conn.commit()
    return made


# --------------------------------------------------------------------------
# scenarios (child processes)
# --------------------------------------------------------------------------


def _plan_counts(plan: Any) -> dict[str, int]:
    totals = dict(plan.totals)
    totals["changed"] = totals["insert"] + totals["update"] + totals["delete"]
    totals["source_rows"] = sum(t.insert + t.update + t.unchanged for t in plan.tables)
    totals["target_rows"] = sum(t.update + t.delete + t.unchanged + t.kept for t in plan.tables)
    return totals


def run_scenario(name: str) -> dict[str, Any]:
    """Runs inside the child. Prints nothing; the parent reads the returned JSON."""
    if name == "baseline":
        import controller.commands.migrate  # noqa: F401

        return {"seconds": 0.0, "peak_rss_mib": peak_rss_mib()}
    if name == "reference":
        return _reference()

    from controller.commands.migrate import MigrationRequest, migrate, plan_only
    from controller.commands.planning import PlanOptions

    source, target = os.environ[ENV_SOURCE], os.environ[ENV_TARGET]
    options = PlanOptions()
    out: dict[str, Any] = {}
    if name.endswith("plan"):
        t0 = time.perf_counter()
        prepared = plan_only(source, target, options)
        out["seconds"] = time.perf_counter() - t0
        out["plan"] = _plan_counts(prepared.plan)
        out["digest"] = prepared.plan.digest
        out["warnings"] = len(prepared.plan.warnings)
    else:
        t0 = time.perf_counter()
        result = migrate(MigrationRequest(source, target, options, migration_id=f"bench-{name}"))
        out["seconds"] = time.perf_counter() - t0
        out["status"] = result.status
        out["message"] = result.message
        if result.plan is not None:
            out["plan"] = _plan_counts(result.plan)
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def _reference() -> dict[str, Any]:
    """``pg_dump --data-only`` of the moved tables piped into ``psql`` (one transaction)."""
    from sqlalchemy.engine import make_url

    bin_dir = Path(os.environ[ENV_PGTOOLS])
    src, ref = make_url(os.environ[ENV_SOURCE]), make_url(os.environ[ENV_TARGET])
    env = {**os.environ, "PGPASSWORD": str(src.password or "")}
    conn = ["-h", str(src.host), "-p", str(src.port), "-U", str(src.username), "--no-password"]
    tables = [arg for t in MOVED_TABLES for arg in ("-t", _q(t))]
    dump_cmd = [
        str(bin_dir / "pg_dump"),
        *conn,
        "--data-only",
        "--strict-names",
        *tables,
        str(src.database),
    ]
    psql_cmd = [
        str(bin_dir / "psql"),
        *conn,
        "-q",
        "-X",
        "-v",
        "ON_ERROR_STOP=1",
        "--single-transaction",
        "-d",
        str(ref.database),
    ]
    t0 = time.perf_counter()
    dump = subprocess.Popen(dump_cmd, stdout=subprocess.PIPE, env=env)
    load = subprocess.run(
        psql_cmd, stdin=dump.stdout, env=env, stdout=subprocess.DEVNULL, check=False
    )
    assert dump.stdout is not None
    dump.stdout.close()
    dump_rc = dump.wait()
    seconds = time.perf_counter() - t0
    if dump_rc or load.returncode:
        raise RuntimeError(f"pg_dump exited {dump_rc}, psql exited {load.returncode}")
    return {
        "seconds": seconds,
        "peak_rss_mib": children_peak_rss_mib(),
        "rss_note": "largest of pg_dump and psql",
    }


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ["scenario", "rows", "seconds", "x ref", "rows/s", "peak RSS MiB"]
    body = [
        [
            r["scenario"],
            f"{r['rows']:,}" if r["rows"] is not None else "-",
            f"{r['seconds']:.2f}" if r["seconds"] else "-",
            f"{r['vs_ref']:.2f}" if r.get("vs_ref") else "-",
            f"{r['rows_per_s']:,.0f}" if r["rows_per_s"] else "-",
            f"{r['peak_rss_mib']:.0f}",
        ]
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    print(fmt_row(head, widths))
    print("  ".join("-" * w for w in widths))
    for cells in body:
        print(fmt_row(cells, widths))


def _row(scenario: str, rows: int | None, result: dict[str, Any], **extra: Any) -> dict[str, Any]:
    seconds = float(result["seconds"])
    return {
        "scenario": scenario,
        "rows": rows,
        "seconds": round(seconds, 3),
        "rows_per_s": round(rows / seconds, 1) if rows and seconds else None,
        "peak_rss_mib": round(float(result["peak_rss_mib"]), 1),
        **extra,
    }


def _expect(result: dict[str, Any], status: str, what: str) -> None:
    if result.get("status") != status:
        raise RuntimeError(f"{what}: expected {status}, got {result.get('status')}: {result}")


def bench_mariadb(
    total: int, step: Callable[[str, dict[str, str]], dict[str, Any]]
) -> list[dict[str, Any]]:
    """The 100k scenario MariaDB → MariaDB: full, incremental and no-op, in this run."""
    from bench import mariadb_data
    from tests.fixtures import nocobase_shape as shape
    from tests.harness.dbservers import get_mariadb, make_base_dir

    base = make_base_dir("bench-mariadb")
    server = get_mariadb(base)
    try:
        tag = secrets.token_hex(3)
        urls = {r: server.create_database(f"ferry_bench_{r}_{tag}") for r in ("src", "tgt")}
        for role, url in urls.items():
            shape.build(url, app="dev" if role == "src" else "prod")
        mariadb_data.empty_tables(urls["tgt"])
        written = sum(mariadb_data.fill_source(urls["src"], total).values())
        print(f"MariaDB setup: {written:,} generated rows", flush=True)
        env = {ENV_SOURCE: urls["src"], ENV_TARGET: urls["tgt"]}
        full = step("full-migrate", env)
        _expect(full, "succeeded", "MariaDB full promotion")
        made = mariadb_data.change_source(urls["src"], total)
        print(f"changed the MariaDB source: {made}", flush=True)
        incr = step("incremental-migrate", env)
        _expect(incr, "succeeded", "MariaDB incremental promotion")
        noop_plan = step("noop-plan", env)
        if noop_plan["plan"]["changed"]:
            raise RuntimeError(f"MariaDB no-op plan is not empty: {noop_plan['plan']}")
        return [
            _row("M2 MariaDB full promotion", int(full["plan"]["insert"]), full),
            _row("M3b MariaDB incremental promotion", int(incr["plan"]["changed"]), incr),
            _row("M4 MariaDB no-op re-plan", int(noop_plan["plan"]["source_rows"]), noop_plan),
        ]
    finally:
        for name in list(server.created_databases):
            try:
                server.drop_database(name)
            except Exception as err:
                print(f"could not drop {name}: {err}", file=sys.stderr)
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


def bench(total: int, keep: bool, mariadb: bool = False) -> dict[str, Any]:
    from tests.fixtures import nocobase_shape as shape
    from tests.harness.dbservers import get_postgres, make_base_dir

    base = make_base_dir("bench")
    server = get_postgres(base)
    try:
        pg_bin = server.bin_dir
        if pg_bin is None:
            raise RuntimeError("pg_dump/psql of the server's version not found")
        tag = secrets.token_hex(3)
        urls = {
            role: server.create_database(f"ferry_bench_{role}_{tag}")
            for role in ("src", "tgt", "ref")
        }
        names = {role: f"ferry_bench_{role}_{tag}" for role in urls}
        t0 = time.perf_counter()
        for role, url in urls.items():
            shape.build(url, app="dev" if role == "src" else "prod")
        empty_tables(server, names["tgt"])
        empty_tables(server, names["ref"])
        written = fill_source(server, names["src"], total)
        setup_s = time.perf_counter() - t0
        print(
            f"setup: {sum(written.values()):,} generated rows in {setup_s:.1f}s "
            f"({', '.join(f'{k} {v:,}' for k, v in written.items())})",
            flush=True,
        )
        with _connect(server, names["src"]) as conn:
            avg = conn.execute(
                "select avg(octet_length(schema::text)), min(octet_length(schema::text)), "
                'max(octet_length(schema::text)) from "uiSchemas"'
            ).fetchone()
        env = {ENV_SOURCE: urls["src"], ENV_TARGET: urls["tgt"], ENV_PGTOOLS: str(pg_bin)}

        def step(name: str, environ: dict[str, str] = env) -> dict[str, Any]:
            print(f"running {name} ...", flush=True)
            result = in_child(__file__, name, environ)
            print(f"  {result['seconds']:.2f}s, peak RSS {result['peak_rss_mib']:.0f} MiB")
            return result

        baseline = step("baseline")
        plan_empty = step("empty-plan")
        full = step("full-migrate")
        _expect(full, "succeeded", "full promotion")
        reference = step("reference", {**env, ENV_TARGET: urls["ref"]})
        copied = {role: count_rows(server, names[role]) for role in ("tgt", "ref")}
        if copied["tgt"] != copied["ref"]:
            raise RuntimeError(f"Ferry and pg_dump|psql copied different rows: {copied}")
        made = change_source(server, names["src"], total)
        print(f"changed the source: {made}", flush=True)
        incr_plan = step("incremental-plan")
        incr = step("incremental-migrate")
        _expect(incr, "succeeded", "incremental promotion")
        noop_plan = step("noop-plan")
        noop = step("noop-migrate")
        _expect(noop, "noop", "no-op promotion")
        if noop_plan["plan"]["changed"]:
            raise RuntimeError(f"no-op plan is not empty: {noop_plan['plan']}")

        src_rows = int(plan_empty["plan"]["source_rows"])
        inserted = int(full["plan"]["insert"])
        changed = int(incr["plan"]["changed"])
        scanned = int(noop_plan["plan"]["source_rows"])
        rows = [
            _row("baseline: import controller", None, baseline),
            _row("1 plan into empty target", src_rows, plan_empty, plan=plan_empty["plan"]),
            _row("2 full promotion (insert all)", inserted, full, plan=full["plan"]),
            _row("   ref: pg_dump | psql", inserted, reference),
            _row("3a incremental plan", changed, incr_plan, plan=incr_plan["plan"]),
            _row("3b incremental promotion", changed, incr, plan=incr["plan"]),
            _row("4 no-op re-plan", scanned, noop_plan, plan=noop_plan["plan"]),
            _row("4b no-op promotion", scanned, noop, plan=noop["plan"]),
        ]
        if mariadb:
            rows += bench_mariadb(total, step)
        for r in rows:  # every time as a ratio to pg_dump | psql of this run
            r["vs_ref"] = round(r["seconds"] / reference["seconds"], 3) if r["seconds"] else None
        ratio = full["seconds"] / reference["seconds"]
        report: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "requested_rows": total,
            "generated_rows": written,
            "setup_seconds": round(setup_s, 1),
            "source_changes_made": made,
            "ui_schema_json_bytes": {
                "avg": round(float(avg[0])),
                "min": int(avg[1]),
                "max": int(avg[2]),
            },
            "machine": {
                "cpu_count": os.cpu_count(),
                "sched_affinity": len(os.sched_getaffinity(0)),
                "platform": platform.platform(),
                "python": platform.python_version(),
                "postgresql": server.version or server.server_version(),
            },
            "scenarios": rows,
            "full_vs_pg_dump_psql_ratio": round(ratio, 2),
            "ratios_to_pg_dump_psql": {
                "full promotion": round(ratio, 2),
                "incremental promotion": round(incr["seconds"] / reference["seconds"], 2),
                "no-op re-plan": round(noop_plan["seconds"] / reference["seconds"], 2),
            },
            "notes": [
                "rows: scenario 1/2 = source rows, 3 = changed rows (insert+update+delete), "
                "4 = source rows scanned (the target is scanned as well)",
                "3a/3b rows/s counts changed rows only, but both also scan every row of "
                "both sides: cost = linear scan + per changed row",
                "peak RSS is each child process's own ru_maxrss; PostgreSQL server memory "
                "is not included; the reference row shows the larger of pg_dump and psql",
                "the pg_dump|psql ratio is context, not a like-for-like comparison: Ferry "
                "also indexes and diffs both sides, checks every written row against the "
                "plan, re-reads the target to verify, and records a ledger row",
            ],
        }
        print()
        print_table(rows)
        print()
        for what, value in report["ratios_to_pg_dump_psql"].items():
            print(f"{what} / (pg_dump --data-only | psql) = {value:.2f}x")
        m = report["machine"]
        print(
            f"machine: {m['cpu_count']} CPUs ({m['sched_affinity']} usable), "
            f"{m['platform']}, Python {m['python']}"
        )
        print(f"PostgreSQL: {m['postgresql']}")
        ui = report["ui_schema_json_bytes"]
        print(f"uiSchemas.schema JSON: avg {ui['avg']} B (min {ui['min']}, max {ui['max']})")
        if keep:
            print("kept databases (--keep): " + ", ".join(names.values()))
            print(f"server: {server.host}:{server.port}, data in {base}")
            if not server.external:
                print("the server stops when this script exits; the data directory is kept")
        return report
    finally:
        if keep:
            server.created_databases.clear()  # an external server keeps them too
        else:
            for name in list(server.created_databases):
                try:
                    server.drop_database(name)
                except Exception as err:
                    print(f"could not drop {name}: {err}", file=sys.stderr)
        server.stop()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows to generate")
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases and the data directory"
    )
    parser.add_argument(
        "--mariadb", action="store_true", help="also run the scenario MariaDB -> MariaDB"
    )
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(scenario_result(args.scenario, run_scenario)))
        return
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    report = bench(args.rows, args.keep, args.mariadb)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "migration.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
