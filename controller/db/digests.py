"""Row digests computed where the data is: bucket aggregates and the rows of some buckets.

For a same-dialect plan, both sides hash each row inside their own database and send
only per-bucket aggregates (row count and the sum of 60-bit row digests) over a hash
of the key, then each row's (key hash, digest) in the buckets that differ; Python
fetches only the rows found on one side alone and decides what changed with its
canonical digests (:mod:`controller.engine.buckets`). So a native
digest only has to be *finer* than Ferry's canonical equality: the same native text on
both sides means the same value as read, never the reverse. Each dialect hashes a
faithful text of the values: PostgreSQL each column's own text output under fixed
output settings, hashed by ``hashtextextended`` (the hash its hash partitioning
relies on, so stable across versions) with a seed per column position and NULL apart
from ``''``, combined by XOR; MariaDB ``MD5`` of the
``HEX`` of strings and bytes and the ``CHAR`` text of numbers and times, ``N`` for
NULL; SQLite a registered function over each value's Python type and ``repr``.

Only checked, quoted identifiers and integers Ferry computed become SQL text; bucket
lists are bound parameters. ``FERRY_FAST_PATH=0`` turns the path off (tests run every
planning test both ways with it).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from controller.engine.buckets import BucketSum, Level, Selection
from controller.engine.identifiers import check_name
from controller.engine.model import INTEGER_KINDS, Kind

DIALECTS = frozenset({"postgresql", "mysql", "sqlite"})
# Kinds MariaDB spells exactly as CHAR text (doubles in their shortest exact form; HEX()
# would round a number to an integer); everything else is hashed as its bytes.
_MYSQL_AS_TEXT = frozenset(
    {*INTEGER_KINDS, Kind.DECIMAL, Kind.FLOAT, Kind.BOOLEAN, Kind.DATE, Kind.TIME, Kind.DATETIME}
    | {Kind.DATETIMETZ}
)
# PostgreSQL output settings that change a value's text: fixed while hashing.
_PG_SETTINGS = {
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "TimeZone": "UTC",
    "extra_float_digits": "1",
    "bytea_output": "hex",
}


def enabled() -> bool:
    """Whether same-dialect plans may hash in the database (``FERRY_FAST_PATH=0``: no)."""
    return os.environ.get("FERRY_FAST_PATH", "1").strip().lower() not in ("0", "false", "no", "off")


def _sqlite_text(values: Sequence[Any]) -> bytes:
    parts = []
    for v in values:
        shown = v.hex() if isinstance(v, bytes) else repr(v)
        parts.append(f"{type(v).__name__}:{shown}")
    return "\x1f".join(parts).encode("utf-8", "surrogatepass")


def _sqlite_key(*values: Any) -> int:
    digest = hashlib.md5(_sqlite_text(values), usedforsecurity=False).digest()
    return int.from_bytes(digest[:4]) >> 4  # 28 bits, as the other dialects


def _sqlite_row(*values: Any) -> int:
    digest = hashlib.md5(_sqlite_text(values), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8]) >> 4  # 60 bits


class _Sum:
    """SQLite's SUM stops at 64 bits: sums of 60-bit digests are kept in Python."""

    def __init__(self) -> None:
        self.total = 0

    def step(self, value: int) -> None:
        self.total += value

    def finalize(self) -> str:
        return str(self.total)


def _register_sqlite(conn: sa.Connection) -> None:
    raw: Any = conn.connection.driver_connection
    raw.create_function("ferry_key_hash", -1, _sqlite_key, deterministic=True)
    raw.create_function("ferry_row_hash", -1, _sqlite_row, deterministic=True)
    raw.create_aggregate("ferry_sum", 1, _Sum)


