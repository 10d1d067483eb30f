"""PostgreSQL's fast backup/restore path (COPY through Arrow) against the generic path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from controller.backups.archive import read_member
from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup, restore
from controller.db import pg_fast
from controller.db.database import Database
from tests.db.dbhelpers import dump, execute

MakeDb = Callable[..., str]

TABLES = (
    r"""create table kinds (
        id bigserial primary key, i2 smallint, i4 integer, f4 real, f8 double precision,
        amount numeric(12, 3), big numeric, body text, code varchar(8), tag char(4),
        doc jsonb, raw json, at timestamptz(3), naive timestamp, day date, clock time,
        blob bytea, flag boolean, ref uuid,
        unique (code, tag))""",
    "create index kinds_day on kinds (day)",
    r"""insert into kinds (i2, i4, f4, f8, amount, big, body, code, tag, doc, raw, at, naive,
        day, clock, blob, flag, ref) values
      (1, 2, 1.1, 0.1, 3.300, 0.0000001, E'tab\there\nline\r\\ «ünï»', 'a', 'ab',
       '{"b": 1, "s": "q\"x\\"}', '{"b":1,  "a":2}', '2026-01-15 09:30:00.123+02',
       '2026-01-15 09:30:00.5', '2026-01-15', '09:30:00.123', '\x00ff5c0a', true,
       'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
      (null, null, null, null, null, null, '\N', 'b', null, null, null, null, null, null,
       null, null, null, null),
      (-32768, -2147483648, 3.4e38, -1e308, -0.001, 1e-20, '', '', '', '[]', 'null',
       '0001-01-01 00:00:00+00', '9999-12-31 23:59:59.999999', '0001-01-01',
       '23:59:59.999999', '\x', false, null)""",
    "create table empty (id integer primary key, blob bytea)",
    "create table many (id bigint primary key, blob bytea, note text)",
    """insert into many select i,
        case when mod(i, 3) = 0 then null when mod(i, 5) = 0 then ''::bytea
             else decode(repeat(md5(i::text), mod(i, 40)::int), 'hex') end,
        case when mod(i, 7) = 0 then null else repeat(E'x\\t', mod(i, 9)::int) end
      from generate_series(1, 30000) as i""",
)
# Types no Python value carries exactly: both paths archive PostgreSQL's own text.
OTHER_TYPES = (
    "create table other (id integer primary key, nums integer[], span interval)",
    "insert into other values (1, '{1,2}', '1 day 02:00'), (2, null, null), (3, '{}', '-1 us')",
)


DEFAULT_SMALL_BYTES = pg_fast.SMALL_BYTES


@pytest.fixture(autouse=True)
def any_size(monkeypatch: pytest.MonkeyPatch) -> None:
    """These databases are small: read them the fast way all the same."""
    monkeypatch.setattr(pg_fast, "SMALL_BYTES", 0)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Counts how often the fast path read and wrote a table."""
    counts = {"read": 0, "write": 0}
    read, write = pg_fast.SnapshotReader.batches, pg_fast.copy_rows

    def counted_read(self: pg_fast.SnapshotReader, *args: Any) -> Any:
        counts["read"] += 1
        return read(self, *args)

    def counted_write(*args: Any) -> int:
        counts["write"] += 1
        return write(*args)

    monkeypatch.setattr(pg_fast.SnapshotReader, "batches", counted_read)
    monkeypatch.setattr(pg_fast, "copy_rows", counted_write)
    yield counts


def test_fast_round_trip_is_exact(
    make_database: MakeDb, tmp_path: Path, calls: dict[str, int]
) -> None:
    src, dst = make_database("postgresql", "src"), make_database("postgresql", "dst")
    execute(src, *TABLES, *OTHER_TYPES)
    store = FilesystemStore(tmp_path / "s")
    manifest, _ = create_backup(src, store, environment="e")
    result = restore(store, manifest.id, dst)
    assert calls == {"read": 4, "write": 4}
    assert result.rows == manifest.rows == 30006
    assert dump(dst) == dump(src)


@pytest.mark.parametrize("backup_fast", [True, False], ids=["fast-backup", "generic-backup"])
def test_archives_are_the_same_either_way(
    backup_fast: bool, make_database: MakeDb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each path restores the other's archive; both read the same values."""
    src = make_database("postgresql", "src")
    execute(src, *TABLES)
    store = FilesystemStore(tmp_path / "s")
    monkeypatch.setattr(pg_fast, "ENABLED", backup_fast)
    manifest, _ = create_backup(src, store, environment="e")
    monkeypatch.setattr(pg_fast, "ENABLED", not backup_fast)
    other, _ = create_backup(src, store, environment="e")
    for mine, theirs in zip(manifest.members, other.members, strict=True):
        assert sorted(
            (r for b in read_member(store, manifest, mine) for r in b), key=repr
        ) == sorted((r for b in read_member(store, other, theirs) for r in b), key=repr)
    dst = make_database("postgresql", "dst")
    restore(store, manifest.id, dst)  # restored by the other path
    assert dump(dst) == dump(src)


ZONED = (
    "create table zoned (id integer primary key, nums integer[], at timetz, span interval,"
    " during tstzrange)",
    "insert into zoned values (1, '{1,2}', '10:00:00+02', '1 day 02:00',"
    " '[2026-01-01 10:00+01,2026-01-02 00:00+00)'), (2, null, null, null, null),"
    " (3, '{}', '23:59:59.5-11:30', '-1 us', 'empty')",
)


@pytest.mark.parametrize("restore_fast", [True, False], ids=["fast-restore", "generic-restore"])
@pytest.mark.parametrize("backup_fast", [True, False], ids=["fast-backup", "generic-backup"])
def test_arrays_offsets_and_intervals_survive_either_path(
    backup_fast: bool,
    restore_fast: bool,
    make_database: MakeDb,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backup must restore: before, a table with a ``timetz`` went the generic way,
    which archived Python's text of a list ("[1, 2]", refused by the restore) and lost
    the time's UTC offset."""
    src, dst = make_database("postgresql", "src"), make_database("postgresql", "dst")
    execute(src, *ZONED)
    store = FilesystemStore(tmp_path / "s")
    monkeypatch.setattr(pg_fast, "ENABLED", backup_fast)
    manifest, _ = create_backup(src, store, environment="e")
    monkeypatch.setattr(pg_fast, "ENABLED", restore_fast)
    restore(store, manifest.id, dst)
    assert dump(dst) == dump(src)
    engine = sa.create_engine(dst)
    try:
        with engine.connect() as conn:
            got = conn.execute(
                sa.text("select at::text, nums::text, span::text from zoned order by id")
            ).all()
    finally:
        engine.dispose()
    # dump() compares times as instants; the offset itself must survive too
    assert [tuple(r) for r in got] == [
        ("10:00:00+02", "{1,2}", "1 day 02:00:00"),
        (None, None, None),
        ("23:59:59.5-11:30", "{}", "-00:00:00.000001"),
    ]


def test_a_small_database_is_read_without_a_second_connection(
    make_database: MakeDb, tmp_path: Path, calls: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Below ``SMALL_BYTES`` a backup reads on its own connection (no connect, no
    snapshot import), into members of the same values; from there on it reads the fast way."""
    src = make_database("postgresql", "src")
    execute(src, *TABLES[:3], *OTHER_TYPES)
    store = FilesystemStore(tmp_path / "s")
    monkeypatch.setattr(pg_fast, "SMALL_BYTES", DEFAULT_SMALL_BYTES)
    small, _ = create_backup(src, store, environment="e")
    assert calls["read"] == 0
    monkeypatch.setattr(pg_fast, "SMALL_BYTES", 0)
    fast, _ = create_backup(src, store, environment="e")
    assert calls["read"] == 2
    for mine, theirs in zip(small.members, fast.members, strict=True):
        rows = [r for b in read_member(store, small, mine) for r in b]
        assert rows == [r for b in read_member(store, fast, theirs) for r in b]
        assert rows or mine.table == "empty"
    execute(src, *TABLES[3:])  # 30,000 rows: more than SMALL_BYTES
    monkeypatch.setattr(pg_fast, "SMALL_BYTES", DEFAULT_SMALL_BYTES)
    create_backup(src, store, environment="e")
    assert calls["read"] == 2 + 4


def _first_batch_and_open_cursors(url: str) -> tuple[list[tuple[Any, ...]], int]:
    db = Database(url)
    try:
        with db.reader() as snap:
            batches = snap.batches("kinds", ["id", "body"])
            first = next(batches)
            open_cursors = int(str(snap.scalar_rows("select count(*) from pg_cursors")[0][0]))
            batches.close()
            return first, open_cursors
    finally:
        db.dispose()


def test_a_small_snapshot_is_read_without_server_side_cursors(
    make_database: MakeDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = make_database("postgresql", "src")
    execute(src, *TABLES[:3])
    monkeypatch.setattr(pg_fast, "SMALL_BYTES", DEFAULT_SMALL_BYTES)
    small, cursors = _first_batch_and_open_cursors(src)
    assert cursors == 0 and len(small) == 3
    monkeypatch.setattr(pg_fast, "SMALL_BYTES", 0)  # as a big one: streamed
    streamed, cursors = _first_batch_and_open_cursors(src)
    assert cursors == 1 and streamed == small
