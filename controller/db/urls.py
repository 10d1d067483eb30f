"""Database URLs: parse and check them before anything connects, and never print a secret.

A URL is the one input that carries a password, and it reaches error messages, the
Environment's status and events, and logs. So every URL is shown only through
:func:`redact` (the password in the user info *and* every query parameter whose name
says it holds a secret: ``password``, ``passwd``, ``pwd``, ``sslpassword``, ``token``,
``secret``, ``sslkey`` …, case-insensitive), and every driver message through
:func:`scrub`, which also removes, literally, each secret of every URL this process has
parsed: a driver may echo a host or an option it could not use, and a password with an
unencoded ``@`` ends up in the host part.

:func:`parse` refuses what SQLAlchemy or the driver would otherwise turn into a
traceback or a surprise: a non-numeric or out-of-range port, an ``@`` left in the host
(an unencoded ``@`` in the password), an unsupported dialect or driver, and SQLite
query options the driver would silently ignore.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import quote, quote_plus, unquote

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from controller.errors import InvalidInput

SUPPORTED = {"sqlite": "sqlite", "postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
# The drivers Ferry ships; a URL without one gets it (SQLAlchemy's defaults, psycopg2
# and mysqlclient, are not installed).
DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg", "mysql": "pymysql"}
SQLITE_OPTIONS = frozenset({"timeout"})
HIDDEN = "***"

_SECRET_KEY = (
    r"[\w.-]*(?:pass|pwd|secret|token|sslkey|api[_-]?key|private[_-]?key|credential)[\w.-]*"
)
# ``key=value`` / ``key: value`` / ``"key": "value"`` where the key names a secret.
_SECRET_PARAM = re.compile(
    rf"""(?P<key>\b{_SECRET_KEY}["']?\s*[=:]\s*)(?!(?:YES|NO)\))"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s&;,'"#)]+)""",
    re.IGNORECASE,
)
# ``scheme://user:password@``: the password runs to the last ``@`` of the word, so an
# unencoded ``@`` inside it does not leave a tail behind.
_USERINFO = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)\S*@", re.IGNORECASE)
# ``user:password@host`` without a scheme (a URL missing its ``dialect://``).
_BARE_USERINFO = re.compile(r"(?P<head>(?<![\w/:.@-])[\w.+-]+:)[^\s@/:]+@(?=[\w\[])")
_SECRET_NAME = re.compile(rf"^{_SECRET_KEY}$", re.IGNORECASE)

_seen_lock = threading.Lock()
_seen: set[str] = set()


def is_secret_parameter(name: str) -> bool:
    """True when a query parameter of this name holds a secret (its value is hidden)."""
    return bool(_SECRET_NAME.match(name))


def scrub(text: str) -> str:
    """``text`` without passwords: in URL user info, ``key=value`` pairs whose key names
    a secret, and every secret of a URL this process has parsed."""
    with _seen_lock:
        known = sorted(_seen, key=len, reverse=True)
    for secret in known:
        text = text.replace(secret, HIDDEN)
    text = _USERINFO.sub(lambda m: f"{m.group('head')}{HIDDEN}@", text)
    text = _BARE_USERINFO.sub(lambda m: f"{m.group('head')}{HIDDEN}@", text)
    return _SECRET_PARAM.sub(lambda m: f"{m.group('key')}{HIDDEN}", text)


def redact(url: str | URL) -> str:
    """A URL safe to print: password and secret query parameters replaced by ``***``."""
    if isinstance(url, URL):
        _remember(url)
        return scrub(url.render_as_string(hide_password=True))
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return scrub(url)
    _remember(parsed)
    return scrub(parsed.render_as_string(hide_password=True))


def _remember(url: URL) -> None:
    """Keep the URL's secrets (as written, encoded and decoded) to scrub them anywhere."""
    values = [url.password] if url.password else []
    for key, value in url.query.items():
        if is_secret_parameter(key):
            values += [value] if isinstance(value, str) else list(value)
    found: set[str] = set()
    for value in values:
        text = str(value)
        if len(text) >= 3:  # shorter strings would mangle every message
            found |= {text, quote(text, safe=""), quote_plus(text), unquote(text)}
    if found:
        with _seen_lock:
            _seen.update(found)


def parse(url: str) -> URL:
    """The URL, checked: supported dialect and driver, a valid port, a plain host name,
    SQLite options the driver honours. Raises :class:`InvalidInput` otherwise."""
    shown = redact(url)
    try:
        parsed = make_url(url)
    except ValueError as err:  # SQLAlchemy's int() of the port
        raise InvalidInput(f"{shown}: the port is not a number") from err
    except (ArgumentError, TypeError) as err:
        raise InvalidInput(
            f"not a database URL: {shown} (expected dialect+driver://user:password@host:port/"
            "database, or sqlite:///path)"
        ) from err
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED:
        raise InvalidInput(
            f"unsupported database {backend!r} in {shown} "
            "(supported: sqlite, postgresql, mysql/mariadb)"
        )
    dialect = SUPPORTED[backend]
    driver = parsed.get_driver_name() if "+" in parsed.drivername else DRIVERS[dialect]
    if driver != DRIVERS[dialect]:
        raise InvalidInput(
            f"unsupported driver {driver!r} in {shown} (use {backend}+{DRIVERS[dialect]}, "
            f"or {backend}:// for it)"
        )
    _check_address(parsed, dialect, shown)
    if dialect == "sqlite":
        return parsed
    return parsed.set(drivername=f"{backend}+{driver}")


def _check_address(url: URL, dialect: str, shown: str) -> None:
    if url.port is not None and not 0 < url.port < 65536:
        raise InvalidInput(f"{shown}: port {url.port} is out of range (1-65535)")
    if url.host and re.search(r"[@/?#\s]", url.host):
        raise InvalidInput(
            f"{shown}: the host name is not valid (a password with @, / or ? must be "
            "percent-encoded, e.g. @ as %40)"
        )
    if dialect != "sqlite":
        return
    if url.username or url.password or url.host or url.port:
        raise InvalidInput(f"{shown}: a SQLite URL is sqlite:///relative/path or sqlite:////abs")
    unknown = sorted(set(url.query) - SQLITE_OPTIONS)
    if unknown:
        raise InvalidInput(
            f"{shown}: SQLite option(s) {', '.join(unknown)} not supported "
            f"(supported: {', '.join(sorted(SQLITE_OPTIONS))})"
        )


def dialect_of(url: str) -> str:
    """``sqlite``, ``postgresql`` or ``mysql`` for a URL :func:`parse` accepts."""
    return SUPPORTED[parse(url).get_backend_name()]


def with_password(url: str, password: str | None) -> str:
    """``url`` with ``password`` set, escaped as the URL needs (a Job's container gets the
    password from a Secret apart from the URL, so neither lands in the Job's spec)."""
    if not password:
        return url
    return parse(url).set(password=password).render_as_string(hide_password=False)