class TableDigests:
    """The SQL of one table's bucket aggregates and bucket rows, on one connection."""

    def __init__(
        self,
        conn: sa.Connection,
        table: str,
        key: Sequence[str],
        compared: Sequence[tuple[str, Kind]],
        *,
        restore: bool = True,
        env_columns: Sequence[str] = (),
    ) -> None:
        self.conn = conn
        self.restore = restore
        self.dialect = conn.dialect.name
        quote = _quoter(conn)
        self.table = quote(check_name(table, self.dialect, "table"))
        kinds = dict(compared)
        self._key = [
            self._value(quote(check_name(c, self.dialect, "column")), kinds.get(c)) for c in key
        ]
        # The same names as a driver statement takes them (no ``text()`` escapes).
        self._raw_key = [quote_name(self.dialect, check_name(c, self.dialect, "key")) for c in key]
        self._row = [
            self._value(quote(check_name(c, self.dialect, "column")), k) for c, k in compared
        ]
        self._env_text = _env_text(conn, env_columns) if env_columns else None
        # PostgreSQL: each column's text, made once per row, feeds both its hash and
        # the variable scan (see :meth:`_pg_texts`).
        self._pg_names = [quote(check_name(c, self.dialect, "column")) for c, _ in compared]
        self._pg_env = [quote(check_name(c, self.dialect, "column")) for c in env_columns]
        if self.dialect == "sqlite":
            _register_sqlite(conn)

    def _value(self, quoted: str, kind: Kind | None) -> str:
        if self.dialect != "mysql":
            return quoted
        if kind in _MYSQL_AS_TEXT:
            return f"COALESCE(CAST({quoted} AS CHAR), 'N')"
        return f"COALESCE(HEX({quoted}), 'N')"

    def _hashes(self) -> tuple[str, str]:
        """(28-bit key hash, 60-bit row digest) as SQL expressions."""
        key, row = ", ".join(self._key), ", ".join(self._row)
        if self.dialect == "postgresql":  # the hash partitioning uses: stable, fast
            return _pg_key_hash(self._key), _pg_row_digest([_pg_text(n) for n in self._pg_names])
        if self.dialect == "mysql":
            return (
                f"CAST(CONV(SUBSTR(MD5(CONCAT_WS('|', {key})), 1, 7), 16, 10) AS UNSIGNED)",
                f"CAST(CONV(SUBSTR(MD5(CONCAT_WS('|', {row})), 1, 15), 16, 10) AS UNSIGNED)",
            )
        return f"ferry_key_hash({key})", f"ferry_row_hash({row})"

    def _in(self, name: str, modulus: int, buckets: Sequence[int]) -> tuple[str, dict[str, Any]]:
        """``h % modulus`` is one of ``buckets``, with the list as one bound parameter
        (an expanding one on MariaDB)."""
        if modulus == 1:  # every row: no hash to compute
            return "1 = 1", {}
        if self.dialect == "postgresql":  # a hashed semi-join, not a scan of the array
            return (
                f"h % {modulus} IN (SELECT unnest(CAST(:{name} AS int[])))",
                {name: list(buckets)},
            )
        if self.dialect == "sqlite":
            return (
                f"h % {modulus} IN (SELECT value FROM json_each(:{name}))",
                {name: json.dumps(list(buckets))},
            )
        return f"h % {modulus} IN :{name}", {name: list(buckets)}

    def _where(
        self, selection: Sequence[tuple[int, tuple[int, ...]]], prefix: str = "b"
    ) -> tuple[str, dict[str, Any], list[str]]:
        clauses: list[str] = []
        params: dict[str, Any] = {}
        expanding: list[str] = []
        for i, (modulus, buckets) in enumerate(selection):
            if not buckets:
                continue
            clause, bound = self._in(f"{prefix}{i}", modulus, buckets)
            clauses.append(clause)
            params |= bound
            if self.dialect == "mysql" and bound:
                expanding.append(f"{prefix}{i}")
        return (" OR ".join(clauses) or "1 = 0"), params, expanding

    def _columns(self, env: bool, level: Level) -> tuple[str, str, str]:
        """The inner SELECT's columns, the digest over them, and the count of rows that
        may reference a variable (``0`` unless ``env``). A whole-table round computes
        no key hash unless it hashes only some buckets' rows (``level.hashed``)."""
        h, d = self._hashes()
        if level.modulus == 1 and level.within is None:
            if level.hashed:
                where, _, _ = self._where(level.hashed, "s")
                d = f"CASE WHEN {where.replace('h %', f'({h}) %')} THEN {d} ELSE 0 END"
            h = "0"
        if not env or self._env_text is None:
            return f"{h} AS h, {d} AS d", "d", "0"
        flagged = "SUM(CASE WHEN et LIKE :ferry_env THEN 1 ELSE 0 END)"
        return f"{h} AS h, {d} AS d, {self._env_text} AS et", "d", flagged

    def _pg_texts(self, level: Level) -> tuple[str, str, str]:
        """PostgreSQL with the variable scan: a SELECT of ``h``, the digest ``d`` and the
        flag ``f``, each column's text made once per row (``OFFSET 0`` keeps the inner
        query from being merged into the expressions that use a text twice)."""
        h, _ = self._hashes()
        if level.modulus == 1 and level.within is None:
            h = "0"
        names = list(dict.fromkeys([*self._pg_names, *self._pg_env]))
        alias = {n: f"t{i}" for i, n in enumerate(names)}
        texts = ", ".join(f"{_pg_text(n)} AS {alias[n]}" for n in names)
        inner = f"SELECT {h} AS h, {texts} FROM {self.table} OFFSET 0"
        d = _pg_row_digest([alias[n] for n in self._pg_names])
        found = " OR ".join(f"{alias[n]} LIKE :ferry_env" for n in self._pg_env)
        select = f"SELECT h, {d} AS d, CASE WHEN {found} THEN 1 ELSE 0 END AS f"
        return f"{select} FROM ({inner}) AS ferry_text", "d", "SUM(f)"

    def sums(self, level: Level, *, env: bool = False) -> Iterator[BucketSum]:
        """(bucket, rows, digest sum, rows that may reference a variable) of ``level``'s
        buckets, ordered by bucket; the last only with ``env`` (and ``env_columns``)."""
        assert not (env and level.hashed), "the variable scan reads every row"
        inner, d, flagged = self._columns(env, level)
        total = f"ferry_sum({d})" if self.dialect == "sqlite" else f"SUM({d})"
        where: str = "1 = 1"
        params: dict[str, Any] = {"ferry_env": "%$env%"} if flagged != "0" else {}
        expanding: list[str] = []
        if level.within is not None:
            where, bound, expanding = self._where([level.within])
            params |= bound
        if level.hashed:
            _, bound, more = self._where(level.hashed, "s")
            params |= bound
            expanding += more
        source = f"SELECT {inner} FROM {self.table}"
        if flagged != "0" and self.dialect == "postgresql":
            # the grouping handles (h, d, flag) integers, never a sort of the row texts
            source, d, flagged = self._pg_texts(level)
            total = f"SUM({d})"
        sql = (
            f"SELECT h % {level.modulus} AS b, COUNT(*), {total}, {flagged} FROM "
            f"({source}) AS ferry_rows "
            f"WHERE {where} GROUP BY h % {level.modulus} ORDER BY b"
        )
        # one bucket is one row: fetched in one round trip, with no server-side cursor
        stream = level.modulus > 1
        for bucket, count, total_sum, env_rows in self._stream(sql, params, expanding, stream):
            yield BucketSum(int(bucket), int(count), int(total_sum or 0), int(env_rows or 0))

    def row_digests(self, selection: Selection) -> Iterator[tuple[int, int]]:
        """(key hash, row digest) of each row in ``selection``, as :meth:`sums` hashes
        them; the digest is computed only for the rows the key hash selects."""
        h, d = self._hashes()
        where, params, expanding = self._where(selection)
        sql = f"SELECT {h}, {d} FROM {self.table} WHERE {where.replace('h %', f'({h}) %')}"
        for bucket, digest in self._stream(sql, params, expanding):
            yield int(bucket), int(digest)

    def _stream(
        self, sql: str, params: dict[str, Any], expanding: Sequence[str], stream: bool = True
    ) -> Iterator[Sequence[Any]]:
        """The rows of ``sql``, streamed under the fixed output settings (``stream``
        False: a result of a row or few, fetched at once)."""
        stmt = sa.text(sql).bindparams(*[sa.bindparam(n, expanding=True) for n in expanding])
        with self.settings():
            options = {"stream_results": True, "yield_per": 5000} if stream else {}
            result = self.conn.execute(stmt.execution_options(**options), params)
            try:
                for part in result.partitions(5000):
                    yield from part
            finally:
                result.close()

    def bucket_filter(self, selection: Selection) -> Any:
        """A WHERE clause for a row SELECT of this table: rows in ``selection``."""
        h, _ = self._hashes()
        where, params, expanding = self._where(selection)
        sql = f"({where.replace('h %', f'({h}) %')})"
        return sa.text(sql).bindparams(
            *[sa.bindparam(n, value=v, expanding=n in expanding) for n, v in params.items()]
        )

    def bucket_sql(self, selection: Selection) -> str:
        """PostgreSQL: :meth:`bucket_filter` as literal SQL for a driver statement
        (``COPY (SELECT …)`` takes no parameters); only integers become text."""
        assert self.dialect == "postgresql"
        h = _pg_key_hash(self._raw_key)
        clauses: list[str] = []
        for modulus, buckets in selection:
            if not buckets:
                continue
            if modulus == 1:
                clauses.append("TRUE")
                continue
            listed = ",".join(str(int(b)) for b in buckets)
            clauses.append(f"{h} % {int(modulus)} IN (SELECT unnest('{{{listed}}}'::int[]))")
        return " OR ".join(clauses) or "FALSE"

    @contextmanager
    def settings(self) -> Iterator[None]:
        """PostgreSQL's output settings fixed for this statement. A write session gets
        its own back afterwards (the time zone decides what a naive time it writes
        means); a read snapshot keeps them to its end (``restore=False``)."""
        if self.dialect != "postgresql" or self.conn.info.get(_FIXED) is self._tx():
            yield
            return
        before = _before(self.conn)
        _set(self.conn, dict(_PG_SETTINGS))
        if not self.restore:
            self.conn.info[_FIXED] = self._tx()
            yield
            return
        try:
            yield
        finally:
            _set(self.conn, dict(zip(_PG_SETTINGS, before, strict=True)))

    def _tx(self) -> object:
        return self.conn.get_transaction()


