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


ENV_PREFIX = "env:"


def resolve_database(spec: str) -> str:
    """``env:[NAMESPACE/]NAME`` names an Environment in the current kube context; its
    database URL is resolved from its Secrets. Anything else is returned unchanged."""
    if not spec.startswith(ENV_PREFIX):
        return spec
    from controller.k8s.client import KubeCluster
    from controller.reconcile.environments import lookup

    ref = spec[len(ENV_PREFIX) :]
    namespace, _, name = ref.rpartition("/")
    if not name:
        raise InvalidInput(f"{spec!r}: expected env:[NAMESPACE/]NAME")
    return lookup(KubeCluster(), namespace or "default", name).url
