"""In-database digests and the Python canonical path decide the same plan.

Same-dialect plans hash rows where they live and read back only the rows of buckets
whose aggregates differ (controller/db/digests.py, controller/engine/buckets.py); with
``FERRY_FAST_PATH=0`` every row is read and hashed in Python. On generated data with
the spellings that differ without meaning anything (JSON key order and spacing, decimal
scale, time zones) and the values that differ while looking alike (NULL and ``''``,
Unicode, binary, floats), both must produce the same plan: counts, changed rows and
their digests, and the plan digest an approval binds.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from controller.api.rules import parse_rules
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions, Prepared
from controller.db import staging
from controller.engine.profiles import Profile
from controller.errors import PermanentError
from tests.db import dbhelpers
from tests.db.dbhelpers import DB_EXAMPLES, dump, execute, q

MakeDb = Callable[..., str]
COLUMNS = ("id", "t", "j", "n", "ts", "b", "f", "flag")
FILLER = 300  # identical rows on both sides: the buckets they fill are settled in place


def _ddl(dialect: str) -> str:
    types = {
        "postgresql": "bigint primary key, text, jsonb, numeric, timestamptz, bytea, "
        "double precision, boolean",
        "mysql": "bigint primary key, text, json, decimal(30,10), datetime(6), blob, double, "
        "tinyint(1)",
        "sqlite": "integer primary key, text, json, numeric, datetime, blob, real, boolean",
    }[dialect]
    first, rest = types.split(", ", 1)
    cols = ", ".join(
        f"{q(dialect, c)} {ty}" for c, ty in zip(COLUMNS[1:], rest.split(", "), strict=True)
    )
    return f"create table {q(dialect, 'items')} ({q(dialect, 'id')} {first}, {cols})"


def _fill(url: str, dialect: str, rows: list[dict[str, Any]]) -> None:
    execute(url, f"drop table if exists {q(dialect, 'items')}", _ddl(dialect))
    if not rows:
        return
    j = "CAST(:j AS jsonb)" if dialect == "postgresql" else ":j"
    names = ", ".join(q(dialect, c) for c in COLUMNS)
    values = f":id, :t, {j}, :n, :ts, :b, :f, :flag"
    sql = f"insert into {q(dialect, 'items')} ({names}) values ({values})"
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(sql), rows)
    finally:
        engine.dispose()


TEXT = st.one_of(
    st.none(),
    st.just(""),
    st.sampled_from(["NULL", "N", "\\N", "a|b", '("x",)', "é", "e\u0301", "日本", "🚀", "\x1f"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8),
)
JSON_DOC = st.dictionaries(
    st.sampled_from(["a", "b", "ä", "k k"]),
    st.one_of(st.integers(-5, 5), st.sampled_from(["1.5", "1.50"]).map(Decimal), TEXT),
    max_size=3,
)
DECIMALS = st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False)
INSTANTS = st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2040, 1, 1)).map(
    lambda d: d.replace(tzinfo=dt.UTC)
)
FLOATS = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.just(0.1 + 0.2))


def _json(doc: dict[str, Any] | None, spelling: int) -> str | None:
    """One JSON text of ``doc``; ``spelling`` picks key order and spacing."""
    if doc is None:
        return None
    items = list(doc.items())
    if spelling % 2:
        items.reverse()
    sep = (", ", ": ") if spelling % 3 else (",", ":")
    text = "{" + sep[0].join(f"{json.dumps(k)}{sep[1]}{_num(v)}" for k, v in items) + "}"
    return text


def _num(value: Any) -> str:
    return str(value) if isinstance(value, Decimal) else json.dumps(value, ensure_ascii=False)


def _spelled(dialect: str, rec: dict[str, Any], spelling: int) -> dict[str, Any]:
    """``rec`` (meaning) as the database receives it, spelled one of several ways."""
    ts: dt.datetime | None = rec["ts"]
    n: Decimal | None = rec["n"]
    if ts is not None and spelling % 2:
        ts = ts.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30)))
    if ts is not None and dialect != "postgresql":
        ts = ts.astimezone(dt.UTC).replace(tzinfo=None)
    if n is not None and spelling % 2 and dialect == "postgresql":
        n = Decimal(str(n) + ("0" if "." in str(n) else ".0"))  # more scale, same number
    out = dict(rec, ts=ts, n=n, j=_json(rec["j"], spelling))
    if dialect == "sqlite" and n is not None:
        out["n"] = str(n)  # sqlite3 binds no Decimal; numeric affinity reads the text
    if dialect == "sqlite" and ts is not None:
        out["ts"] = ts.isoformat(sep=" ") if spelling % 3 else ts.isoformat()
    return out


RECORD = st.fixed_dictionaries(
    {
        "t": TEXT,
        "j": st.one_of(st.none(), JSON_DOC),
        "n": st.one_of(st.none(), DECIMALS),
        "ts": st.one_of(st.none(), INSTANTS),
        "b": st.one_of(st.none(), st.binary(max_size=6)),
        "f": st.one_of(st.none(), FLOATS),
        "flag": st.one_of(st.none(), st.booleans()),
    }
)


@st.composite
def _sides(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Source and target records: the target is the source with rows kept, respelled,
    edited in one column, deleted, plus rows of its own."""
    source = draw(st.lists(RECORD, max_size=12))
    target: list[dict[str, Any]] = []
    for i, rec in enumerate(source):
        fate = draw(st.sampled_from(["same", "respelled", "edited", "gone"]))
        if fate == "gone":
            continue
        row = dict(rec, id=i + 1, spelling=1 if fate == "respelled" else 0)
        if fate == "edited":
            column = draw(st.sampled_from(list(RECORD_KEYS)))
            row[column] = draw(RECORD)[column]
        target.append(row)
    extra = draw(st.lists(RECORD, max_size=3))
    target += [dict(rec, id=100 + i, spelling=0) for i, rec in enumerate(extra)]
    return [dict(rec, id=i + 1, spelling=0) for i, rec in enumerate(source)], target


