"""Benchmark of backups and restores: Ferry against PostgreSQL's own dump tools.

    .venv/bin/python bench/backup_bench.py [--size-gb 1] [--small-gb 0.25] [--encrypt] [--keep]

The parent process starts a throwaway PostgreSQL (``tests.harness.dbservers``), and for
each size generates a database of that many bytes on disk with ``generate_series``
(accounts, documents, events, attachments: bigint ids, text, varchar, jsonb, json,
timestamptz, timestamp, date, numeric, double precision, boolean, bytea, with NULLs and
text holding tabs, newlines, backslashes and non-ASCII characters). It then times:

- ``pg_dump -Fc`` of the database to a file, against Ferry's ``create_backup`` into a
  ``FilesystemStore``;
- ``pg_restore --single-transaction`` of that file into an empty database, against
  Ferry's ``restore`` into an empty database.

Each operation runs in a fresh child process (this script with ``--scenario``), so the
peak RSS reported is that operation's own (for the PostgreSQL tools: the tool's).
Both restored databases are compared with the source table by table (row count and a
hash of every row's text), so a fast but wrong restore fails the benchmark.
``--paths generic,fast`` also measures Ferry's generic SQLAlchemy path (the fast
PostgreSQL path switched off) in the same run, ``--paths text,fast`` the fast path with
binary COPY off beside it; restores run ``--repeat`` rounds (default 3), pg_restore and
each path alternating, and medians are compared; ``--encrypt`` also measures each path
with an encrypting store keyring (format 3), for the overhead of encryption. See
bench/README.md.

Top-level imports are standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import time
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
ENV_URL = "FERRY_BENCH_URL"
ENV_STORE = "FERRY_BENCH_STORE"
ENV_BACKUP = "FERRY_BENCH_BACKUP_ID"
ENV_FILE = "FERRY_BENCH_DUMP_FILE"
ENV_PATH = "FERRY_BENCH_PATH"
ENV_TOOL = "FERRY_BENCH_TOOL"
ENV_KEY = "FERRY_BENCH_KEY_FILE"
GIB = 1 << 30
# Bytes on disk (heap, TOAST and indexes) per generated document with its share of
# accounts, events and attachments; measured, and only used to size the generation.
BYTES_PER_DOCUMENT = 1150
EMPTY_DATABASE_BYTES = 7_600_000
PATHS = ("generic", "text", "fast")  # text: the fast path with binary COPY off

SCHEMA = """
create table accounts (
    id bigint primary key,
    email varchar(255) not null,
    name text,
    settings jsonb,
    balance numeric(14, 2),
    active boolean not null,
    created_at timestamptz not null
);
create table documents (
    id bigserial primary key,
    account_id bigint not null,
    title varchar(200),
    body text,
    meta jsonb,
    score double precision,
    price numeric(12, 4),
    published boolean,
    created_at timestamptz,
    updated_at timestamp,
    due date
);
create table events (
    id bigint primary key,
    document_id bigint not null,
    kind varchar(32) not null,
    payload json,
    at timestamptz not null,
    amount numeric,
    ok boolean
);
create table attachments (
    id bigint primary key,
    document_id bigint not null,
    filename varchar(255) not null,
    content bytea,
    uploaded_at timestamptz
);
"""

# {n}: documents. Text mixes words, hex (md5) and, in some rows, tabs, newlines,
# backslashes and non-ASCII characters, so both sides escape and compress real work.
FILL = [
    """
insert into accounts
select i,
       'user' || i || '@example.org',
       case when i % 13 = 0 then null else 'Account ' || md5(i::text) end,
       jsonb_build_object('theme', (array['light','dark','auto'])[1 + (i % 3)::int],
                          'locale', 'de-DE', 'limits', jsonb_build_array(i % 100, i % 7),
                          'token', md5((i * 31)::text)),
       (i % 100000) / 100.0 - 250,
       i % 5 <> 0,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '37 seconds'
from generate_series(1::bigint, greatest(1, {n} / 20)) as i
""",
    """
