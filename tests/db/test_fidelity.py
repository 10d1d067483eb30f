"""Fidelity: what lands is what left, for every type, between every pair of dialects.

Hypothesis generates rows (Unicode including 4-byte characters, line breaks, JSON text
in any spacing, NULL versus empty string, binary, large text, timestamps with and
without time zone, decimals, floats, booleans, 64-bit integers); each example is
promoted with the real engine. The engine's own verification compares every value's
canonical form; this test also compares text, JSON text and bytes exactly, and reads
the timestamps, dates, times, decimals, floats, booleans and integers back from the
target to compare them with what was written.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.dialects import mysql

from controller.api.rules import Rule, RulesSpec
from controller.commands.migrate import MigrationRequest, migrate
from controller.commands.planning import PlanOptions
from controller.engine.profiles import Profile
from tests.db.dbhelpers import DB_EXAMPLES

MakeDb = Callable[..., str]
DIALECTS = ["sqlite", "postgresql", "mysql"]
PAIRS = [
    pytest.param(
        s,
        t,
        id=f"{s}-to-{t}".replace("mysql", "mariadb"),
        marks=[pytest.mark.db] if "sqlite" not in (s, t) or s != t else [],
    )
    for s in DIALECTS
    for t in DIALECTS
]

text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40
)
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**53), 2**53), text),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(text.filter(lambda s: len(s) < 10), inner, max_size=3),
    ),
    max_leaves=8,
)
json_text = st.builds(
    lambda v, seps: json.dumps(v, ensure_ascii=False, separators=seps),
    json_value,
    st.sampled_from([(",", ":"), (", ", ": "), (",", ": ")]),
)
utc = st.datetimes(
    min_value=dt.datetime(1971, 1, 1),
    max_value=dt.datetime(2099, 12, 31),
    timezones=st.just(dt.UTC),
)
naive = st.datetimes(min_value=dt.datetime(1971, 1, 1), max_value=dt.datetime(2099, 12, 31))


def nullable(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


row = st.fixed_dictionaries(
    {
        "s": nullable(st.one_of(st.just(""), text, st.just("line\r\nbreak\n😀 𝄞 ü"))),
        "t": nullable(st.one_of(text, st.just("x" * 70_000 + "é"))),
        "j": nullable(json_text),
        "b": nullable(st.one_of(st.just(b""), st.binary(max_size=64))),
        "ts": nullable(utc),
        "dtn": nullable(naive),
        "d": nullable(st.dates(min_value=dt.date(1000, 1, 1))),
        "tm": nullable(st.times()),
        # SQLite stores DECIMAL in REAL (NUMERIC affinity): it keeps 15 significant digits,
        # so the values stay within what every dialect holds exactly.
        "n": nullable(
            st.decimals(min_value=Decimal("-999999999"), max_value=Decimal("999999999"), places=6)
        ),
        "f": nullable(st.floats(allow_nan=False, allow_infinity=False, width=64)),
        "flag": nullable(st.booleans()),
        "big": nullable(st.integers(-(2**63), 2**63 - 1)),
    }
)


def _table() -> sa.Table:
    md = sa.MetaData()
    return sa.Table(
        "fidelity",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("s", sa.String(255)),
        sa.Column("t", sa.Text().with_variant(mysql.LONGTEXT(), "mysql")),
        sa.Column("j", sa.JSON()),
        sa.Column("b", sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql")),
        sa.Column("ts", sa.DateTime(timezone=True).with_variant(mysql.DATETIME(fsp=6), "mysql")),
        sa.Column("dtn", sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql")),
        sa.Column("d", sa.Date()),
        sa.Column("tm", sa.Time().with_variant(mysql.TIME(fsp=6), "mysql")),
        sa.Column("n", sa.Numeric(18, 6)),
        sa.Column("f", sa.Float(53)),
        sa.Column("flag", sa.Boolean()),
        sa.Column("big", sa.BigInteger()),
    )


def _write_source(url: str, rows: list[dict[str, Any]]) -> None:
    table = _table()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            table.drop(conn, checkfirst=True)
            table.create(conn)
            if not rows:
                return
            raw = sa.Table(
                "fidelity",
                sa.MetaData(),
                *[sa.Column(c.name, sa.Text() if c.name == "j" else c.type) for c in table.columns],
            )
            if conn.dialect.name == "postgresql":
                stmt = sa.insert(table).values(
                    {
                        c.name: (
                            sa.cast(sa.bindparam(c.name, type_=sa.Text()), sa.JSON())
                            if c.name == "j"
                            else sa.bindparam(c.name, type_=c.type)
                        )
                        for c in table.columns
                    }
                )
                conn.execute(stmt, rows)
            else:
                conn.execute(sa.insert(raw), rows)
    finally:
        engine.dispose()


def _exact(url: str) -> list[tuple[Any, ...]]:
    """Text, JSON text and bytes exactly as stored."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            j: Any = sa.column("j")
            if conn.dialect.name == "postgresql":
                j = sa.cast(j, sa.Text())
            stmt = sa.select(
                sa.column("id"), sa.column("s"), sa.column("t"), j, sa.column("b")
            ).select_from(sa.table("fidelity"))
            out = []
            for r in conn.execute(stmt.order_by(sa.column("id"))):
                b = bytes(r[4]) if r[4] is not None else None
                j_text = r[3]
                if j_text is not None and not isinstance(j_text, str):
                    # SQLite gives a column declared JSON numeric affinity: the text of a
                    # top-level JSON number is stored as that number. Compare its text.
                    j_text = json.dumps(j_text)
                out.append((r[0], r[1], r[2], j_text, b))
            return out
    finally:
        engine.dispose()


