"""PostgreSQL's fast write path: rows staged with COPY, then applied in a few statements.

Inserts, updates and deletes of one table are copied into temporary tables (``ON
COMMIT DROP``, created from the target's own column types ``WITH NO DATA``) on the
write session's connection, so in its transaction; then one ``DELETE … USING``, one
``INSERT … SELECT`` and one ``UPDATE … FROM`` apply them. Nothing reaches the target
before the writer has checked every planned row against its digest: a failure before
the final statements leaves the target as it was, and after them the transaction
still rolls everything back. Names are quoted identifiers; values travel in COPY.
Statements go to the driver's cursor without parameters, so no character of a name
(``%``, ``:``) is ever taken for a placeholder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from controller.db.digests import quote_name
from controller.engine.identifiers import check_name

_INSERT, _UPDATE, _DELETE = "ferry_stage_insert", "ferry_stage_update", "ferry_stage_delete"


class Staging:
    def __init__(
        self,
        conn: sa.Connection,
        table: str,
        columns: Sequence[str],
        key: Sequence[str],
        update_columns: Sequence[str],
    ) -> None:
        self.conn = conn
        dialect = conn.dialect.name

        def quote(name: str) -> str:
            return quote_name(dialect, check_name(name, dialect, "name"))

        self.quote = quote
        self.table = quote(table)
        self.columns = list(columns)
        self.key = list(key)
        self.update_columns = list(update_columns)
        self.staged: set[str] = set()
        self.raw: Any = conn.connection.driver_connection

    def _run(self, sql: str) -> None:
        with self.raw.cursor() as cur:
            cur.execute(sql)

    def _create(self, name: str, select: str) -> None:
        if name in self.staged:
            return
        self._run(f"DROP TABLE IF EXISTS {name}")
        self._run(
            f"CREATE TEMP TABLE {name} ON COMMIT DROP AS SELECT {select} "
            f"FROM {self.table} WITH NO DATA"
        )
        self.staged.add(name)

    def _keys_as(self) -> list[str]:
        return [f"{self.quote(c)} AS ferry_k{i}" for i, c in enumerate(self.key)]

    def _copy(self, name: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self.raw.cursor() as cur, cur.copy(f"COPY {name} FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def inserts(self, rows: Sequence[dict[str, Any]]) -> None:
        self._create(_INSERT, ", ".join(self.quote(c) for c in self.columns))
        self._copy(_INSERT, [[r[c] for c in self.columns] for r in rows])

    def updates(self, params: Sequence[dict[str, Any]]) -> None:
        """``params`` as the row-by-row UPDATE takes them: ``k_i`` (the target's key),
        ``v_<column>``."""
        select = [*self._keys_as(), *(self.quote(c) for c in self.update_columns)]
        self._create(_UPDATE, ", ".join(select))
        keys = [f"k_{i}" for i in range(len(self.key))]
        values = [f"v_{c}" for c in self.update_columns]
        self._copy(_UPDATE, [[p[k] for k in keys + values] for p in params])

    def deletes(self, keys: Sequence[Sequence[Any]]) -> None:
        """Delete the rows with these target keys now (before any insert may need a
        unique value they hold)."""
        self._create(_DELETE, ", ".join(self._keys_as()))
        self._copy(_DELETE, keys)
        self._run(f"DELETE FROM {self.table} AS t USING {_DELETE} AS s WHERE {self._match()}")
        self._drop(_DELETE)

    def _match(self) -> str:
        return " AND ".join(f"t.{self.quote(c)} = s.ferry_k{i}" for i, c in enumerate(self.key))

    def apply(self) -> None:
        """The staged inserts and updates, in one statement each."""
        if _INSERT in self.staged:
            cols = ", ".join(self.quote(c) for c in self.columns)
            self._run(f"INSERT INTO {self.table} ({cols}) SELECT {cols} FROM {_INSERT}")
            self._drop(_INSERT)
        if _UPDATE in self.staged:
            sets = ", ".join(f"{self.quote(c)} = s.{self.quote(c)}" for c in self.update_columns)
            self._run(
                f"UPDATE {self.table} AS t SET {sets} FROM {_UPDATE} AS s WHERE {self._match()}"
            )
            self._drop(_UPDATE)

    def _drop(self, name: str) -> None:
        self._run(f"DROP TABLE {name}")
        self.staged.discard(name)
