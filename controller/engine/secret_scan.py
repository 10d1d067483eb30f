"""Find credentials written literally into configuration rows.

Configuration can carry credentials: an external data source's password, a storage's
secret access key, an authenticator's client secret. NocoBase's way to keep them out of
configuration is a variable reference (``{{$env.NAME}}``). Ferry refuses to write a
literal credential into an exported snapshot (a Git repository); this module finds them.
Only paths are reported, never values.

Two independent signals, because each misses what the other sees:

- *Names*: a key is split into words (``secretAccessKey``, ``secret_key``,
  ``X-Api-Key`` → ``secret access key`` …) and is a credential when its **last** word
  is one (``password``, ``pwd``, ``secret``, ``token``, ``credentials`` …) or it ends
  in ``key`` qualified by ``api``, ``private``, ``secret``, ``encryption``,
  ``signing`` …. So ``passwordPolicy``, ``tokenExpiry`` and ``totalTokens`` are not,
  nor are switches and limits (``enableChangePassword``, ``minPasswordLength``).
  Below a container called ``credentials`` or ``secrets``, every string is one.
- *Shapes*, in any string under any name: a URL with ``user:password@``, an
  ``Authorization``/``Bearer`` header value, a PEM private key, and the token formats of
  AWS, GitHub, Slack, Stripe and Google.

Values that cannot be a credential are never reported: empty strings, variable
references, masks such as ``******``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

_ENV_REF = re.compile(r"^\s*\{\{\s*\$env\.[A-Za-z_][A-Za-z0-9_]*\s*\}\}\s*$")
_ENV_ANYWHERE = re.compile(r"\{\{\s*\$env\.[A-Za-z_][A-Za-z0-9_]*\s*\}\}")
_MASK = re.compile(r"^\s*[*•xX#.]{3,}\s*$")
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")

_SECRET_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "passphrase",
        "secret",
        "token",
        "credential",
        "credentials",
        "apikey",
        "privatekey",
        "secretkey",
        "accesstoken",
        "authtoken",
        "authorization",
    }
)
# A first word that makes the key a switch or a rule about the secret, not the secret.
_SWITCHES = frozenset(
    {"enable", "enabled", "disable", "disabled", "allow", "require", "required", "show"}
    | {"hide", "use", "has", "is", "can", "should", "must", "min", "max"}
)
_KEY_QUALIFIERS = frozenset(
    {"api", "private", "secret", "encryption", "signing", "sign", "hmac", "master", "access"}
)
_CONTAINERS = frozenset({"credentials", "secrets"})
# ``accessKeyId`` names the public half of an AWS key pair, but configurations carry it
# beside the secret one; it is reported so the pair moves to variables together.
_ID_OF = frozenset({"accesskey"})

_SHAPES = (
    # user:password@ in a URL (a variable reference as the password is fine)
    re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:(?!\{\{)[^\s/@]+@", re.IGNORECASE),
    re.compile(r"\bauthorization\s*[:=]\s*\S+\s+\S{8,}", re.IGNORECASE),
    re.compile(r"\bbearer\s+(?=[\w.~+/=-]*\d)[\w.~+/=-]{16,}", re.IGNORECASE),
    re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
    re.compile(r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    re.compile(r"\b[sr]k_live_[A-Za-z0-9]{16,}"),
    re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
)


def _words(name: str) -> list[str]:
    return [w.lower() for w in _WORDS.findall(name)]


def is_secret_name(name: str) -> bool:
    """True when a key of this name holds a credential (see the module doc)."""
    words = _words(name)
    if not words or (len(words) > 1 and words[0] in _SWITCHES):
        return False
    last = words[-1]
    if last in _SECRET_WORDS:
        return True
    before = words[-2] if len(words) > 1 else ""
    if last == "key" and before in _KEY_QUALIFIERS:
        return True
    return last == "id" and "".join(words[-3:-1]) in _ID_OF


def _is_container(name: str) -> bool:
    words = _words(name)
    return bool(words) and words[-1] in _CONTAINERS


def _literal(value: Any) -> bool:
    return (
        isinstance(value, str)
        and value.strip() != ""
        and not _ENV_REF.match(value)
        and not _MASK.match(value)
    )


def has_secret_shape(text: str) -> bool:
    """True when ``text`` contains something shaped like a credential."""
    text = _ENV_ANYWHERE.sub("", text)
    return any(shape.search(text) for shape in _SHAPES)


def _walk(value: Any, path: str, inside: bool = False) -> Iterator[str]:
    if isinstance(value, dict):
        for key, child in value.items():
            where = f"{path}.{key}"
            if (inside or is_secret_name(str(key))) and _literal(child):
                yield where
            else:
                yield from _walk(child, where, inside or _is_container(str(key)))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            where = f"{path}[{i}]"
            if inside and _literal(child):
                yield where
            else:
                yield from _walk(child, where, inside)
    elif isinstance(value, str) and has_secret_shape(value):
        yield path


def secret_paths(column: str, value: Any, is_json: bool) -> list[str]:
    """Paths inside one column value that hold a literal credential."""
    if value is None:
        return []
    if is_json and isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [column] if has_secret_shape(value) else []
    if isinstance(value, str):
        secret = (is_secret_name(column) and _literal(value)) or has_secret_shape(value)
        return [column] if secret else []
    return list(_walk(value, column, inside=False))
