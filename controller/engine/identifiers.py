"""Names of tables, columns and indexes: checked before they reach a database.

Names are always quoted by the dialect's identifier quoting when rendered, so they
cannot end a statement; what is checked here is what quoting cannot fix: empty names,
control characters (NUL ends a C string in the server, a newline forges log lines),
and lengths the server would silently truncate (PostgreSQL cuts at 63 bytes, so two
long names could become one).
"""

from __future__ import annotations

import unicodedata

from controller.errors import InvalidInput

# The longest name each dialect keeps as given (PostgreSQL: bytes; MySQL: characters).
_PG_BYTES = 63
_MYSQL_CHARS = 64
_SQLITE_CHARS = 255  # SQLite has no limit; Ferry keeps names reviewable in file names


def name_problem(name: object, dialect: str | None) -> str | None:
    """Why ``name`` cannot be used on ``dialect`` (None: every dialect), or None."""
    if not isinstance(name, str):
        return "is not a string"
    if not name or not name.strip():
        return "is empty"
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in name):
        return "contains a control character"
    limits = {
        "postgresql": len(name.encode("utf-8")) > _PG_BYTES,
        "mysql": len(name) > _MYSQL_CHARS or name != name.rstrip(" "),
        "sqlite": len(name) > _SQLITE_CHARS,
    }
    if dialect is None:
        if len(name) > _SQLITE_CHARS:
            return f"is longer than {_SQLITE_CHARS} characters"
        return None
    if limits.get(dialect, True):
        return f"is too long or malformed for {dialect}"
    return None


def check_name(name: object, dialect: str | None, what: str) -> str:
    """``name`` if it is usable, else InvalidInput naming ``what`` (never the value,
    which may hold control characters)."""
    problem = name_problem(name, dialect)
    if problem is not None:
        raise InvalidInput(f"{what}: the name {problem}")
    assert isinstance(name, str)
    return name
