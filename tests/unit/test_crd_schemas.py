"""The CRDs in ``crds/`` and the typed views in ``controller.api`` describe one API.

Every path a view reads (its ``FIELDS_READ``, which its parser is bound to) must
exist in its CRD, and every spec field the CRD accepts must be read by the view;
enums and patterns shared by both must be identical; each CRD has what kubectl
and Argo CD rely on (status subresource, short names, category, printer columns).
"""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from controller.api import (
    backup,
    conditions,
    environment,
    environment_application,
    migration,
    restore,
    schedule,
)
from controller.api.resources import GROUP, VERSION, schema_paths
from controller.api.rules import Rule
from controller.engine.profiles import Profile as EngineProfile

ROOT = Path(__file__).resolve().parents[2]
CRDS = {}
for _path in sorted((ROOT / "crds").glob("*.yaml")):
    _crd = yaml.safe_load(_path.read_text())
    CRDS[_crd["spec"]["names"]["kind"]] = _crd

VIEWS: dict[str, ModuleType] = {
    "Environment": environment,
    "Backup": backup,
    "BackupSchedule": schedule,
    "Restore": restore,
    "Migration": migration,
}
SHORT_NAMES = {
    "Environment": ["fenv"],
    "Backup": ["fbk"],
    "BackupSchedule": ["fbks"],
    "Restore": ["frs"],
    "Migration": ["fmig"],
}
COLUMNS = {
    "Environment": ["Stage", "Dialect", "Ready", "Drift", "Age"],
    "Backup": ["Environment", "Phase", "ID", "Size", "Age"],
    "BackupSchedule": ["Schedule", "Suspended", "Last Backup", "Next", "Age"],
    "Restore": ["Backup", "Environment", "Phase", "Age"],
    "Migration": ["Source", "Target", "Phase", "Backup", "Age"],
}
ENUMS: list[tuple[str, str, Any]] = [
    ("Environment", "spec.stage", environment.Stage),
    ("Environment", "spec.profile", environment.Profile),
    ("Environment", "spec.profile", EngineProfile),
    ("Environment", "spec.database.dialect", environment.Dialect),
    ("Environment", "spec.configChanges", environment.ConfigChanges),
    ("Environment", "spec.variables[].type", environment.VariableType),
    ("Environment", "spec.application.workload.kind", environment_application.WorkloadKind),
    ("Environment", "spec.application.quiesce.strategy", environment_application.QuiesceStrategy),
    ("Backup", "spec.reason", backup.Reason),
    ("Backup", "spec.deletionPolicy", backup.DeletionPolicy),
    ("Backup", "status.phase", backup.BackupPhase),
    ("BackupSchedule", "spec.template.deletionPolicy", backup.DeletionPolicy),
    ("BackupSchedule", "spec.backupsOnDelete", schedule.BackupsOnDelete),
    ("Restore", "status.phase", restore.RestorePhase),
    ("Migration", "spec.rules.system", Rule),
    ("Migration", "spec.rules.user", Rule),
    ("Migration", "spec.rules.tables[].rule", Rule),
    ("Migration", "status.phase", migration.MigrationPhase),
    *((kind, "status.conditions[].status", conditions.ConditionStatus) for kind in VIEWS),
]
PATTERNS: list[tuple[str, str, str]] = [
    ("BackupSchedule", "spec.schedule", schedule.CRON_PATTERN),
    ("BackupSchedule", "spec.retention.maxAge", schedule.DURATION_PATTERN),
    ("BackupSchedule", "spec.timeZone", schedule.TIME_ZONE_PATTERN),
    ("Migration", "spec.approval.planDigest", migration.PLAN_DIGEST_PATTERN),
    ("Restore", "spec.backup", restore.BACKUP_REF.pattern),
    ("Environment", "spec.application.health.url", environment_application.HEALTH_URL.pattern),
    *((kind, "status.conditions[].reason", conditions.REASON_PATTERN.pattern) for kind in VIEWS),
    *((kind, "status.conditions[].type", conditions.TYPE_PATTERN.pattern) for kind in VIEWS),
]


def version_of(kind: str) -> dict[str, Any]:
    versions = CRDS[kind]["spec"]["versions"]
    assert [v["name"] for v in versions] == [VERSION]
    version: dict[str, Any] = versions[0]
    return version


