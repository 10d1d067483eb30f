"""Restores in binary COPY (``controller/db/pg_binary.py``) write exactly what text COPY
writes: on generated values of every type an archive holds, through a real backup and
two restores (binary on and off), and for values only text COPY can parse."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest
import sqlalchemy as sa
from hypothesis import example, given
from hypothesis import strategies as st

from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup, restore
from controller.db import pg_binary, pg_fast
from controller.engine.model import Column, ColumnType, Kind, TableSchema
from controller.errors import PermanentError
from tests.db.dbhelpers import DB_EXAMPLES, execute

MakeDb = Callable[..., str]

COLUMNS = (
    ("i2", "smallint"),
    ("i4", "integer"),
    ("i8", "bigint"),
    ("flag", "boolean"),
    ("f8", "double precision"),
    ("amount", "numeric(14, 2)"),
    ("big", "numeric"),
    ("body", "text"),
    ("code", "varchar(12)"),
    ("tag", "char(3)"),
    ("raw", "json"),
    ("doc", "jsonb"),
    ("at", "timestamptz"),
    ("at3", "timestamptz(3)"),
    ("naive", "timestamp"),
    ("day", "date"),
    ("clock", "time"),
    ("blob", "bytea"),
)
CREATE = (
    "DROP TABLE IF EXISTS kinds",
    "CREATE TABLE kinds (id integer primary key, "
    + ", ".join(f"{name} {sql}" for name, sql in COLUMNS)
    + ", unique (code, id))",
    "CREATE INDEX kinds_day ON kinds (day)",
)

_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | _text
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
).map(psycopg.types.json.Json)
_instant = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.just(dt.UTC)
)


def _nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


ROW = st.tuples(
    _nullable(st.integers(-(2**15), 2**15 - 1)),
    _nullable(st.integers(-(2**31), 2**31 - 1)),
    _nullable(st.integers(-(2**63), 2**63 - 1)),
    _nullable(st.booleans()),
    _nullable(st.floats(allow_nan=True, allow_infinity=True)),
    _nullable(st.decimals(min_value=-(10**12) + 1, max_value=10**12 - 1, places=2)),
    _nullable(
        st.decimals(min_value=-(10**40), max_value=10**40)
        | st.sampled_from([Decimal("NaN"), Decimal("0.000"), Decimal("-0.0"), Decimal("1E+40")])
    ),
    _nullable(_text),
    _nullable(_text.filter(lambda s: len(s) <= 12)),
    _nullable(_text.filter(lambda s: len(s) <= 3)),
    _nullable(_json),
    _nullable(_json),
    _nullable(_instant),
    _nullable(_instant),
    _nullable(_instant.map(lambda v: v.replace(tzinfo=None))),
    _nullable(st.dates()),
    _nullable(st.times()),
    _nullable(st.binary(max_size=64)),
)


def _insert(url: str, rows: list[tuple[Any, ...]]) -> None:
    execute(url, *CREATE)
    names = ", ".join(name for name, _ in COLUMNS)
    marks = ", ".join(["%s"] * (len(COLUMNS) + 1))
    plain = url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(plain) as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO kinds (id, {names}) VALUES ({marks})",
            [(i, *row) for i, row in enumerate(rows)],
        )


def _as_text(url: str, table: str = "kinds") -> list[str]:
    """Every row as PostgreSQL's own text (exact: NaN, -0, scales, bytes, zones)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET TIME ZONE 'UTC'")
            return sorted(
                str(r[0]) for r in conn.exec_driver_sql(f"SELECT t::text FROM {table} t").all()
            )
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def fast_backups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Archives written by the fast path (Arrow types of the database's own), however
    small these databases are: what the binary restore is built for."""
    monkeypatch.setattr(pg_fast, "SMALL_BYTES", 0)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Counts the slices sent in binary and as text."""
    counts = {"binary": 0, "text": 0}
    tuples, text = pg_binary.tuples, pg_fast.copy_text

    def counted_tuples(*args: Any) -> Any:
        out = tuples(*args)
        counts["binary"] += out is not None
        return out

    def counted_text(*args: Any) -> Any:
        counts["text"] += 1
        return text(*args)

    monkeypatch.setattr(pg_binary, "tuples", counted_tuples)
    monkeypatch.setattr(pg_fast, "copy_text", counted_text)
    yield counts


TINY = [Decimal("1E-7"), Decimal("0E-10"), Decimal("-2.5E-12"), Decimal("1E+40")]


@pytest.mark.parametrize("small", [False, True], ids=["fast-backup", "small-backup"])
@DB_EXAMPLES
@given(rows=st.lists(ROW, min_size=1, max_size=12))
@example(rows=[(None,) * 6 + (tiny,) + (None,) * 11 for tiny in TINY])
def test_binary_restore_writes_what_text_restore_writes(
    small: bool,
    rows: list[tuple[Any, ...]],
    make_database: MakeDb,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    sent: dict[str, int],
) -> None:
    """``small``: a database under ``SMALL_BYTES`` is backed up on the generic path (one
    connection, no ADBC); its archive holds the same texts (numerics as PostgreSQL
    prints them, not ``1E-7`` or ``0E-10``), so its restore travels in binary as well."""
    if small:
        monkeypatch.setattr(pg_fast, "SMALL_BYTES", 1 << 30)
    sent.update(binary=0, text=0)
    monkeypatch.setattr(pg_fast, "BINARY", True)
    src = make_database("postgresql", "src")
    binary, text = make_database("postgresql", "bin"), make_database("postgresql", "txt")
    _insert(src, rows)
    store = FilesystemStore(tmp_path_factory.mktemp("store"))
    manifest, _ = create_backup(src, store, environment="e")
    restore(store, manifest.id, binary)
    assert sent == {"binary": 1, "text": 0}  # every type here travels in binary
    monkeypatch.setattr(pg_fast, "BINARY", False)
    restore(store, manifest.id, text)
    assert sent == {"binary": 1, "text": 1}
    expected = _as_text(src)
    assert _as_text(binary) == expected
    assert _as_text(text) == expected


NUMERIC_TEXTS = [
    "1.50", "-0.0001", "0", "-0.000", "NaN", "Infinity", "-Infinity", "00012.3400",
    "99999999999999999999999999999.99999999999999999", "1" + "0" * 200 + ".5",
    "+1.5", " 2", "1e3", ".5", "5.", "12",
]  # fmt: skip


def _numeric_table(name: str) -> TableSchema:
    return TableSchema(
        name=name,
        columns=(
            Column("id", ColumnType(Kind.BIGINT, native="BIGINT")),
            Column("n", ColumnType(Kind.DECIMAL, native="NUMERIC")),
        ),
    )


def _copy(url: str, table: TableSchema, texts: list[str | None], binary: bool) -> None:
    engine = sa.create_engine(url)
    batch = pa.record_batch(
        [pa.array(range(len(texts)), pa.int64()), pa.array(texts, pa.large_string())],
        names=["id", "n"],
    )
    old = pg_fast.BINARY
    pg_fast.BINARY = binary
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE {table.name} (id bigint, n numeric)")
            types = pg_fast.column_types(conn, table)
            assert types == ["int8", "numeric"]
            pg_fast.copy_rows(conn, table, iter([batch]), types)
    finally:
        pg_fast.BINARY = old
        engine.dispose()


def test_slices_switch_between_binary_and_text(
    make_database: MakeDb, monkeypatch: pytest.MonkeyPatch, sent: dict[str, int]
) -> None:
    """A value only text COPY parses (``+1.5``, ``1e3``) sends its slice as text; the
    slices around it stay binary, in the same table and transaction."""
    url = make_database("postgresql", "mixed")
    monkeypatch.setattr(pg_fast, "WRITE_SLICE_BYTES", 1)  # 256 rows a slice
    texts: list[str | None] = [NUMERIC_TEXTS[i % 9] for i in range(256 * 5)]
    texts[256 * 2 + 7] = "+1.5"
    texts[256 * 2 + 8] = None
    texts[256 * 4] = "1e3"
    _copy(url, _numeric_table("b"), texts, binary=True)
    assert sent == {"binary": 3, "text": 2}
    _copy(url, _numeric_table("t"), texts, binary=False)
    assert _as_text(url, "b") == _as_text(url, "t")
    assert len(_as_text(url, "b")) == 256 * 5


@pytest.mark.parametrize("value", NUMERIC_TEXTS)
def test_each_numeric_text_restores_as_text_copy_parses_it(
    value: str, make_database: MakeDb
) -> None:
    url = make_database("postgresql", "num")
    _copy(url, _numeric_table("b"), [value, None, value], binary=True)
    _copy(url, _numeric_table("t"), [value, None, value], binary=False)
    assert _as_text(url, "b") == _as_text(url, "t")


def test_fast_path_switched_off_sends_text(
    make_database: MakeDb,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sent: dict[str, int],
) -> None:
    src, dst = make_database("postgresql", "src"), make_database("postgresql", "dst")
    day = dt.date(2026, 11, 30)
    row = (1, 2, 3, True, 0.5, Decimal("1.25"), Decimal("-7"), "x", "y", "z")
    _insert(src, [(*row, None, None, None, None, None, day, None, b"\x00")])
    store = FilesystemStore(tmp_path / "s")
    manifest, _ = create_backup(src, store, environment="e")
    monkeypatch.setenv("FERRY_FAST_PATH", "0")
    restore(store, manifest.id, dst)
    assert sent == {"binary": 0, "text": 1}
    assert _as_text(dst) == _as_text(src)


def test_a_value_refused_mid_copy_leaves_nothing(
    make_database: MakeDb, monkeypatch: pytest.MonkeyPatch, sent: dict[str, int]
) -> None:
    """Binary slices already sent, then one the server refuses: the restore's
    transaction ends with nothing written, and the error names the table."""
    url = make_database("postgresql", "refused")
    execute(url, "CREATE TABLE keep (id integer)", "INSERT INTO keep VALUES (1)")
    monkeypatch.setattr(pg_fast, "WRITE_SLICE_BYTES", 1)  # 256 rows a slice
    table = TableSchema(
        name="short",
        columns=(
            Column("id", ColumnType(Kind.BIGINT, native="BIGINT")),
            Column("code", ColumnType(Kind.STRING, length=3, native="VARCHAR(3)")),
        ),
    )
    codes = ["abc"] * 600
    codes[520] = "abcd"  # the third slice
    batch = pa.record_batch(
        [pa.array(range(600), pa.int64()), pa.array(codes, pa.large_string())],
        names=["id", "code"],
    )
    engine = sa.create_engine(url)
    try:
        refused = pytest.raises(PermanentError, match=r"restoring short: .*too long")
        with refused, engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM keep")
            conn.exec_driver_sql("CREATE TABLE short (id bigint, code varchar(3))")
            pg_fast.copy_rows(conn, table, iter([batch]), pg_fast.column_types(conn, table))
        assert sent["binary"] >= 2
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT to_regclass('short')").scalar() is None
            assert conn.exec_driver_sql("SELECT count(*) FROM keep").scalar() == 1
    finally:
        engine.dispose()