RECORD_KEYS = ("t", "j", "n", "ts", "b", "f", "flag")


def _filler() -> list[dict[str, Any]]:
    return [
        {"id": 1000 + i, "t": f"row {i}", "j": {"i": i}, "n": Decimal(i), "ts": None,
         "b": bytes([i % 256]), "f": i / 7, "flag": bool(i % 2), "spelling": 0}
        for i in range(FILLER)
    ]  # fmt: skip


def _write(url: str, dialect: str, records: list[dict[str, Any]]) -> None:
    rows = []
    for rec in [*records, *_filler()]:
        spelled = _spelled(dialect, rec, rec["spelling"])
        spelled.pop("spelling")
        rows.append(spelled)
    _fill(url, dialect, rows)


@contextmanager
def _fast_path(monkeypatch: pytest.MonkeyPatch, on: bool) -> Iterator[None]:
    with monkeypatch.context() as m:
        m.setenv("FERRY_FAST_PATH", "1" if on else "0")
        yield


def _changes(prepared: Prepared) -> dict[str, Any]:
    """Everything the plan decided, row by row, in a comparable form."""
    out: dict[str, Any] = {"plan": prepared.plan.to_dict()}
    for t in prepared.plan.tables:
        c = t.changes
        if c is None:
            continue
        out[t.table] = (
            sorted((repr(k), d) for k, d in c.inserts.items()),
            sorted((repr(k), repr(v), c.update_digests[k]) for k, v in c.updates.items()),
            sorted(map(repr, c.deletes)),
            sorted(map(repr, c.remap)),
            c.unchanged,
            c.kept,
        )
    return out


def plan_both(
    src: str, tgt: str, options: PlanOptions, monkeypatch: pytest.MonkeyPatch
) -> tuple[Prepared, Prepared]:
    """The plan in place (asserting it was) and in Python (asserting it was)."""
    with _fast_path(monkeypatch, True):
        fast = plan_only(src, tgt, options)
    with _fast_path(monkeypatch, False):
        slow = plan_only(src, tgt, options)
    assert all(i.buckets is not None for i in fast.source_rows.values()), "fast path not taken"
    assert all(i.buckets is None for i in slow.source_rows.values()), "fast path not off"
    return fast, slow


RULES = st.sampled_from(["overwrite", "upsert", "insert-ignore"])


@given(sides=_sides(), rule=RULES, ignore=st.booleans())
@DB_EXAMPLES
def test_both_paths_plan_the_same(
    dialect: str,
    make_database: MakeDb,
    monkeypatch: pytest.MonkeyPatch,
    sides: tuple[list[dict[str, Any]], list[dict[str, Any]]],
    rule: str,
    ignore: bool,
) -> None:
    src, tgt = _databases(make_database, dialect)
    _write(src, dialect, sides[0])
    _write(tgt, dialect, sides[1])
    rules: dict[str, Any] = {"user": rule} | ({"ignoreColumns": ["t"]} if ignore else {})
    options = PlanOptions(parse_rules(rules), Profile.GENERIC)
    fast, slow = plan_both(src, tgt, options, monkeypatch)
    assert _changes(fast) == _changes(slow)
    assert fast.plan.digest == slow.plan.digest


