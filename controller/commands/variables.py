"""Write an Environment's variables where NocoBase reads them.

Plain variables are stored as they are (NocoBase type ``default``); secrets are
encrypted with the application's key exactly as NocoBase does. A value that already
decrypts to the desired secret is left alone, so reconciling twice changes nothing.
Only names ever appear in results, never values.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from controller.db import variables as vars_table
from controller.db.connect import classified
from controller.db.database import Database
from controller.engine import nocobase_secrets
from controller.errors import InvalidInput

NOCOBASE_TYPE = {"plain": "default", "secret": "secret"}


@dataclass(frozen=True)
class Variable:
    name: str
    type: str  # plain | secret
    value: str


@dataclass(frozen=True)
class VariableSync:
    created: tuple[str, ...]
    updated: tuple[str, ...]
    unchanged: tuple[str, ...]


def _same(current: tuple[str | None, str | None] | None, want: Variable, key: bytes | None) -> bool:
    if current is None or current[0] != NOCOBASE_TYPE[want.type]:
        return False
    if want.type == "plain":
        return current[1] == want.value
    return (
        key is not None
        and current[1] is not None
        and nocobase_secrets.decrypt(key, current[1]) == want.value
    )


def sync_variables(url: str, desired: Sequence[Variable], key: bytes | None) -> VariableSync:
    if any(v.type == "secret" for v in desired) and key is None:
        raise InvalidInput(
            "secret variables need the application's encryption key (spec.encryptionKeyFrom)"
        )
    db = Database(url)
    try:
        with db.writer() as session, classified("writing environment variables"):
            conn = session.conn
            table = vars_table.table_name(conn)
            if table is None:
                raise InvalidInput(
                    "the database has no environmentVariables table (is the "
                    "application's environment-variables plugin enabled?)"
                )
            current = vars_table.read(conn, table)
            created: list[str] = []
            updated: list[str] = []
            unchanged: list[str] = []
            writes: list[tuple[str, str, str]] = []
            for var in desired:
                if _same(current.get(var.name), var, key):
                    unchanged.append(var.name)
                    continue
                value = var.value
                if var.type == "secret":
                    assert key is not None
                    value = nocobase_secrets.encrypt(key, var.value, os.urandom(16))
                writes.append((var.name, NOCOBASE_TYPE[var.type], value))
                (updated if var.name in current else created).append(var.name)
            vars_table.upsert(conn, table, writes, set(current))
    finally:
        db.dispose()
    return VariableSync(tuple(created), tuple(updated), tuple(unchanged))