insert into documents
select i,
       1 + i % greatest(1, {n} / 20),
       case when i % 11 = 0 then null else 'Document ' || i || ' ' || left(md5(i::text), 12) end,
       case when i % 17 = 0 then null
            when i % 97 = 0 then E'tab\\there\\nnew line \\\\ back «ünïcødé» ' || md5(i::text)
            else repeat('lorem ipsum dolor sit amet ', (1 + i % 6)::int) || md5(i::text) || ' '
                 || md5((i * 7)::text) || ' ' || md5((i * 13)::text) end,
       jsonb_build_object('tags', jsonb_build_array('t' || i % 10, 'k' || i % 7),
                          'rev', i % 40, 'ratio', round((i % 1000) / 7.0, 5),
                          'author', jsonb_build_object('id', i % 5000, 'sig', md5(i::text)),
                          'text', 'line1' || chr(10) || 'quote " and \\ backslash'),
       case when i % 19 = 0 then null else (i % 100003) / 3.0e2 end,
       case when i % 23 = 0 then null else ((i * 7919) % 10000000) / 10000.0 end,
       case when i % 29 = 0 then null else i % 2 = 0 end,
       timestamptz '2023-06-01 12:00:00.123456+00' + i * interval '1.5 seconds',
       timestamp '2023-06-01 12:00:00' + i * interval '2.25 seconds',
       date '2020-01-01' + (i % 3000)::int
from generate_series(1::bigint, {n}) as i
""",
    """
insert into events
select i,
       1 + (i * 48271) % {n},
       (array['view','edit','share','comment','export'])[1 + (i % 5)::int],
       json_build_object('ip', '10.' || i % 256 || '.' || (i / 256) % 256 || '.1',
                         'agent', 'Mozilla/5.0 ' || md5(i::text),
                         'n', i, 'ok', i % 3 = 0)::json,
       timestamptz '2024-03-01 00:00:00+00' + i * interval '250 milliseconds',
       case when i % 7 = 0 then null else (i % 1000003) / 1000.0 end,
       case when i % 31 = 0 then null else i % 4 = 0 end
from generate_series(1::bigint, {n} * 2) as i
""",
    """
insert into attachments
select i,
       i * 5,
       'file-' || i || '.bin',
       case when i % 9 = 0 then null
            else decode(repeat(md5(i::text) || md5((i * 3)::text) || md5((i * 5)::text)
                               || md5((i * 7)::text), (1 + i % 8)::int), 'hex') end,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '17 seconds'
from generate_series(1::bigint, greatest(1, {n} / 5)) as i
""",
]
INDEXES = """
create index documents_account on documents (account_id);
create index events_document on events (document_id);
create index events_at on events (at);
create unique index attachments_filename on attachments (filename);
select setval(pg_get_serial_sequence('documents', 'id'), {n});
"""
TABLES = ("accounts", "attachments", "documents", "events")


# --------------------------------------------------------------------------
# scenarios (child processes)
# --------------------------------------------------------------------------


def _select_path() -> str:
    """Switch Ferry's fast PostgreSQL path on or off for this child."""
    path = os.environ.get(ENV_PATH, "fast")
    try:
        from controller.db import pg_fast
    except ImportError:
        return "generic"
    pg_fast.ENABLED = path in ("fast", "text")
    pg_fast.BINARY = path == "fast"
    return path if pg_fast.available() else "generic"


