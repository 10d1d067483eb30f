"""Exact YAML for column values: every type Ferry carries survives a round trip.

Plain YAML would turn ``1.50`` into a float and ``2024-01-01`` into a date; explicit
tags (``!decimal``, ``!datetime``, ``!date``, ``!time``, ``!json``, ``!!binary``)
keep each value exactly as the database returned it.

Snapshots are written by anyone who can open a pull request, so the loader accepts
only what the dumper writes: no anchors or aliases (a kilobyte of nested aliases
expands to gigabytes), no tags but the few below, a bounded nesting depth and size.
Its errors say where (line, column) and what rule was broken, never the content.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import yaml

from controller.errors import InvalidInput


class Dumper(yaml.SafeDumper):
    pass


MAX_DEPTH = 200  # JSON deeper than this is written as ``!json`` text
MAX_TEXT = 256 * 1024 * 1024

_TAGS = frozenset(
    {
        *(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "binary")),
        "tag:yaml.org,2002:map",
        "tag:yaml.org,2002:seq",
        "!decimal",
        "!datetime",
        "!date",
        "!time",
        "!json",
    }
)


class YamlRefused(InvalidInput):
    """The text is not YAML this loader accepts; the message holds no content."""


class Loader(yaml.SafeLoader):
    """SafeLoader without aliases, anchors, foreign tags or unbounded nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def _refuse(self, event: yaml.Event, problem: str) -> YamlRefused:
        mark = event.start_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        return YamlRefused(problem + where)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if isinstance(event, yaml.AliasEvent):
            raise self._refuse(event, "aliases are not allowed")
        if getattr(event, "anchor", None) is not None:
            raise self._refuse(event, "anchors are not allowed")
        tag = getattr(event, "tag", None)
        if tag is not None and tag not in _TAGS:
            raise self._refuse(event, "this tag is not allowed")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self._refuse(event, f"nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class JsonText(str):
    """Raw JSON text that has no exact structured form (kept verbatim under ``!json``)."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    lines = value.split("\n")
    block = (
        len(lines) > 1
        and not value.startswith((" ", "\t"))
        and all(line == line.rstrip() and line.isprintable() for line in lines)
    )
    if block:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=_flow_style(value))


def _flow_style(value: str) -> str | None:
    """YAML folds NEL and the Unicode line separators into spaces outside double quotes,
    and only double quotes can escape other unprintable characters: force them."""
    exact = value.isprintable() and not _YAML_BREAKS.intersection(value)
    return None if exact else '"'


_YAML_BREAKS = frozenset("\x85\u2028\u2029")


def _decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.ScalarNode:
    return dumper.represent_scalar("!decimal", str(value))


def _datetime(dumper: yaml.SafeDumper, value: dt.datetime) -> yaml.ScalarNode:
    return dumper.represent_scalar("!datetime", value.isoformat())


def _date(dumper: yaml.SafeDumper, value: dt.date) -> yaml.ScalarNode:
    return dumper.represent_scalar("!date", value.isoformat())


def _time(dumper: yaml.SafeDumper, value: dt.time) -> yaml.ScalarNode:
    return dumper.represent_scalar("!time", value.isoformat())


def _json_text(dumper: yaml.SafeDumper, value: JsonText) -> yaml.ScalarNode:
    return dumper.represent_scalar("!json", str(value), style=_flow_style(str(value)))


Dumper.add_representer(str, _str)
Dumper.add_representer(Decimal, _decimal)
Dumper.add_representer(dt.datetime, _datetime)
Dumper.add_representer(dt.date, _date)
Dumper.add_representer(dt.time, _time)
Dumper.add_representer(JsonText, _json_text)


def _scalar(loader: Any, node: yaml.Node) -> str:
    """A tagged value's text; a tag on a mapping or list (``!decimal {}``) is malformed
    input, reported like any other YAML error (the caller turns it into InvalidInput)."""
    if not isinstance(node, yaml.ScalarNode):
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.tag} takes a scalar value", node.start_mark
        )
    return str(loader.construct_scalar(node))


Loader.add_constructor("!decimal", lambda ld, n: Decimal(_scalar(ld, n)))
Loader.add_constructor("!datetime", lambda ld, n: dt.datetime.fromisoformat(_scalar(ld, n)))
Loader.add_constructor("!date", lambda ld, n: dt.date.fromisoformat(_scalar(ld, n)))
Loader.add_constructor("!time", lambda ld, n: dt.time.fromisoformat(_scalar(ld, n)))
Loader.add_constructor("!json", lambda ld, n: JsonText(_scalar(ld, n)))

# JSON styles a column's values may be written back in, by name.
JSON_STYLES = {"compact": (",", ":"), "spaced": (", ", ": ")}


def json_style_of(text: str) -> str | None:
    """The style in which ``text`` is exactly the dump of its own parse, if any."""
    try:
        parsed = json.loads(text)
        for style, seps in JSON_STYLES.items():
            if json.dumps(parsed, ensure_ascii=False, separators=seps) == text:
                return style
    except (ValueError, RecursionError):
        return None
    return None


def json_to_yaml(text: str, style: str | None) -> Any:
    """JSON as YAML structure when exact and shallow enough to read back (the loader's
    depth limit, less the two levels of the row list and the row), else ``!json`` text."""
    if style is not None and json_style_of(text) == style:
        parsed = json.loads(text)
        if depth(parsed, MAX_DEPTH - 3) <= MAX_DEPTH - 3:
            return parsed
    return JsonText(text)


def json_from_yaml(value: Any, style: str | None) -> str:
    """The JSON text of a row's value; InvalidInput when it is not JSON data."""
    if isinstance(value, JsonText):
        return str(value)
    if style not in (None, *JSON_STYLES):
        raise InvalidInput("unknown JSON style")
    try:
        return json.dumps(value, ensure_ascii=False, separators=JSON_STYLES[style or "compact"])
    except (TypeError, ValueError, RecursionError):
        raise InvalidInput("a JSON value holds something JSON cannot") from None


def dump(data: Any) -> str:
    return yaml.dump(
        data,
        Dumper=Dumper,
        sort_keys=False,
        allow_unicode=True,
        width=100,
        default_flow_style=False,
    )


def load(text: str) -> Any:
    """Parse one document; :class:`YamlRefused` (InvalidInput) on anything refused."""
    if len(text) > MAX_TEXT:
        raise YamlRefused(f"larger than {MAX_TEXT // (1024 * 1024)} MiB")
    loader = None
    try:
        loader = Loader(text)  # the reader checks every character here
        return loader.get_single_data()
    except YamlRefused:
        raise
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise YamlRefused(f"not valid YAML{where}") from None
    except (yaml.YAMLError, ValueError, ArithmeticError, TypeError) as err:
        raise YamlRefused(f"not valid YAML ({type(err).__name__})") from None
    except RecursionError:
        raise YamlRefused("nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """Nesting depth of lists and dicts in ``value``, counted up to ``limit + 1``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            if deepest > limit:
                return deepest
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, level + 1) for child in children)
    return deepest
