"""Column defaults as typed values: a literal, or one of a few known expressions.

A default is SQL text where it is read (``'x'::character varying``, ``now()``,
``current_timestamp(6) ON UPDATE current_timestamp(6)``). Pasted into DDL it runs
whatever it says, so it is parsed into a :class:`ColumnDefault` — a literal (string,
number, boolean, NULL; PostgreSQL casts are dropped, the column's type applies), an
expression from a fixed table (``CURRENT_TIMESTAMP`` and its spellings, ``now()``,
``gen_random_uuid()`` …), or the column's own serial sequence — and DDL renders it from
that description: literals through the driver dialect's quoting, expressions from the
table below, never from the text read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from controller.engine.sqltypes import DIALECTS, Token, parse_type, tokenize
from controller.errors import InvalidInput

MAX_DEFAULT_TEXT = 65_536

# Expressions by dialect: normalized token text → what DDL says.
_TIMESTAMPS = {
    "current_timestamp": "CURRENT_TIMESTAMP",
    "current_date": "CURRENT_DATE",
    "current_time": "CURRENT_TIME",
    "localtimestamp": "LOCALTIMESTAMP",
    "localtime": "LOCALTIME",
}
_EXPRESSIONS: dict[str, dict[str, str]] = {
    "postgresql": {
        **_TIMESTAMPS,
        "now()": "now()",
        "transaction_timestamp()": "transaction_timestamp()",
        "statement_timestamp()": "statement_timestamp()",
        "clock_timestamp()": "clock_timestamp()",
        "gen_random_uuid()": "gen_random_uuid()",
        "uuid_generate_v4()": "uuid_generate_v4()",
    },
    "mysql": {
        **_TIMESTAMPS,
        "current_timestamp()": "CURRENT_TIMESTAMP()",
        "now()": "NOW()",
        "curdate()": "CURDATE()",
        "curtime()": "CURTIME()",
        "utc_timestamp()": "UTC_TIMESTAMP()",
        "uuid()": "UUID()",
    },
    "sqlite": {
        "current_timestamp": "CURRENT_TIMESTAMP",
        "current_date": "CURRENT_DATE",
        "current_time": "CURRENT_TIME",
        "datetime('now')": "(datetime('now'))",
        "date('now')": "(date('now'))",
        "time('now')": "(time('now'))",
        "strftime('%Y-%m-%d %H:%M:%f','now')": "(strftime('%Y-%m-%d %H:%M:%f', 'now'))",
        "strftime('%Y-%m-%dT%H:%M:%fZ','now')": "(strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
    },
}
# Expressions that take a fractional-seconds precision: current_timestamp(6), now(3) …
_PRECISION = {
    "postgresql": {"current_timestamp", "current_time", "localtimestamp", "localtime"},
    "mysql": {"current_timestamp", "now", "localtimestamp", "localtime", "curtime"},
    "sqlite": set(),
}
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True)
class ColumnDefault:
    """``kind``: ``literal`` (``value`` is str, int, Decimal, bool or None),
    ``expression`` (``sql`` from Ferry's own table) or ``sequence`` (the column's own
    serial, PostgreSQL)."""

    kind: str
    value: str | int | Decimal | bool | None = None
    sql: str = ""  # expression / sequence: Ferry's rendering, never the input
    on_update: str = ""  # MySQL ``ON UPDATE`` expression, Ferry's rendering


def _norm(tokens: list[Token]) -> str:
    out = []
    for tok in tokens:
        if tok.kind == "str":
            out.append("'" + tok.text + "'")
        elif tok.kind == "word":
            out.append(tok.text.lower())
        else:
            out.append(tok.text)
    return "".join(out)


def _closes_at_end(tokens: list[Token]) -> bool:
    """Whether the ``(`` that opens ``tokens`` is closed by its last token."""
    depth = 0
    for i, tok in enumerate(tokens):
        if tok.kind == "punct" and tok.text == "(":
            depth += 1
        elif tok.kind == "punct" and tok.text == ")":
            depth -= 1
            if depth == 0:
                return i == len(tokens) - 1
    return False


def _strip_parens(tokens: list[Token]) -> list[Token]:
    while len(tokens) >= 2 and tokens[0].text == "(" and _closes_at_end(tokens):
        tokens = tokens[1:-1]
    return tokens


def _expression(tokens: list[Token], dialect: str) -> str | None:
    known = _EXPRESSIONS[dialect]
    text = _norm(tokens)
    if text in known:
        return known[text]
    m = re.fullmatch(r"([a-z_]+)\(([0-6])\)", text)
    if m and m.group(1) in _PRECISION[dialect]:
        base = known.get(m.group(1)) or known.get(m.group(1) + "()", "").rstrip("()")
        return f"{base.rstrip('()')}({m.group(2)})" if base else None
    return None


def _pg_casts(tokens: list[Token], what: str) -> list[Token]:
    """Drop PostgreSQL ``::type`` casts after a literal (each must be a known type)."""
    if not any(t.text == "::" for t in tokens):
        return tokens
    at = next(i for i, t in enumerate(tokens) if t.text == "::")
    rest = tokens[at:]
    while rest:
        if rest[0].text != "::":
            raise _bad(what)
        end = next((i for i in range(1, len(rest)) if rest[i].text == "::"), len(rest))
        part = rest[1:end]
        if any(t.kind == "str" for t in part):
            raise _bad(what)
        spelled = " ".join(t.text for t in part)  # parse_type tokenizes again
        if spelled.lower() == "regclass":
            raise _bad(what)  # only the column's own sequence, handled above
        try:
            parse_type(spelled, "postgresql", what)
        except InvalidInput:
            raise _bad(what) from None
        rest = rest[end:]
    return tokens[:at]


def _literal(tokens: list[Token], what: str) -> ColumnDefault | None:
    tokens = _strip_parens(tokens)
    if len(tokens) == 1 and tokens[0].kind == "str":
        value = tokens[0].text
        if "\x00" in value:
            raise _bad(what)
        return ColumnDefault("literal", value)
    sign = ""
    if len(tokens) == 2 and tokens[0].text in ("-", "+") and tokens[1].kind == "num":
        sign, tokens = ("-" if tokens[0].text == "-" else ""), tokens[1:]
    if len(tokens) == 1 and tokens[0].kind == "num":
        text = sign + tokens[0].text
        if not _NUMBER.fullmatch(text) or len(text) > 100:
            raise _bad(what)
        if re.fullmatch(r"-?\d+", text):
            return ColumnDefault("literal", int(text))
        return ColumnDefault("literal", Decimal(text))
    if len(tokens) == 1 and tokens[0].kind == "word":
        word = tokens[0].text.lower()
        if word in ("true", "false"):
            return ColumnDefault("literal", word == "true")
        if word == "null":
            return ColumnDefault("literal", None)
    return None


def _serial_name(table: str, column: str) -> str:
    """PostgreSQL's name for a serial column's sequence (``makeObjectName``: the
    longer of the two names is shortened until the whole fits in 63 bytes)."""
    a, b = table.encode(), column.encode()
    avail = 63 - len(b"seq") - 2
    while len(a) + len(b) > avail:
        if len(a) > len(b):
            a = a[:-1]
        else:
            b = b[:-1]
    name = (a.decode(errors="ignore") + "_" + b.decode(errors="ignore") + "_seq").encode()
    return name.decode(errors="ignore")


def _regclass_name(literal: str) -> str:
    if literal.startswith('"') and literal.endswith('"') and len(literal) >= 2:
        return literal[1:-1].replace('""', '"')
    return literal.lower() if literal.isascii() else literal


def _sequence(tokens: list[Token], table: str, column: str) -> ColumnDefault | None:
    text = [t.text.lower() if t.kind == "word" else t.text for t in tokens]
    if not (len(tokens) == 6 and text[:2] == ["nextval", "("] and tokens[2].kind == "str"):
        return None
    if text[3:] != ["::", "regclass", ")"]:
        return None
    name = _regclass_name(tokens[2].text.removeprefix("public."))
    own = _serial_name(table, column)
    if name != own and not re.fullmatch(re.escape(own) + r"\d{1,3}", name):
        return None
    quoted = '"' + name.replace('"', '""') + '"'
    return ColumnDefault("sequence", sql=f"nextval('{quoted}'::regclass)")


def _bad(what: str) -> InvalidInput:
    return InvalidInput(f"{what}: not a default Ferry can create (a literal or a known expression)")


def _mysql_on_update(tokens: list[Token], what: str) -> tuple[list[Token], str]:
    words = [t.text.upper() if t.kind == "word" else "" for t in tokens]
    for i in range(len(tokens) - 1):
        if words[i] == "ON" and words[i + 1] == "UPDATE":
            update = _expression(tokens[i + 2 :], "mysql")
            if update is None:
                raise _bad(what)
            return tokens[:i], update
    return tokens, ""


def parse_default(
    text: str, dialect: str, *, table: str, column: str, what: str = "default"
) -> ColumnDefault:
    """The typed form of a column default read from ``dialect``; refused unless it is
    a literal, an allow-listed expression or the column's own serial sequence."""
    if dialect not in DIALECTS:
        raise InvalidInput(f"{what}: unsupported dialect")
    if not isinstance(text, str) or len(text) > MAX_DEFAULT_TEXT or not text.strip():
        raise _bad(what)
    tokens = tokenize(text, dialect, what)
    on_update = ""
    if dialect == "mysql":
        tokens, on_update = _mysql_on_update(tokens, what)
    if dialect == "postgresql":
        seq = _sequence(tokens, table, column)
        if seq is not None:
            return seq
        tokens = _pg_casts(tokens, what)
    literal = _literal(tokens, what)
    if literal is not None:
        return ColumnDefault(literal.kind, literal.value, on_update=on_update)
    expr = _expression(_strip_parens(tokens), dialect)
    if expr is None:
        raise _bad(what)
    return ColumnDefault("expression", sql=expr, on_update=on_update)


def accepts(text: str, dialect: str, table: str, column: str) -> bool:
    try:
        parse_default(text, dialect, table=table, column=column)
    except InvalidInput:
        return False
    return True
