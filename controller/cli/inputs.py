"""Read the CLI's input files (rules, variables) into typed specs, with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from controller.api.rules import RulesSpec, parse_rules
from controller.api.variables import parse_variable_names
from controller.engine.profiles import Profile, parse_profile
from controller.errors import InvalidInput
from controller.reconcile.planning import PlanOptions


def load_yaml(path: str, what: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidInput(f"cannot read {what} file {path}: {err.strerror}") from err
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InvalidInput(f"{what} file {path} is not valid YAML: {err}") from err


def load_rules(path: str | None) -> RulesSpec:
    if path is None:
        return RulesSpec()
    data = load_yaml(path, "rules")
    if isinstance(data, dict) and data.get("kind") == "Migration":
        data = (data.get("spec") or {}).get("rules")
    try:
        return parse_rules(data)
    except InvalidInput as err:
        raise InvalidInput(f"{path}: {err}") from err


def load_variables(path: str | None) -> frozenset[str] | None:
    if path is None:
        return None
    return parse_variable_names(load_yaml(path, "variables"))


def plan_options(profile: str, rules: str | None, variables: str | None) -> PlanOptions:
    return PlanOptions(
        rules=load_rules(rules), profile=parse_profile(profile), variables=load_variables(variables)
    )


__all__ = ["Profile", "load_rules", "load_variables", "plan_options"]
