"""Exact YAML for column values: every type Ferry carries survives a round trip.

Plain YAML would turn ``1.50`` into a float and ``2024-01-01`` into a date; explicit
tags (``!decimal``, ``!datetime``, ``!date``, ``!time``, ``!json``, ``!!binary``)
keep each value exactly as the database returned it.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import yaml


class Dumper(yaml.SafeDumper):
    pass


class Loader(yaml.SafeLoader):
    pass


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
    # YAML folds NEL and the Unicode line separators into spaces outside double quotes,
    # and only double quotes can escape other unprintable characters: force them.
    exact = value.isprintable() and not _YAML_BREAKS.intersection(value)
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=None if exact else '"')


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
    return dumper.represent_scalar("!json", str(value))


Dumper.add_representer(str, _str)
Dumper.add_representer(Decimal, _decimal)
Dumper.add_representer(dt.datetime, _datetime)
Dumper.add_representer(dt.date, _date)
Dumper.add_representer(dt.time, _time)
Dumper.add_representer(JsonText, _json_text)


def _scalar(loader: Any, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
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
    except ValueError:
        return None
    for style, seps in JSON_STYLES.items():
        if json.dumps(parsed, ensure_ascii=False, separators=seps) == text:
            return style
    return None


def json_to_yaml(text: str, style: str | None) -> Any:
    if style is not None and json_style_of(text) == style:
        return json.loads(text)
    return JsonText(text)


def json_from_yaml(value: Any, style: str | None) -> str:
    if isinstance(value, JsonText):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=JSON_STYLES[style or "compact"])


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
    return yaml.load(text, Loader=Loader)