_FIXED = "ferry_digest_settings"
_BEFORE = "ferry_digest_settings_before"  # (transaction, the values settings() restores)


def _before(conn: sa.Connection) -> Sequence[Any]:
    """The transaction's own values of the settings digests fix (in
    ``_PG_SETTINGS``' order), read once per transaction: only this module changes
    them, and it always puts them back."""
    names = list(_PG_SETTINGS)
    held = conn.info.get(_BEFORE)
    if held is not None and held[0] is conn.get_transaction():
        return held[1]  # type: ignore[no-any-return]
    before = conn.execute(
        sa.text("SELECT " + ", ".join(f"current_setting(:n{i})" for i in range(len(names)))),
        {f"n{i}": n for i, n in enumerate(names)},
    ).one()
    conn.info[_BEFORE] = (conn.get_transaction(), tuple(before))
    return tuple(before)


def hold_settings(conn: sa.Connection) -> Sequence[Any] | None:
    """PostgreSQL's output settings fixed once for every digest statement of a stretch
    of reads in a write session (its plan), not set and restored around each; the
    session's own values, for :func:`release_settings`. None: nothing was changed."""
    tx = conn.get_transaction()
    if conn.dialect.name != "postgresql" or tx is None or conn.info.get(_FIXED) is tx:
        return None
    before = _before(conn)
    _set(conn, dict(_PG_SETTINGS))
    conn.info[_FIXED] = tx
    return before