TYPED = ("ts", "dtn", "d", "tm", "n", "f", "flag", "big")


def _utc_naive(value: Any) -> dt.datetime:
    """A timestamp as naive UTC: the servers run in UTC, and SQLite and MariaDB keep no
    zone, so an aware value and its naive UTC twin are the same instant."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    assert isinstance(value, dt.datetime), repr(value)
    return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value


def _time(value: Any) -> dt.time:
    if isinstance(value, dt.timedelta):  # PyMySQL reads TIME as a duration
        return (dt.datetime.min + value).time()
    return value if isinstance(value, dt.time) else dt.time.fromisoformat(value)


def _boolean(value: Any) -> bool:
    assert value in (0, 1), f"boolean stored as {value!r}"  # True == 1, False == 0
    return bool(value)


_NORMAL: dict[str, Callable[[Any], Any]] = {
    "ts": _utc_naive,
    "dtn": _utc_naive,
    "d": lambda v: v if isinstance(v, dt.date) else dt.date.fromisoformat(v),
    "tm": _time,
    # NUMERIC(18, 6): the declared scale is the value; SQLite's REAL gives a float back.
    "n": lambda v: Decimal(repr(v) if isinstance(v, float) else str(v)).quantize(Decimal("1e-6")),
    "f": float,
    "flag": _boolean,
    "big": int,
}


def _normal(column: str, value: Any) -> Any:
    return None if value is None else _NORMAL[column](value)


def _typed(url: str) -> list[tuple[Any, ...]]:
    """Timestamp, date, time, decimal, float, boolean and integer columns as the driver
    reads them (no SQLAlchemy type conversion), brought to one comparable form."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            stmt = sa.select(*[sa.column(c) for c in ("id", *TYPED)]).select_from(
                sa.table("fidelity")
            )
            return [
                (r[0], *(_normal(c, v) for c, v in zip(TYPED, r[1:], strict=True)))
                for r in conn.execute(stmt.order_by(sa.column("id")))
            ]
    finally:
        engine.dispose()


def _written(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r["id"], *(_normal(c, r[c]) for c in TYPED)) for r in rows]


def _drop(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            _table().drop(conn, checkfirst=True)
            conn.exec_driver_sql("drop table if exists ferry_migrations")
    finally:
        engine.dispose()


@pytest.mark.parametrize(("source_dialect", "target_dialect"), PAIRS)
def test_round_trip_between_dialects(
    source_dialect: str, target_dialect: str, make_database: MakeDb
) -> None:
    src = make_database(source_dialect, "fsrc")
    tgt = make_database(target_dialect, "ftgt")
    options = PlanOptions(RulesSpec(user=Rule.OVERWRITE), Profile.GENERIC)

    @DB_EXAMPLES
    @given(st.lists(row, min_size=1, max_size=6))
    def check(rows: list[dict[str, Any]]) -> None:
        numbered = [{"id": i + 1, **r} for i, r in enumerate(rows)]
        _write_source(src, numbered)
        _drop(tgt)
        result = migrate(MigrationRequest(src, tgt, options))
        assert result.status == "succeeded", result.message  # includes the verification
        for got, want in zip(_exact(tgt), _exact(src), strict=True):
            for column, a, b in zip(("id", "s", "t", "j", "b"), got, want, strict=True):
                assert a == b, f"row {want[0]} column {column}: {a!r:.200} != {b!r:.200}"
        for got, want in zip(_typed(tgt), _written(numbered), strict=True):
            for column, a, b in zip(("id", *TYPED), got, want, strict=True):
                assert (a, type(a)) == (b, type(b)), (
                    f"row {want[0]} column {column}: {a!r} != {b!r}"
                )
        again = migrate(MigrationRequest(src, tgt, options))
        assert again.status == "noop", "a second promotion must find nothing to change"

    check()