def run_scenario(name: str) -> dict[str, Any]:
    """Runs inside the child; the parent reads the returned JSON."""
    if name == "pg-tool":
        return _pg_tool()
    from controller.backups.keyring import load_keyring_file
    from controller.backups.store import FilesystemStore
    from controller.commands.backup import create_backup, restore

    path = _select_path()
    key_file = os.environ.get(ENV_KEY)
    keyring = load_keyring_file(key_file) if key_file else None
    store = FilesystemStore(Path(os.environ[ENV_STORE]), keyring)
    url = os.environ[ENV_URL]
    out: dict[str, Any] = {"path": path}
    if name == "ferry-backup":
        t0 = time.perf_counter()
        manifest, _ = create_backup(url, store, environment="bench")
        out["seconds"] = time.perf_counter() - t0
        out.update(backup_id=manifest.id, rows=manifest.rows, bytes=_stored_bytes(store, manifest))
    elif name == "ferry-restore":
        t0 = time.perf_counter()
        result = restore(store, os.environ[ENV_BACKUP], url)
        out["seconds"] = time.perf_counter() - t0
        out["rows"] = result.rows
    elif name == "ferry-cipher":
        out.update(_cipher_alone(store, os.environ[ENV_BACKUP]))
    else:
        raise ValueError(name)
    out["peak_rss_mib"] = peak_rss_mib()
    return out


def _cipher_alone(store: Any, backup_id: str) -> dict[str, Any]:
    """The cryptography alone, without a database: decrypt every member of an encrypted
    backup (chunk by chunk authenticated, as a restore reads it) and encrypt it again,
    streaming, into nothing. Restore decrypts each member twice (checksum pass, then
    decode), backup encrypts once."""
    from controller.backups.archive import _open

    class _Null:
        def write(self, data: bytes) -> int:
            return len(data)

        def flush(self) -> None:
            pass

    manifest = store.manifest(backup_id)
    cipher = manifest.encryption.cipher
    decrypt = encrypt = 0.0
    plain = 0
    for member in manifest.members:
        writer = cipher.writer(_Null(), member.key)  # type: ignore[arg-type]
        with _open(store, manifest, member) as f:
            while True:
                t0 = time.perf_counter()
                data = f.read(1 << 20)
                t1 = time.perf_counter()
                decrypt += t1 - t0
                if not data:
                    break
                plain += len(data)
                writer.write(data)
                encrypt += time.perf_counter() - t1
        t0 = time.perf_counter()
        writer.finish()
        encrypt += time.perf_counter() - t0
    return {"seconds": decrypt + encrypt, "decrypt": decrypt, "encrypt": encrypt, "bytes": plain}


def _stored_bytes(store: Any, manifest: Any) -> int:
    """The archive's size on disk (encrypted members are a little larger than the
    Arrow streams the manifest's ``bytes`` counts)."""
    return sum(p.stat().st_size for p in Path(store.location(manifest)).rglob("*") if p.is_file())


def _key_file(base: Path) -> Path:
    import base64

    path = base / "bench-keyring.json"
    key = base64.b64encode(os.urandom(32)).decode()
    path.write_text(json.dumps({"current": "bench", "encrypt": True, "keys": {"bench": key}}))
    return path


