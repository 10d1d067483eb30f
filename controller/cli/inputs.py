"""Read the CLI's input files (rules, variables) into typed specs, with clear errors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from controller.api.rules import RulesSpec, parse_rules
from controller.api.variables import parse_variable_names
from controller.cli.yamlfile import load_yaml
from controller.commands.planning import PlanOptions
from controller.engine.profiles import Profile, parse_profile
from controller.errors import InvalidInput


def rules_document(data: Any, path: str) -> Any:
    """The rules mapping of a rules file, or of a Migration manifest's ``spec.rules``."""
    if isinstance(data, Mapping) and data.get("kind") == "Migration":
        spec = data.get("spec")
        if not isinstance(spec, Mapping):
            raise InvalidInput(f"{path}: a Migration whose spec is not a mapping")
        if spec.get("rules") is None:
            raise InvalidInput(f"{path}: the Migration has no spec.rules")
        return spec["rules"]
    return data


def load_rules(path: str | None) -> RulesSpec:
    if path is None:
        return RulesSpec()
    data = rules_document(load_yaml(path, "rules"), path)
    try:
        return parse_rules(data)
    except InvalidInput as err:
        raise InvalidInput(f"{path}: {err}") from err


def load_variables(path: str | None) -> frozenset[str] | None:
    if path is None:
        return None
    data = load_yaml(path, "variables")
    try:
        return parse_variable_names(data)
    except InvalidInput as err:
        raise InvalidInput(f"{path}: {err}") from err


def plan_options(profile: str, rules: str | None, variables: str | None) -> PlanOptions:
    return PlanOptions(
        rules=load_rules(rules), profile=parse_profile(profile), variables=load_variables(variables)
    )


__all__ = ["Profile", "load_rules", "load_variables", "plan_options"]


ENV_PREFIX = "env:"
# A namespace is an RFC 1123 label; an Environment's name an RFC 1123 subdomain.
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def parse_environment_ref(spec: str) -> tuple[str, str]:
    """``env:[NAMESPACE/]NAME`` as (namespace, name), both valid Kubernetes names."""
    ref = spec[len(ENV_PREFIX) :]
    namespace, _, name = ref.rpartition("/")
    namespace = namespace if "/" in ref else "default"
    if not _LABEL.fullmatch(namespace) or not _SUBDOMAIN.fullmatch(name) or len(name) > 253:
        raise InvalidInput(
            f"{spec!r}: expected env:[NAMESPACE/]NAME with Kubernetes names (lowercase "
            "letters, digits, '-'; a name may also hold '.')"
        )
    return namespace, name


def resolve_database(spec: str) -> str:
    """``env:[NAMESPACE/]NAME`` names an Environment in the current kube context; its
    database URL is resolved from its Secrets. Anything else is returned unchanged."""
    if not spec.startswith(ENV_PREFIX):
        return spec
    namespace, name = parse_environment_ref(spec)
    from controller.commands.environments import lookup

    return lookup(_cluster(spec), namespace, name).url


def _cluster(spec: str) -> Any:
    """The current kube context's client; no usable kubeconfig is the user's to fix."""
    import yaml
    from kubernetes.config import ConfigException

    from controller.k8s.client import KubeCluster

    try:
        return KubeCluster()
    except ConfigException as err:
        reason = " ".join(str(err).split())[:200]
        raise InvalidInput(
            f"{spec}: no usable Kubernetes context to resolve it ({reason}); set KUBECONFIG "
            "or pass a database URL"
        ) from err
    except (
        OSError,
        ValueError,
        TypeError,
        KeyError,
        yaml.YAMLError,
    ) as err:  # a malformed kubeconfig
        raise InvalidInput(
            f"{spec}: the kubeconfig cannot be read ({type(err).__name__}); set KUBECONFIG "
            "or pass a database URL"
        ) from err