def release_settings(conn: sa.Connection, before: Sequence[Any] | None, *, put_back: bool) -> None:
    """The end of :func:`hold_settings`' stretch: each digest statement sets its own
    again; with ``put_back`` the session's own values return (before it writes
    anything). A stretch that failed leaves them to the rollback that follows
    (``SET LOCAL`` ends with the transaction)."""
    if before is None:
        return
    conn.info.pop(_FIXED, None)
    if put_back:
        _set(conn, dict(zip(_PG_SETTINGS, before, strict=True)))


def _set(conn: sa.Connection, values: dict[str, str]) -> None:
    """``SET LOCAL`` of each setting, in one round trip."""
    calls = ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(len(values)))
    params = {f"n{i}": n for i, n in enumerate(values)}
    params |= {f"v{i}": v for i, v in enumerate(values.values())}
    conn.execute(sa.text(f"SELECT {calls}"), params)


def quote_name(dialect: str, name: str) -> str:
    """``name`` as a quoted identifier, always quoted, as the statement's final text
    (SQLAlchemy's preparer doubles ``%`` for the driver; raw statements must not)."""
    if dialect == "mysql":
        return "`" + name.replace("`", "``") + "`"
    return '"' + name.replace('"', '""') + '"'


def _quoter(conn: sa.Connection) -> Callable[[str], str]:
    """Identifier quoting for ``text()``, which doubles ``%`` itself and would take a
    ``:name`` inside a quoted name for a parameter (so ``:`` is escaped)."""
    dialect = conn.dialect.name

    def quoted(name: str) -> str:
        return quote_name(dialect, name).replace(":", "\\:")

    return quoted