def schema_of(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = version_of(kind)["schema"]["openAPIV3Schema"]
    return schema


def node_at(kind: str, path: str) -> dict[str, Any]:
    """The schema node at ``spec.variables[].name``; KeyError if it does not exist."""
    node = schema_of(kind)
    for part in path.split("."):
        name, is_list = (part[:-2], True) if part.endswith("[]") else (part, False)
        node = node["properties"][name]
        if is_list:
            assert node["type"] == "array", f"{kind} {path}: {name} is not a list"
            node = node["items"]
    return node


def leaf_paths(node: dict[str, Any], prefix: str) -> set[str]:
    """Paths of the scalar (and scalar-list) fields under ``node``."""
    if node.get("type") == "array":
        items = node["items"]
        return leaf_paths(items, prefix + "[]") if items.get("type") == "object" else {prefix}
    if node.get("type") == "object" and "properties" in node:
        out: set[str] = set()
        for name, child in node["properties"].items():
            out |= leaf_paths(child, f"{prefix}.{name}")
        return out
    return {prefix}


def walk(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    out = [(path, node)]
    for name, child in node.get("properties", {}).items():
        out += walk(child, f"{path}.{name}" if path else name)
    if "items" in node:
        out += walk(node["items"], path + "[]")
    return out


def test_every_kind_has_a_crd_and_a_view() -> None:
    assert sorted(CRDS) == sorted(VIEWS)
    for kind, module in VIEWS.items():
        assert kind == module.KIND


@pytest.mark.parametrize("kind", sorted(VIEWS))
def test_every_field_the_view_reads_is_in_the_crd(kind: str) -> None:
    declared = schema_paths(VIEWS[kind].FIELDS_READ)
    missing = []
    for path in sorted(declared):
        try:
            node_at(kind, path.removesuffix("[]"))
        except KeyError:
            missing.append(path)
    assert not missing, f"{kind}: read by the view, absent from the CRD: {missing}"


@pytest.mark.parametrize("kind", sorted(VIEWS))
def test_every_spec_field_of_the_crd_is_read_by_the_view(kind: str) -> None:
    accepted = leaf_paths(node_at(kind, "spec"), "spec")
    ignored = sorted(accepted - set(VIEWS[kind].FIELDS_READ))
    assert not ignored, f"{kind}: accepted by the CRD, never read by the view: {ignored}"


@pytest.mark.parametrize(("kind", "path", "enum_cls"), ENUMS)
def test_enums_agree(kind: str, path: str, enum_cls: Any) -> None:
    assert node_at(kind, path)["enum"] == [m.value for m in enum_cls]


@pytest.mark.parametrize(("kind", "path", "pattern"), PATTERNS)
def test_patterns_agree(kind: str, path: str, pattern: str) -> None:
    assert node_at(kind, path)["pattern"] == pattern


@pytest.mark.parametrize("kind", sorted(VIEWS))
def test_crd_identity_and_discovery(kind: str) -> None:
    crd = CRDS[kind]
    spec = crd["spec"]
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert spec["group"] == GROUP
    assert crd["metadata"]["name"] == f"{spec['names']['plural']}.{GROUP}"
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == SHORT_NAMES[kind]
    assert spec["names"]["categories"] == ["ferry"]
    version = version_of(kind)
    assert version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


@pytest.mark.parametrize("kind", sorted(VIEWS))
def test_printer_columns(kind: str) -> None:
    columns = version_of(kind)["additionalPrinterColumns"]
    assert [c["name"] for c in columns if not c.get("priority")] == COLUMNS[kind]
    assert columns[[c["name"] for c in columns].index("Age")]["jsonPath"] == (
        ".metadata.creationTimestamp"
    )
    for column in columns:
        path = column["jsonPath"]
        if path.startswith(".metadata."):
            continue
        # .status.conditions[?(@.type=="Ready")].status -> status.conditions[].status
        schema_path = re.sub(r"\[\?\(@\.type==\"[A-Za-z]+\"\)\]", "[]", path.lstrip("."))
        node = node_at(kind, schema_path)
        assert node["type"] == {"date": "string"}.get(column["type"], column["type"]), column


@pytest.mark.parametrize("kind", sorted(VIEWS))
def test_spec_is_strict_and_status_is_open_but_typed(kind: str) -> None:
    schema = schema_of(kind)
    assert "spec" in schema["required"]
    for path, node in walk(node_at(kind, "spec"), "spec"):
        assert not node.get("x-kubernetes-preserve-unknown-fields"), path
        if node.get("type") == "object" and path != "spec":
            # a typed map (additionalProperties with a schema) is as strict as properties
            typed = "properties" in node or isinstance(node.get("additionalProperties"), dict)
            assert typed, f"{path}: an object without properties accepts nothing"
    status = node_at(kind, "status")
    assert status["x-kubernetes-preserve-unknown-fields"] is True
    assert node_at(kind, "status.observedGeneration")["type"] == "integer"
    conds = node_at(kind, "status.conditions")
    assert conds["x-kubernetes-list-type"] == "map"
    assert conds["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conds["items"]["required"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
    }
    assert node_at(kind, "status.conditions[].lastTransitionTime")["format"] == "date-time"


@pytest.mark.parametrize("kind", sorted(VIEWS))
def test_every_cel_rule_explains_itself(kind: str) -> None:
    for path, node in walk(schema_of(kind)):
        for rule in node.get("x-kubernetes-validations", []):
            assert rule.get("message"), f"{kind} {path}: rule {rule['rule']!r} has no message"


def test_cel_invariants_are_declared() -> None:
    def rules(kind: str, path: str) -> str:
        return " ".join(r["rule"] for r in node_at(kind, path)["x-kubernetes-validations"])

    assert "has(self.environment) != has(self.git)" in rules("Migration", "spec.source")
    assert "self == oldSelf" in rules("Migration", "spec.source")
    assert "self == oldSelf" in rules("Migration", "spec.target")
    assert "self.source.environment != self.target" in rules("Migration", "spec")
    assert "has(self.backup) != has(self.migration)" in rules("Restore", "spec")
    assert "has(self.url), has(self.urlFrom)" in rules("Environment", "spec.database")
    assert "!(has(self.tables) && has(self.exclude))" in rules("Backup", "spec")


EXAMPLES = sorted((ROOT / "manifests" / "examples").glob("*.yaml"))
PARSERS = {
    "Environment": environment.parse_environment,
    "Backup": backup.parse_backup,
    "BackupSchedule": schedule.parse_backup_schedule,
    "Restore": restore.parse_restore,
    "Migration": migration.parse_migration,
}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_parse_with_the_views(path: Path) -> None:
    docs = list(yaml.safe_load_all(path.read_text()))
    assert docs
    for doc in docs:
        assert doc["apiVersion"] == f"{GROUP}/{VERSION}"
        PARSERS[doc["kind"]](doc)


def test_every_kind_has_an_example() -> None:
    kinds = {doc["kind"] for p in EXAMPLES for doc in yaml.safe_load_all(p.read_text())}
    assert kinds == set(VIEWS)
