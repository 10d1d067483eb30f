"""Column types as a typed, allow-listed description: the only way a type reaches DDL.

A column's ``native`` spelling comes from places anyone with write access to Git or to
a backup store can edit (snapshots, backup manifests) or from a database Ferry only
reads. Pasted into ``CREATE TABLE`` it is SQL injection (``TEXT, x TEXT CHECK (…)``,
stacked statements on PostgreSQL). So a spelling is *parsed* with a small grammar per
dialect — name words from an allow-list, integer arguments, MySQL ENUM/SET labels,
modifiers such as ``UNSIGNED`` or ``WITH TIME ZONE``, PostgreSQL array brackets — and
DDL is rendered from the parsed parts, never from the text. Anything else is refused.

The grammar is hand-written rather than taken from a general SQL parser (sqlglot was
considered): a general parser accepts far more than a column type and would itself
have to be fenced in by an allow-list; this one accepts nothing it does not render.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from controller.errors import InvalidInput

DIALECTS = ("sqlite", "postgresql", "mysql")

MAX_TYPE_TEXT = 512
MAX_INT_ARG = 2**31 - 1
MAX_LABELS = 1024
MAX_LABEL_CHARS = 255
MAX_ARRAY_DIMS = 6


def _w(text: str) -> list[str]:
    return text.split()


# name → the most integer arguments it takes
_PG: dict[str, int] = {
    **dict.fromkeys(
        _w(
            "SMALLINT INTEGER INT INT2 INT4 INT8 BIGINT SERIAL SERIAL4 SERIAL8 BIGSERIAL "
            "SMALLSERIAL SERIAL2 REAL FLOAT4 FLOAT8 BOOLEAN BOOL TEXT "
            "BYTEA DATE JSON JSONB UUID INET CIDR MACADDR MACADDR8 MONEY TSVECTOR TSQUERY "
            "XML OID POINT LINE LSEG BOX PATH POLYGON CIRCLE INT4RANGE INT8RANGE NUMRANGE "
            "TSRANGE TSTZRANGE DATERANGE BPCHAR CITEXT NAME"
        ),
        0,
    ),
    "DOUBLE PRECISION": 0,
    "CHARACTER VARYING": 1,
    "BIT VARYING": 1,
    **dict.fromkeys(_w("VARCHAR CHAR CHARACTER BIT VARBIT FLOAT"), 1),
    **dict.fromkeys(_w("TIME TIMETZ TIMESTAMP TIMESTAMPTZ INTERVAL"), 1),
    **dict.fromkeys(_w("NUMERIC DECIMAL"), 2),
}

_MYSQL: dict[str, int] = {
    **dict.fromkeys(_w("TINYINT SMALLINT MEDIUMINT INT INTEGER BIGINT BIT YEAR"), 1),
    **dict.fromkeys(_w("BOOL BOOLEAN DATE JSON UUID INET4 INET6"), 0),
    **dict.fromkeys(_w("TINYBLOB MEDIUMBLOB LONGBLOB TINYTEXT MEDIUMTEXT LONGTEXT"), 0),
    **dict.fromkeys(_w("TEXT BLOB CHAR NCHAR VARCHAR NVARCHAR BINARY VARBINARY"), 1),
    **dict.fromkeys(_w("DATETIME TIMESTAMP TIME"), 1),
    **dict.fromkeys(_w("FLOAT DOUBLE REAL DECIMAL DEC NUMERIC FIXED"), 2),
    "DOUBLE PRECISION": 2,
    "NATIONAL CHAR": 1,
    "NATIONAL VARCHAR": 1,
    "CHARACTER": 1,
    "CHARACTER VARYING": 1,
    **dict.fromkeys(_w("GEOMETRY POINT LINESTRING POLYGON"), 0),
}
_MYSQL_LABELLED = frozenset({"ENUM", "SET"})

# SQLite keeps any declared type; Ferry accepts the words the usual tools declare.
_SQLITE_WORDS = frozenset(
    _w(
        "INT INTEGER TINYINT SMALLINT MEDIUMINT BIGINT UNSIGNED SIGNED BIG INT2 INT4 INT8 "
        "CHARACTER VARCHAR VARYING NCHAR NATIVE NVARCHAR TEXT CLOB BLOB REAL DOUBLE "
        "PRECISION FLOAT NUMERIC DECIMAL BOOLEAN BOOL DATE DATETIME TIME TIMESTAMP WITH "
        "WITHOUT ZONE JSON JSONB UUID CHAR STRING BINARY VARBINARY BYTEA ZEROFILL "
        "TINYTEXT MEDIUMTEXT LONGTEXT TINYBLOB MEDIUMBLOB LONGBLOB SERIAL BIGSERIAL "
        "TIMESTAMPTZ TIMETZ ENUM GEOMETRY INTERVAL MONEY"
    )
)

_PG_ZONED = frozenset({"TIME", "TIMESTAMP"})
_PG_ZONE_TAILS = (("WITH", "TIME", "ZONE"), ("WITHOUT", "TIME", "ZONE"))
_MYSQL_FLAGS = frozenset({"UNSIGNED", "SIGNED", "ZEROFILL", "BINARY"})


@dataclass(frozen=True)
class Token:
    kind: str  # word | num | str | punct
    text: str  # words and numbers as written; strings: the decoded value


_SPACE = re.compile(r"[ \t\r\n]+")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUM = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?")
_PUNCT = re.compile(r"::|[(),\[\]+-]")
_STD_STRING = re.compile(r"'((?:[^']|'')*)'")
_MYSQL_STRING = re.compile(r"'((?:[^'\\]|''|\\.)*)'", re.DOTALL)
_MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def _mysql_unescape(body: str) -> str:
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            nxt = body[i + 1]
            out.append(_MYSQL_ESCAPES.get(nxt, nxt))
            i += 2
        elif ch == "'":
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def tokenize(text: str, dialect: str, what: str) -> list[Token]:
    """Split ``text`` into words, numbers, string literals and a little punctuation;
    any other character (quotes of identifiers, ``;``, comments …) is refused."""
    tokens: list[Token] = []
    strings = _MYSQL_STRING if dialect == "mysql" else _STD_STRING
    pos = 0
    while pos < len(text):
        if m := _SPACE.match(text, pos):
            pos = m.end()
            continue
        if m := strings.match(text, pos):
            body = m.group(1)
            value = _mysql_unescape(body) if dialect == "mysql" else body.replace("''", "'")
            tokens.append(Token("str", value))
        elif m := _WORD.match(text, pos):
            tokens.append(Token("word", m.group()))
        elif m := _NUM.match(text, pos):
            tokens.append(Token("num", m.group()))
        elif m := _PUNCT.match(text, pos):
            tokens.append(Token("punct", m.group()))
        else:
            raise InvalidInput(f"{what}: unexpected character at position {pos + 1}")
        pos = m.end()
    return tokens


@dataclass(frozen=True)
class SqlType:
    """A parsed column type; :meth:`render` is the only text DDL receives."""

    dialect: str
    name: tuple[str, ...]  # the allow-listed words, as written
    args: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()  # MySQL ENUM / SET
    modifiers: tuple[str, ...] = ()  # validated words: UNSIGNED, WITH TIME ZONE, COLLATE x …
    array_dims: int = 0

    def render(self) -> str:
        text = " ".join(self.name)
        if self.labels:
            text += "(" + ",".join(mysql_string(label) for label in self.labels) + ")"
        elif self.args:
            text += "(" + ", ".join(str(a) for a in self.args) + ")"
        if self.modifiers:
            text += " " + " ".join(self.modifiers)
        return text + "[]" * self.array_dims


def mysql_string(value: str) -> str:
    """A MySQL string literal for an ENUM/SET label. Labels never hold a backslash (the
    parser refuses them), so the literal means the same with or without
    ``NO_BACKSLASH_ESCAPES``; the doubling below is a second fence, not the first."""
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


class _Cursor:
    def __init__(self, tokens: list[Token], what: str) -> None:
        self.tokens, self.i, self.what = tokens, 0, what

    def peek(self, kind: str | None = None, text: str | None = None) -> Token | None:
        if self.i >= len(self.tokens):
            return None
        tok = self.tokens[self.i]
        if kind is not None and tok.kind != kind:
            return None
        if text is not None and tok.text.upper() != text:
            return None
        return tok

    def take(self, kind: str | None = None, text: str | None = None) -> Token:
        tok = self.peek(kind, text)
        if tok is None:
            raise self.error()
        self.i += 1
        return tok

    def words(self) -> list[str]:
        out = []
        while (tok := self.peek("word")) is not None:
            out.append(tok.text)
            self.i += 1
        return out

    def done(self) -> bool:
        return self.i >= len(self.tokens)

    def error(self) -> InvalidInput:
        return InvalidInput(f"{self.what}: not a column type Ferry can create")


def _allowed(dialect: str) -> dict[str, int]:
    return _PG if dialect == "postgresql" else _MYSQL


def _split_name(words: list[str], dialect: str, cur: _Cursor) -> tuple[list[str], list[str]]:
    if dialect == "sqlite":
        if any(w.upper() not in _SQLITE_WORDS for w in words):
            raise cur.error()
        return words, []
    allowed = _allowed(dialect)
    for k in range(len(words), 0, -1):
        if " ".join(words[:k]).upper() in allowed or (
            k == 1 and dialect == "mysql" and words[0].upper() in _MYSQL_LABELLED
        ):
            return words[:k], words[k:]
    raise cur.error()


def _int_args(cur: _Cursor) -> tuple[int, ...]:
    args = []
    cur.take("punct", "(")
    while True:
        tok = cur.take("num")
        if not tok.text.isdigit() or len(tok.text) > 10 or int(tok.text) > MAX_INT_ARG:
            raise cur.error()
        args.append(int(tok.text))
        if cur.peek("punct", ")"):
            break
        cur.take("punct", ",")
    cur.take("punct", ")")
    return tuple(args)


def _labels(cur: _Cursor) -> tuple[str, ...]:
    labels = []
    cur.take("punct", "(")
    while True:
        label = cur.take("str").text
        if len(label) > MAX_LABEL_CHARS or not label.isprintable() or "\\" in label:
            raise cur.error()
        labels.append(label)
        if len(labels) > MAX_LABELS:
            raise cur.error()
        if cur.peek("punct", ")"):
            break
        cur.take("punct", ",")
    cur.take("punct", ")")
    return tuple(labels)


def _mysql_modifiers(words: list[str], cur: _Cursor) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(words):
        word = words[i].upper()
        if word in _MYSQL_FLAGS:
            out.append(word)
            i += 1
        elif word in {"CHARSET", "COLLATE"}:
            if i + 1 >= len(words):
                raise cur.error()
            out += [word, words[i + 1]]
            i += 2
        elif word == "CHARACTER" and i + 2 < len(words) and words[i + 1].upper() == "SET":
            out += ["CHARACTER SET", words[i + 2]]
            i += 3
        else:
            raise cur.error()
    return tuple(out)


def _modifiers(dialect: str, name: list[str], words: list[str], cur: _Cursor) -> tuple[str, ...]:
    if not words:
        return ()
    if dialect == "mysql":
        return _mysql_modifiers(words, cur)
    upper = tuple(w.upper() for w in words)
    if dialect == "postgresql":
        if " ".join(name).upper() in _PG_ZONED and upper in _PG_ZONE_TAILS:
            return (" ".join(upper),)
        raise cur.error()
    if any(w not in _SQLITE_WORDS for w in upper):
        raise cur.error()
    return tuple(words)


def _array_dims(cur: _Cursor, dialect: str) -> int:
    dims = 0
    while cur.peek("punct", "["):
        if dialect != "postgresql":
            raise cur.error()
        cur.take()
        if cur.peek("num"):
            cur.take()
        cur.take("punct", "]")
        dims += 1
    if dims > MAX_ARRAY_DIMS:
        raise cur.error()
    return dims


def parse_type(text: str, dialect: str, what: str = "column type") -> SqlType:
    """The typed form of a native type spelling of ``dialect``; refused when it is not
    one Ferry can render exactly (``what`` names the column in the message)."""
    if dialect not in DIALECTS:
        raise InvalidInput(f"{what}: unsupported dialect")
    if not isinstance(text, str) or not text.strip() or len(text) > MAX_TYPE_TEXT:
        raise InvalidInput(f"{what}: not a column type Ferry can create")
    cur = _Cursor(tokenize(text, dialect, what), what)
    head = cur.words()
    name, before = _split_name(head, dialect, cur)
    args: tuple[int, ...] = ()
    labels: tuple[str, ...] = ()
    if cur.peek("punct", "("):
        if before and dialect != "sqlite":
            raise cur.error()
        labelled = dialect == "mysql" and " ".join(name).upper() in _MYSQL_LABELLED
        if labelled:
            labels = _labels(cur)
        else:
            args = _int_args(cur)
    elif dialect == "mysql" and " ".join(name).upper() in _MYSQL_LABELLED:
        raise cur.error()
    after = cur.words()
    if before and after:
        raise cur.error()
    limit = len(args) if dialect == "sqlite" else _allowed(dialect).get(" ".join(name).upper(), 0)
    if len(args) > min(limit, 2):
        raise cur.error()
    modifiers = _modifiers(dialect, name, before or after, cur)
    dims = _array_dims(cur, dialect)
    if not cur.done():
        raise cur.error()
    return SqlType(dialect, tuple(name), args, labels, modifiers, dims)


def parses(text: str, dialect: str) -> bool:
    try:
        parse_type(text, dialect)
    except InvalidInput:
        return False
    return True