_DATABASES: dict[tuple[int, str], tuple[str, str]] = {}


def _databases(make_database: MakeDb, dialect: str) -> tuple[str, str]:
    """Two databases per test and dialect, reused by its examples (tables are rebuilt)."""
    key = (id(make_database), dialect)
    if key not in _DATABASES:
        _DATABASES[key] = (make_database(dialect, "fsrc"), make_database(dialect, "ftgt"))
    return _DATABASES[key]


def test_in_place_promotion_writes_verifies_and_is_then_a_noop(
    dialect: str, make_database: MakeDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A promotion planned in place applies, verifies against in-database digests, and
    the re-plan reads no row at all (every bucket settled)."""
    src, tgt = make_database(dialect, "src"), make_database(dialect, "tgt")
    base = [dict(rec, id=i + 1, spelling=0) for i, rec in enumerate(_filler()[:40])]
    _write(src, dialect, [dict(r, t=f"changed {r['id']}") if r["id"] % 9 == 0 else r for r in base])
    _write(tgt, dialect, [*base[:-2], dict(base[0], id=500, spelling=0)])
    options = PlanOptions(parse_rules({"user": "overwrite"}), Profile.GENERIC)
    fast, _slow = plan_both(src, tgt, options, monkeypatch)
    table = fast.plan.table("items")
    assert table is not None and (table.insert, table.update, table.delete) == (2, 4, 1)
    assert 0 < len(fast.source_rows["items"].rows) < FILLER  # only differing buckets read
    result = migrate(MigrationRequest(src, tgt, options))
    assert result.status == "succeeded", result.message
    again, _ = plan_both(src, tgt, options, monkeypatch)
    assert not again.plan.changes_anything
    assert again.source_rows["items"].rows == {} and again.target_rows["items"].rows == {}
    assert again.source_rows["items"].settled == FILLER + 40


_BLANK = dict.fromkeys(RECORD_KEYS)
_AT = dt.datetime(2026, 1, 2, 3, 4, 5, 6, dt.UTC)
# (column, source value, target value, target spelling, changed?)
LOOKALIKES: list[tuple[str, Any, Any, int, bool]] = [
    ("t", None, "", 0, True),
    ("t", "", None, 0, True),
    ("t", "N", None, 0, True),
    ("t", "é", "e\u0301", 0, True),  # the same letter, composed and not: different text
    ("t", "a\x1fb", "a\x1f" + "b", 0, False),
    ("j", {"a": 1, "b": 2}, {"a": 1, "b": 2}, 1, False),  # keys reordered, spaced
    ("j", {"a": "1"}, {"a": 1}, 0, True),
    ("j", {"a": Decimal("1.5")}, {"a": Decimal("1.50")}, 0, True),  # JSON keeps the scale
    ("n", Decimal("1.5"), Decimal("1.5"), 1, False),  # PostgreSQL: 1.50, the same number
    ("n", Decimal("1.5"), Decimal("1.25"), 0, True),
    ("ts", _AT, _AT, 1, False),  # one instant, another time zone
    ("ts", _AT, _AT + dt.timedelta(microseconds=1), 0, True),
    ("b", b"", None, 0, True),
    ("b", b"\x00", b"", 0, True),
    ("f", 0.1 + 0.2, 0.3, 0, True),
    ("flag", None, False, 0, True),
]  # fmt: skip


def test_lookalike_values_are_told_apart_alike(
    dialect: str, make_database: MakeDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pair of values is one row: both paths call the same rows changed, and those
    are exactly the pairs whose meaning differs."""
    src, tgt = make_database(dialect, "src"), make_database(dialect, "tgt")
    source, target = [], []
    for i, (column, a, b, spelling, _changed) in enumerate(LOOKALIKES):
        source.append(dict(_BLANK, id=i + 1, spelling=0, **{column: a}))
        target.append(dict(_BLANK, id=i + 1, spelling=spelling, **{column: b}))
    _write(src, dialect, source)
    _write(tgt, dialect, target)
    options = PlanOptions(parse_rules({"user": "overwrite"}), Profile.GENERIC)
    fast, slow = plan_both(src, tgt, options, monkeypatch)
    assert _changes(fast) == _changes(slow)
    changes = fast.plan.table("items").changes  # type: ignore[union-attr]
    assert changes is not None
    updated = sorted(int(k[0].removeprefix("i:")) for k in changes.updates)
    assert updated == [i + 1 for i, case in enumerate(LOOKALIKES) if case[4]]


def test_a_failure_between_copy_and_apply_leaves_the_target_untouched(
    make_database: MakeDb,
) -> None:
    """PostgreSQL stages inserts, updates and deletes with COPY; a failure after the
    COPY and before the statements that apply them rolls everything back."""
    src, tgt = make_database("postgresql", "src"), make_database("postgresql", "tgt")
    base = [dict(rec, id=i + 1, spelling=0) for i, rec in enumerate(_filler()[:40])]
    _write(src, "postgresql", [dict(r, t="changed") if r["id"] % 5 == 0 else r for r in base])
    _write(tgt, "postgresql", [*base[:-3], dict(base[0], id=900)])
    before = dump(tgt)
    seen: list[str] = []

    def fault(step: str) -> None:
        seen.append(step)
        if step == "staged:items":
            raise PermanentError("injected after the COPY")

    options = PlanOptions(parse_rules({"user": "overwrite"}), Profile.GENERIC)
    result = migrate(MigrationRequest(src, tgt, options, fault=fault))
    assert "staged:items" in seen
    assert result.status == "rolled-back" and result.target_untouched, result.message
    after = dump(tgt)
    assert after.pop("ferry_migrations")["rows"]  # the failure is recorded, nothing else
    assert after == before
    done = migrate(MigrationRequest(src, tgt, options))
    assert done.status == "succeeded", done.message
    assert done.plan is not None and done.plan.totals["delete"] == 1
    assert dump(tgt)["items"]["rows"] == dump(src)["items"]["rows"]


HOSTILE_TABLE = 'it"em`s %s :b|$env'
# (No backtick in column names: SQLAlchemy's MySQL reflection keeps one doubled.)
HOSTILE_COLUMNS = ('k"e y :k', "v%(x)s :v", "$env|'w'")


def _quoted(dialect: str, name: str) -> str:
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def test_hostile_names_stay_quoted_identifiers(
    dialect: str, make_database: MakeDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Table and column names with quotes, backticks, ``%s``, ``:name`` and ``|`` reach
    the digest, bucket and staging SQL only as quoted identifiers."""
    src, tgt = make_database(dialect, "src"), make_database(dialect, "tgt")
    t = _quoted(dialect, HOSTILE_TABLE)
    k, v, w = (_quoted(dialect, c) for c in HOSTILE_COLUMNS)
    for url, rows in ((src, range(60)), (tgt, range(3, 62))):
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                raw = conn.connection.driver_connection
                with closing(raw.cursor()) as cur:  # no placeholders parsed: names as they are
                    cur.execute(f"create table {t} ({k} integer primary key, {v} text, {w} text)")
                    for i in rows:
                        cur.execute(f"insert into {t} ({k}, {v}, {w}) values ({i}, 'r{i}', 'x')")
        finally:
            engine.dispose()
    options = PlanOptions(parse_rules({"user": "overwrite"}), Profile.GENERIC)
    fast, slow = plan_both(src, tgt, options, monkeypatch)
    assert _changes(fast) == _changes(slow)
    table = fast.plan.table(HOSTILE_TABLE)
    assert table is not None and (table.insert, table.update, table.delete) == (3, 0, 2)
    result = migrate(MigrationRequest(src, tgt, options))
    assert result.status == "succeeded", result.message
    assert dump(tgt)[HOSTILE_TABLE]["rows"] == dump(src)[HOSTILE_TABLE]["rows"]


@pytest.mark.parametrize("target_seen", ["integer", "bigint"])
def test_postgresql_stages_the_source_copy_data_undecoded(
    make_database: MakeDb, monkeypatch: pytest.MonkeyPatch, target_seen: str
) -> None:
    """PostgreSQL to PostgreSQL, a table planned in place: the source's COPY data is
    staged as it is sent, binary when every column has the same built-in type on both
    sides, text when one differs (here an ignored column), and the target then holds
    the source's rows."""
    src, tgt = make_database("postgresql", "src"), make_database("postgresql", "tgt")
    ddl = "create table things (id bigint primary key, doc jsonb, raw json, note text, seen {})"
    insert = (
        "insert into things select i, jsonb_build_object('i', i, 'f', i / 3.0), "
        "json_build_object('z', i, 'a', 'x'), {}, i from generate_series(1, {}) i"
    )
    execute(src, ddl.format("integer"), insert.format("'n' || i", 120))
    execute(
        tgt,
        ddl.format(target_seen),
        insert.format("case when mod(i, 10) = 0 then 'old' else 'n' || i end", 110),
        "insert into things values (500, '{}', '[]', 'gone', 0)",
    )
    modes: list[bool] = []
    real = staging.copy_out

    def spied(conn: sa.Connection, select: str, *, binary: bool) -> Iterator[bytes]:
        modes.append(binary)
        return real(conn, select, binary=binary)

    monkeypatch.setattr(staging, "copy_out", spied)
    options = PlanOptions(
        parse_rules({"user": "overwrite", "ignoreColumns": ["seen"]}), Profile.GENERIC
    )
    result = migrate(MigrationRequest(src, tgt, options))
    assert result.status == "succeeded", result.message
    assert result.plan is not None
    assert (result.plan.totals["insert"], result.plan.totals["update"]) == (10, 11)
    assert result.plan.totals["delete"] == 1
    assert modes == [target_seen == "integer"]
    assert dump(tgt)["things"]["rows"] == dump(src)["things"]["rows"]
    again = plan_only(src, tgt, options)
    assert not again.plan.changes_anything


MOVED = [
    (("x", "y"), ("y", "x")),
    ((None, ""), ("", None)),
    (("x", None), (None, "x")),
    (("ab", "c"), ("a", "bc")),
    (("", ""), (None, None)),
]


@pytest.mark.parametrize("moved", MOVED, ids=repr)
def test_values_moved_between_columns_are_changes(
    dialect: str,
    make_database: MakeDb,
    monkeypatch: pytest.MonkeyPatch,
    moved: tuple[tuple[str | None, ...], tuple[str | None, ...]],
) -> None:
    """A row's native digest covers each column in its place: values swapped between
    two columns, NULL and ``''`` exchanged, or text split differently across columns
    make the one changed row among identical ones (PostgreSQL hashes each column's
    text by itself), on both paths."""
    src, tgt = make_database(dialect, "src"), make_database(dialect, "tgt")
    ddl = f"create table {q(dialect, 'pairs')} (id integer primary key, a text, b text)"
    for url, (a, b) in ((src, moved[0]), (tgt, moved[1])):
        execute(url, ddl)
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                stmt = sa.text(f"insert into {q(dialect, 'pairs')} values (:id, :a, :b)")
                values = [{"id": i, "a": f"same {i}", "b": None} for i in range(1, 60)]
                conn.execute(stmt, [*values, {"id": 0, "a": a, "b": b}])
        finally:
            engine.dispose()
    options = PlanOptions(parse_rules({"user": "overwrite"}), Profile.GENERIC)
    fast, slow = plan_both(src, tgt, options, monkeypatch)
    assert _changes(fast) == _changes(slow)
    table = fast.plan.table("pairs")
    assert table is not None and (table.update, table.unchanged) == (1, 59)


@pytest.mark.parametrize("edit", ["row deleted elsewhere", "row added elsewhere"])
def test_verification_hashes_the_written_buckets_and_counts_the_rest(
    make_database: MakeDb, monkeypatch: pytest.MonkeyPatch, edit: str
) -> None:
    """After an in-place write, verification hashes again only the rows the plan read,
    which are the rows it changes (the rest was found identical in this transaction
    and not written; another session's edit of a written row waits for its lock) and
    compares whole-table counts: a row another session deletes or adds anywhere fails
    the promotion, which then leaves nothing behind."""
    src, tgt = make_database("postgresql", "src"), make_database("postgresql", "tgt")
    base = [dict(rec, id=i + 1, spelling=0) for i, rec in enumerate(_filler()[:200])]
    _write(src, "postgresql", [dict(r, t="changed") if r["id"] % 50 == 0 else r for r in base])
    _write(tgt, "postgresql", base)
    options = PlanOptions(parse_rules({"user": "overwrite"}), Profile.GENERIC)
    planned = plan_only(src, tgt, options)
    held = planned.source_rows["items"]
    changes = planned.plan.table("items").changes  # type: ignore[union-attr]
    assert changes is not None and 0 < len(held.rows) < FILLER
    # the rows the plan read are the ones it changes: their buckets hold nothing else
    assert set(held.rows) == set(changes.updates)
    sql = {
        "row deleted elsewhere": "delete from items where id = 1",
        "row added elsewhere": "insert into items (id, t) values (99999, 'new')",
    }[edit]

    def fault(step: str) -> None:
        if step == "verify":
            execute(tgt, sql)  # another session, committed: the write session sees it

    result = migrate(MigrationRequest(src, tgt, options, fault=fault))
    assert result.status == "rolled-back", result.message
    assert "verification after apply failed" in result.message
    now = dict(dbhelpers.rows(tgt, "items", "id", "t"))
    changed = {i: now[i] for i in (50, 100, 150, 200)}
    assert changed == {i: f"row {i - 1}" for i in (50, 100, 150, 200)}  # nothing written
