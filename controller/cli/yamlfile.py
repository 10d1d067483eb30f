"""Read a small YAML file a user hands the command line (rules, variables), strictly.

These files decide what a promotion overwrites, so reading them refuses what a typo,
a wrong file or a hostile pull request produces instead of guessing: besides what
:func:`controller.cli.files.read_text` refuses, an empty document, YAML anchors and
aliases (a kilobyte of nested aliases expands to gigabytes), nesting deeper than
:data:`MAX_DEPTH` (the composer recurses), and a key given twice (PyYAML keeps the
last one silently). Every refusal is an :class:`InvalidInput` of one line that names
the file and, for YAML errors, the line and column.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node

from controller.cli.files import read_text, shown
from controller.errors import InvalidInput

MAX_DEPTH = 64


class StrictLoader(yaml.SafeLoader):
    """``SafeLoader`` without aliases, deep nesting or repeated keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(AliasEvent):
            raise ConstructorError(None, None, "anchors and aliases (*name) are not allowed", mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ConstructorError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[object] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise ConstructorError(
                    None, None, "merge keys (<<) are not allowed", key_node.start_mark
                )
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                continue  # unhashable: the base class refuses it with its own message
            if duplicate:
                raise ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark
                )
        return super().construct_mapping(node, deep=deep)


def _yaml_problem(err: yaml.YAMLError) -> str:
    if isinstance(err, yaml.MarkedYAMLError):
        mark = err.problem_mark or err.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        return f"{where}{err.problem or err.context or 'malformed'}"
    return " ".join(str(err).split())


def load_yaml(path: str, what: str) -> Any:
    """The one YAML document in ``path``; an empty document is refused."""
    text = read_text(path, what)
    try:
        data = yaml.load(text, Loader=StrictLoader)  # a SafeLoader
    except yaml.YAMLError as err:
        raise InvalidInput(
            f"{what} file {shown(path)} is not valid YAML: {_yaml_problem(err)}"
        ) from err
    except RecursionError as err:
        raise InvalidInput(f"{what} file {shown(path)} is nested too deeply") from err
    if data is None:
        raise InvalidInput(f"{what} file {shown(path)} is empty")
    return data
