"""What every custom resource view shares: identity, Secret references, a strict reader.

Each kind's module declares ``FIELDS_READ``, the schema paths its parser may read
(``spec.database.url``, ``spec.variables[].name``), and parses through a
:class:`Node`, which refuses to read a path that is not declared and rejects keys
that are not declared. So the declared list *is* the parser's vocabulary, and
``tests/unit/test_crd_schemas.py`` checks it against ``crds/*.yaml``: a field
the operator reads cannot be missing from (and so pruned by) the CRD.

A body from the API server has already passed the CRD's schema and CEL rules; the
same checks here give files read by the command line the same messages, and keep
the operator honest if it is ever pointed at an older CRD.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from controller.errors import InvalidInput

GROUP = "ferry.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

# RFC 1123 subdomain: the names of Kubernetes objects the spec refers to.
OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# A Secret data key.
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
# A table name or glob, as in ``controller.api.rules``.
TABLE_GLOB = re.compile(r"^[A-Za-z0-9_$.*?\[\]!-]+$")

E = TypeVar("E", bound=enum.Enum)


def schema_paths(fields: Iterable[str]) -> frozenset[str]:
    """Every declared path plus its parents (``spec.a.b`` declares ``spec.a`` too)."""
    out: set[str] = set()
    for path in fields:
        parts = path.split(".")
        for i in range(1, len(parts) + 1):
            out.add(".".join(parts[:i]).removesuffix("[]"))
            out.add(".".join(parts[:i]))
    return frozenset(out)


@dataclass(frozen=True)
class Node:
    """A mapping found at schema ``path`` (``where`` is its place in this body)."""

    data: Mapping[str, Any]
    path: str
    where: str
    fields: frozenset[str]

    @classmethod
    def root(cls, body: Mapping[str, Any], kind: str, fields: Iterable[str]) -> Node:
        if not isinstance(body, Mapping):
            raise InvalidInput(f"{kind}: expected a mapping, got {type(body).__name__}")
        spec = body.get("spec")
        if not isinstance(spec, Mapping):
            raise InvalidInput(f"{kind}: spec is missing or not a mapping")
        node = cls(spec, "spec", "spec", schema_paths(fields))
        node.check_keys()
        return node

    def _declared(self, key: str) -> str:
        path = f"{self.path}.{key}"
        if path not in self.fields:
            # A programming error, not bad input: the parser reads an undeclared path.
            raise AssertionError(f"{path} is read but not declared in FIELDS_READ")
        return path

    def check_keys(self) -> None:
        known = sorted(
            k.rsplit(".", 1)[1]
            for k in self.fields
            if _parent(k) == self.path and not k.endswith("[]")
        )
        unknown = sorted(str(k) for k in self.data if f"{self.path}.{k}" not in self.fields)
        if unknown:
            raise InvalidInput(
                f"{self.where}: unknown field(s) {', '.join(unknown)} (allowed: {', '.join(known)})"
            )

    def has(self, key: str) -> bool:
        self._declared(key)
        return self.data.get(key) is not None

    def raw(self, key: str) -> Any:
        self._declared(key)
        return self.data.get(key)

    def child(self, key: str, *, required: bool = False) -> Node | None:
        path = self._declared(key)
        value = self.data.get(key)
        if value is None:
            if required:
                raise InvalidInput(f"{self.where}.{key} is required")
            return None
        if not isinstance(value, Mapping):
            raise InvalidInput(f"{self.where}.{key}: expected a mapping, got {value!r}")
        node = Node(value, path, f"{self.where}.{key}", self.fields)
        node.check_keys()
        return node

    def items(self, key: str) -> list[Node]:
        self._declared(key)
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise InvalidInput(f"{self.where}.{key}: expected a list, got {value!r}")
        out: list[Node] = []
        for i, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise InvalidInput(f"{self.where}.{key}[{i}]: expected a mapping, got {item!r}")
            node = Node(item, f"{self.path}.{key}[]", f"{self.where}.{key}[{i}]", self.fields)
            node.check_keys()
            out.append(node)
        return out

    def string(
        self, key: str, *, required: bool = False, pattern: re.Pattern[str] | None = None
    ) -> str | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise InvalidInput(f"{self.where}.{key} is required")
            return None
        if not isinstance(value, str) or not value:
            raise InvalidInput(f"{self.where}.{key}: expected a non-empty string, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise InvalidInput(f"{self.where}.{key}: malformed value {value!r}")
        return value

    def required_string(self, key: str, *, pattern: re.Pattern[str] | None = None) -> str:
        value = self.string(key, required=True, pattern=pattern)
        assert value is not None
        return value

    def name(self, key: str, *, required: bool = False) -> str | None:
        """The name of another Kubernetes object."""
        value = self.string(key, required=required)
        if value is not None and (len(value) > 253 or not OBJECT_NAME.match(value)):
            raise InvalidInput(f"{self.where}.{key}: {value!r} is not a valid object name")
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InvalidInput(f"{self.where}.{key}: expected true or false, got {value!r}")
        return value

    def integer(self, key: str, *, minimum: int = 0) -> int | None:
        value = self.raw(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise InvalidInput(
                f"{self.where}.{key}: expected an integer >= {minimum}, got {value!r}"
            )
        return value

    def enum(self, key: str, cls: type[E], default: E | None = None) -> E:
        value = self.raw(key)
        if value is None:
            if default is None:
                raise InvalidInput(f"{self.where}.{key} is required")
            return default
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in cls)
            raise InvalidInput(
                f"{self.where}.{key}: unknown value {value!r} (allowed: {allowed})"
            ) from None

    def string_list(self, key: str, *, pattern: re.Pattern[str] | None = None) -> tuple[str, ...]:
        self._declared(key)
        value = self.data.get(key)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise InvalidInput(f"{self.where}.{key}: expected a list, got {value!r}")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise InvalidInput(f"{self.where}.{key}[{i}]: expected a string, got {item!r}")
            if pattern is not None and not pattern.match(item):
                raise InvalidInput(f"{self.where}.{key}[{i}]: malformed value {item!r}")
        if len(set(value)) != len(value):
            raise InvalidInput(f"{self.where}.{key}: lists a value twice: {value!r}")
        return tuple(value)

    def tables(self, key: str) -> tuple[str, ...]:
        """A list of table names or globs."""
        return self.string_list(key, pattern=TABLE_GLOB)

    def one_of(self, *keys: str) -> str:
        """The single key among ``keys`` that is set; anything else is an error."""
        present = [k for k in keys if self.has(k)]
        if len(present) != 1:
            listed = ", ".join(keys)
            got = ", ".join(present) or "none"
            raise InvalidInput(f"{self.where}: set exactly one of {listed} (got {got})")
        return present[0]


def _parent(path: str) -> str:
    return path.rsplit(".", 1)[0] if "." in path else ""


@dataclass(frozen=True)
class ObjectRef:
    """Identity of the resource a spec came from (for status, events, ledgers)."""

    kind: str
    namespace: str
    name: str
    uid: str
    generation: int


def parse_object_ref(body: Mapping[str, Any], kind: str) -> ObjectRef:
    meta = body.get("metadata") if isinstance(body, Mapping) else None
    if not isinstance(meta, Mapping) or not meta.get("name"):
        raise InvalidInput(f"{kind}: metadata.name is missing")
    generation = meta.get("generation", 0)
    return ObjectRef(
        kind=kind,
        namespace=str(meta.get("namespace") or ""),
        name=str(meta["name"]),
        uid=str(meta.get("uid") or ""),
        generation=generation if isinstance(generation, int) else 0,
    )


@dataclass(frozen=True)
class SecretKeyRef:
    """A key of a Secret in the resource's own namespace."""

    name: str
    key: str


SECRET_KEY_REF_FIELDS = ("secretKeyRef.name", "secretKeyRef.key")


def secret_fields(prefix: str) -> tuple[str, ...]:
    """The paths of a ``{secretKeyRef: {name, key}}`` holder at ``prefix``."""
    return tuple(f"{prefix}.{f}" for f in SECRET_KEY_REF_FIELDS)


def parse_secret_source(node: Node | None) -> SecretKeyRef | None:
    """Parse ``{secretKeyRef: {name, key}}`` (the ``*From`` fields)."""
    if node is None:
        return None
    ref = node.child("secretKeyRef", required=True)
    assert ref is not None
    return SecretKeyRef(
        name=ref.name("name", required=True) or "",
        key=ref.required_string("key", pattern=SECRET_KEY),
    )