def _pg_tool() -> dict[str, Any]:
    """Run one PostgreSQL client tool (argv in JSON) and report its time and RSS."""
    cmd = json.loads(os.environ[ENV_TOOL])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise RuntimeError(f"{Path(cmd[0]).name} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return {"seconds": seconds, "peak_rss_mib": children_peak_rss_mib()}


# --------------------------------------------------------------------------
# parent: data, tools, checks
# --------------------------------------------------------------------------


def _connect(server: Any, database: str, autocommit: bool = False) -> Any:
    import psycopg

    return psycopg.connect(
        host=server.host,
        port=server.port,
        user=server.user,
        password=server.password,
        dbname=database,
        autocommit=autocommit,
    )


def generate(server: Any, database: str, size_bytes: int) -> dict[str, Any]:
    documents = max(1000, (size_bytes - EMPTY_DATABASE_BYTES) // BYTES_PER_DOCUMENT)
    t0 = time.perf_counter()
    with _connect(server, database) as conn:
        conn.execute(SCHEMA)
        for sql in FILL:
            conn.execute(sql.format(n=documents))
        conn.execute(INDEXES.format(n=documents))
        conn.commit()
    with _connect(server, database, autocommit=True) as conn:
        # Hint bits and visibility map set before anyone reads: both sides see the same.
        conn.execute("vacuum (freeze, analyze)")
        size = int(conn.execute("select pg_database_size(current_database())").fetchone()[0])
        tables = {
            t: {
                "rows": int(conn.execute(f"select count(*) from {t}").fetchone()[0]),
                "bytes": int(conn.execute(f"select pg_total_relation_size('{t}')").fetchone()[0]),
            }
            for t in TABLES
        }
    return {
        "documents": documents,
        "database_bytes": size,
        "tables": tables,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def fingerprint(server: Any, database: str) -> dict[str, list[Any]]:
    """Per table: row count and an order-independent hash of every row's text."""
    with _connect(server, database) as conn:
        return {
            t: list(
                conn.execute(
                    f"select count(*), coalesce(sum(hashtextextended(x::text, 7)), 0)::text "
                    f"from {t} x"
                ).fetchone()
            )
            for t in TABLES
        }


def _tool_env(server: Any) -> dict[str, str]:
    return {"PGPASSWORD": server.password}


def _conn_args(server: Any) -> list[str]:
    return ["-h", server.host, "-p", str(server.port), "-U", server.user, "--no-password"]


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ["size", "operation", "seconds", "ratio", "archive MiB", "peak RSS MiB"]
    body = [
        [
            r["size"],
            r["operation"],
            f"{r['seconds']:.1f}",
            f"{r['ratio']:.2f}" if r.get("ratio") is not None else "",
            f"{r['archive_bytes'] / 2**20:,.0f}" if r.get("archive_bytes") else "",
            f"{r['peak_rss_mib']:.0f}",
        ]
        for r in rows
    ]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    print(fmt_row(head, widths))
    print("  ".join("-" * w for w in widths))
    for cells in body:
        print(fmt_row(cells, widths))


class _Run:
    """One size's measurements: rows of the table, and the source's fingerprint."""

    def __init__(self, server: Any, base: Path, label: str, keep: bool, repeat: int) -> None:
        self.server, self.base, self.label, self.keep, self.repeat = (
            server,
            base,
            label,
            keep,
            repeat,
        )
        self.tag = f"{label}_{secrets.token_hex(3)}"
        self.src = f"bb_src_{self.tag}"
        self.rows: list[dict[str, Any]] = []
        self.expected: dict[str, list[Any]] = {}
        self.env = _tool_env(server)

    def record(self, operation: str, results: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        """The median of ``results`` (one per repetition), with every time kept."""
        times = sorted(float(r["seconds"]) for r in results)
        row = {
            "size": self.label,
            "operation": operation,
            "seconds": round(statistics.median(times), 2),
            "runs": [round(t, 2) for t in times],
            "peak_rss_mib": round(max(float(r["peak_rss_mib"]) for r in results), 1),
            **extra,
        }
        self.rows.append(row)
        runs = ", ".join(f"{t:.1f}" for t in times)
        print(f"  {operation}: median {row['seconds']:.1f}s ({runs}), "
              f"peak RSS {row['peak_rss_mib']:.0f} MiB")  # fmt: skip
        return row

    def check(self, database: str, what: str) -> None:
        got = fingerprint(self.server, database)
        if got != self.expected:
            raise RuntimeError(f"{what} differs from the source: {got} != {self.expected}")
        if not self.keep:
            self.server.drop_database(database)

    def pg_restore(self, dump_file: Path, round_: int) -> dict[str, Any]:
        dst = f"bb_pgr{round_}_{self.tag}"
        self.server.create_database(dst)
        cmd = [
            str(self.server.tool("pg_restore")),
            *_conn_args(self.server),
            "--exit-on-error",
            "--single-transaction",
            "-d",
            dst,
            str(dump_file),
        ]
        result = in_child(__file__, "pg-tool", {**self.env, ENV_TOOL: json.dumps(cmd)})
        self.check(dst, "pg_restore's copy")
        return result

    def ferry_restore(self, name: str, env: dict[str, str], round_: int) -> dict[str, Any]:
        dst = f"bb_fr{round_}_{name.replace(', ', '_')}_{self.tag}"
        self.server.create_database(dst)
        result = in_child(__file__, "ferry-restore", {**env, ENV_URL: self.server.url(dst)})
        if result["path"] != env[ENV_PATH]:
            raise RuntimeError(f"asked for the {env[ENV_PATH]} path, Ferry ran {result['path']}")
        self.check(dst, f"Ferry's restore ({name})")
        return result

    def ferry_backup(self, path: str, encrypted: bool) -> tuple[str, dict[str, str]]:
        name = f"{path}, encrypted" if encrypted else path
        store = self.base / f"store-{self.tag}-{path}-{int(encrypted)}"
        env = {ENV_STORE: str(store), ENV_PATH: path, ENV_URL: self.server.url(self.src)}
        if encrypted:
            env[ENV_KEY] = str(_key_file(self.base))
        print(f"[{self.label}] ferry backup ({name}) ...", flush=True)
        result = in_child(__file__, "ferry-backup", env)
        if result["path"] != path:
            raise RuntimeError(f"asked for the {path} path, Ferry ran {result['path']}")
        pg_dump = self.rows[0]
        self.record(
            f"ferry backup ({name})",
            [result],
            ratio=round(result["seconds"] / pg_dump["seconds"], 2),
            archive_bytes=result["bytes"],
            rows=result["rows"],
        )
        if encrypted:
            alone = in_child(__file__, "ferry-cipher", {**env, ENV_BACKUP: result["backup_id"]})
            mib_s = alone["bytes"] / 2**20
            print(
                f"  AES-256-GCM alone: encrypt {alone['encrypt']:.2f}s "
                f"({mib_s / alone['encrypt']:,.0f} MiB/s), decrypt {alone['decrypt']:.2f}s "
                f"({mib_s / alone['decrypt']:,.0f} MiB/s) for {mib_s:,.0f} MiB"
            )
            self.record(f"cipher alone ({name})", [alone], archive_bytes=alone["bytes"])
        return name, {**env, ENV_BACKUP: result["backup_id"]}

    def restores(self, dump_file: Path, ferry: list[tuple[str, dict[str, str]]]) -> None:
        """``repeat`` rounds of pg_restore and each Ferry restore, alternating, so that
        a change of load on the machine falls on both; medians are compared."""
        tool: list[dict[str, Any]] = []
        mine: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in ferry}
        for round_ in range(self.repeat):
            print(f"[{self.label}] restores, round {round_ + 1}/{self.repeat} ...", flush=True)
            tool.append(self.pg_restore(dump_file, round_))
            for name, env in ferry:
                mine[name].append(self.ferry_restore(name, env, round_))
        pg_restore = self.record("pg_restore", tool)
        for name, results in mine.items():
            seconds = statistics.median(float(r["seconds"]) for r in results)
            self.record(
                f"ferry restore ({name})",
                results,
                ratio=round(seconds / pg_restore["seconds"], 2),
                rows=results[0]["rows"],
            )


def bench_size(
    server: Any,
    base: Path,
    label: str,
    size_gb: float,
    variants: list[tuple[str, bool]],
    keep: bool,
    repeat: int = 3,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    run = _Run(server, base, label, keep, repeat)
    server.create_database(run.src)
    print(f"[{label}] generating about {size_gb:g} GiB ...", flush=True)
    data = generate(server, run.src, int(size_gb * GIB))
    print(
        f"[{label}] {data['database_bytes'] / 2**20:,.0f} MiB on disk, "
        + ", ".join(f"{t} {v['rows']:,}" for t, v in data["tables"].items())
        + f" rows, in {data['seconds']:.0f}s",
        flush=True,
    )
    run.expected = fingerprint(server, run.src)
    dump_file = base / f"{run.tag}.dump"
    print(f"[{label}] pg_dump -Fc ...", flush=True)
    cmd = [str(server.tool("pg_dump")), *_conn_args(server), "-Fc", "-f", str(dump_file), run.src]
    run.record(
        "pg_dump -Fc",
        [in_child(__file__, "pg-tool", {**run.env, ENV_TOOL: json.dumps(cmd)})],
        archive_bytes=dump_file.stat().st_size,
    )
    ferry = [run.ferry_backup(path, encrypted) for path, encrypted in variants]
    run.restores(dump_file, ferry)
    if not keep:
        dump_file.unlink()
        for _, env in ferry:
            shutil.rmtree(env[ENV_STORE], ignore_errors=True)
        server.drop_database(run.src)
    return {"label": label, "requested_gib": size_gb, **data}, run.rows


def bench(
    sizes: list[tuple[str, float]], variants: list[tuple[str, bool]], keep: bool, repeat: int
) -> dict[str, Any]:
    from tests.harness.dbservers import make_base_dir, start_postgres

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    base = make_base_dir("bench")
    server = start_postgres(base)
    try:
        datasets, rows = [], []
        for label, size_gb in sizes:
            data, size_rows = bench_size(server, base, label, size_gb, variants, keep, repeat)
            datasets.append(data)
            rows += size_rows
        report: dict[str, Any] = {
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpu_count": os.cpu_count(),
                "sched_affinity": len(os.sched_getaffinity(0)),
                "load_average_at_start": load_at_start,
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                "platform": platform.platform(),
                "python": platform.python_version(),
                "postgresql": server.version or server.server_version(),
            },
            "datasets": datasets,
            "results": rows,
            "notes": [
                "ratio: Ferry's time / the PostgreSQL tool's time on the same data "
                "(backup vs pg_dump -Fc, restore vs pg_restore --single-transaction)",
                "times are of the operation alone (interpreter start and imports excluded "
                "for Ferry; the tool's whole run for pg_dump/pg_restore)",
                "peak RSS is the child's own ru_maxrss (Ferry) or the tool's (pg_*); the "
                "server's memory is not included",
                "Ferry's restore includes proving every member (checksum, decode, rows; "
                "on PostgreSQL beside the writes, before the commit); no safety backup "
                "is taken (the target is empty)",
                "restores: the median of --repeat rounds, pg_restore and each Ferry path "
                "alternating; every time is in 'runs'",
            ],
        }
        print()
        print_table(rows)
        m = report["machine"]
        print(
            f"\nmachine: {m['cpu_count']} CPUs ({m['sched_affinity']} usable, shared), "
            f"{m['platform']}, Python {m['python']}\nPostgreSQL: {m['postgresql']}\n"
            f"load average at start {m['load_average_at_start']}, "
            f"at end {m['load_average_at_end']}"
        )
        if keep:
            print(f"kept (--keep): databases {sorted(server.created_databases)}, files in {base}")
            print("the server stops when this script exits; the data directory is kept")
        return report
    finally:
        server.stop()
        if not keep:
            shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gb", type=float, default=1.0, help="large database, GiB on disk")
    parser.add_argument(
        "--small-gb", type=float, default=0.25, help="small database, GiB on disk (0: none)"
    )
    parser.add_argument(
        "--paths",
        default="fast",
        help="Ferry code paths to measure, comma-separated: generic, text, fast (default: fast)",
    )
    parser.add_argument(
        "--encrypt",
        action="store_true",
        help="also measure each path with an encrypting store keyring (format 3)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="rounds of restores (pg_restore and Ferry alternating); medians are compared",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the databases, archives and data directory"
    )
    parser.add_argument("--out", default=str(OUT / "backup.json"), help=argparse.SUPPRESS)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(scenario_result(args.scenario, run_scenario)))
        return
    paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not paths or set(paths) - set(PATHS):
        parser.error(f"--paths takes {', '.join(PATHS)}")
    sizes = [("small", args.small_gb)] if args.small_gb > 0 else []
    sizes.append(("large", args.size_gb))
    variants = [(p, e) for p in paths for e in ((False, True) if args.encrypt else (False,))]
    report = bench(sizes, variants, args.keep, max(1, args.repeat))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