def _pg_key_hash(names: Sequence[str]) -> str:
    """The 28-bit hash of a key: its columns' texts hashed as a row digest's are (the
    hash partitioning uses; stable), without making a record text of them."""
    parts = [
        f"COALESCE(hashtextextended({_pg_text(n)}, {i}), hashtextextended('', {-(i + 1)}))"
        for i, n in enumerate(names)
    ]
    return "((" + " # ".join(parts) + ") & 268435455)"


def _pg_text(quoted: str) -> str:
    """A column's text output, bytewise (a nondeterministic collation of the column
    would make ``hashtextextended`` hash equal-looking texts alike)."""
    return f'({quoted}::text COLLATE "C")'


def _pg_row_digest(texts: Sequence[str]) -> str:
    """A row's 60-bit digest from its columns' texts: each text hashed with a seed of
    its own position, NULL as the hash of an empty text under another seed (so NULL
    and ``''`` differ), combined by XOR. Each column's text output is faithful under
    the fixed settings, so equal digests mean equal values as read. Hashing the texts
    one by one spares PostgreSQL the record's text, which quotes and escapes every
    JSON document again (about twice the cost on NocoBase's UI schemas)."""
    if not texts:
        return "0"
    parts = [
        f"COALESCE(hashtextextended({t}, {i + 2}), hashtextextended('', {-(i + 2)}))"
        for i, t in enumerate(texts)
    ]
    return "((" + " # ".join(parts) + ") & 1152921504606846975)"


def env_filter(conn: sa.Connection, columns: Sequence[str]) -> Any:
    """A WHERE clause keeping the rows whose text may hold ``{{$env.NAME}}``: a superset
    of what the canonical scan finds (case-insensitive where the dialect is)."""
    return sa.text(f"({_env_text(conn, columns)}) LIKE :ferry_env").bindparams(ferry_env="%$env%")


def _env_text(conn: sa.Connection, columns: Sequence[str]) -> str:
    """One text holding every value of a row, for a LIKE that finds variable names."""
    dialect = conn.dialect.name
    quote = _quoter(conn)
    names = [quote(check_name(c, dialect, "column")) for c in columns]
    if dialect == "postgresql":
        return f"ROW({', '.join(names)}, NULL)::text"
    if dialect == "mysql":
        text = "CONCAT_WS('|', " + ", ".join(f"CAST({n} AS CHAR)" for n in names) + ")"
    else:
        text = " || ".join(f"COALESCE(CAST({n} AS TEXT), '')" for n in names)
    return text
