"""The Argo CD health checks and actions in ``argocd/``, run as Argo CD runs them.

Argo CD evaluates a health script with the live object in the global ``obj`` and
takes the returned table's ``status`` and ``message``; an action's ``discovery.lua``
returns a table of action names (``disabled`` true/false) and its ``action.lua``
returns the changed ``obj`` (or, for an action that creates resources, a list of
``{operation, resource}``). Argo CD's interpreter is gopher-lua (Lua 5.1), so the
scripts run here on lupa's Lua 5.1.

The objects are real: ``tests/unit/fixtures/argocd/*.json`` were read back from the
API server by ``tests/e2e/test_status_fixtures.py`` (``FERRY_RECORD_FIXTURES=1``).
Variants (a newer ``metadata.generation``, a status not written yet) are derived
from them here.

``python -m tests.unit.test_argocd_health`` regenerates ``argocd/argocd-cm.yaml``
from the Lua files; a test checks that it embeds exactly those files. The health
checks share their preamble (the status, its conditions, "the operator has not seen
this generation yet") in ``argocd/prelude.lua``; the generator splices it in front of
each kind's script, since Argo CD runs each script standalone. The health tests run
the scripts as embedded in the generated file, so they test what Argo CD loads.
"""

from __future__ import annotations

import copy
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import lua51

REPO = Path(__file__).resolve().parents[2]
ARGOCD = REPO / "argocd"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "argocd"
CM = ARGOCD / "argocd-cm.yaml"
PRELUDE = ARGOCD / "prelude.lua"
GROUP = "ferry.dev"
KINDS = ("Environment", "Migration", "Backup", "BackupSchedule", "Restore")
HEALTH = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


# --- Argo CD's calling convention ------------------------------------------------------


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def _from_lua(value: Any) -> Any:
    if lua51.lua_type(value) != "table":
        if isinstance(value, float) and value.is_integer():
            return int(value)  # Lua 5.1 has only doubles; JSON integers come back whole
        return value
    items = list(value.items())
    keys = [k for k, _ in items]
    if keys and keys == list(range(1, len(keys) + 1)):
        return [_from_lua(v) for _, v in items]
    return {k: _from_lua(v) for k, v in items}


#: Argo CD's Lua VM opens only the base, package and table libraries and a "safe" ``os``
#: (``time`` and ``date``): no ``string`` (nor string methods), ``math``, ``io`` or
#: ``debug`` (util/lua/lua.go). A script using them fails under Argo CD
#: (tests/e2e/test_argocd_lua.py runs them there), so lupa offers no more.
_ARGO_CD_LIBRARIES = """
debug.setmetatable("", nil)
local safe_os = {time = os.time, date = os.date}
string, math, io, debug, coroutine, os = nil, nil, nil, nil, nil, safe_os
dofile, loadfile = nil, nil
for name in pairs(package.loaded) do
  if name ~= "_G" and name ~= "package" and name ~= "table" then package.loaded[name] = nil end
end
package.loaded.os = safe_os
"""


def _run(script: str, obj: dict[str, Any], now: str | None = None) -> Any:
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    runtime.execute(_ARGO_CD_LIBRARIES)
    if now is not None:  # os.date as Argo CD's, at a fixed time
        runtime.execute(f'local os = require("os"); os.date = function() return "{now}" end')
    runtime.globals().obj = _to_lua(runtime, copy.deepcopy(obj))
    return runtime.execute(script)


def health_script(kind: str) -> str:
    """The standalone health check of ``kind``: the shared prelude, then its own script."""
    return PRELUDE.read_text() + (ARGOCD / "health" / f"{kind}.lua").read_text()


def embedded_health_script(kind: str) -> str:
    """``kind``'s health check as the generated ``argocd-cm.yaml`` gives it to Argo CD."""
    data = yaml.safe_load(CM.read_text())["data"]
    script = data[f"resource.customizations.health.{GROUP}_{kind}"]
    assert isinstance(script, str)
    return script


def run_health(obj: dict[str, Any]) -> dict[str, str]:
    """``{status, message}`` from the generated health check of ``obj``'s kind, run alone."""
    result = _from_lua(_run(embedded_health_script(obj["kind"]), obj))
    assert isinstance(result, dict) and result["status"] in HEALTH, result
    return {"status": result["status"], "message": result.get("message", "")}


def discover(kind: str, obj: dict[str, Any]) -> dict[str, bool]:
    """Action name → enabled, from ``argocd/actions/<Kind>/discovery.lua``."""
    found = _from_lua(_run((ARGOCD / "actions" / kind / "discovery.lua").read_text(), obj))
    return {name: not spec.get("disabled", False) for name, spec in found.items()}


def run_action(kind: str, action: str, obj: dict[str, Any], now: str | None = None) -> Any:
    script = (ARGOCD / "actions" / kind / action / "action.lua").read_text()
    result = _from_lua(_run(script, obj, now))
    return result


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def newer_spec(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` after a spec change the operator has not seen yet."""
    changed = copy.deepcopy(obj)
    changed["metadata"]["generation"] = obj["metadata"]["generation"] + 1
    return changed


def without_status(obj: dict[str, Any]) -> dict[str, Any]:
    fresh = copy.deepcopy(obj)
    fresh.pop("status", None)
    return fresh


# --- health ----------------------------------------------------------------------------

EXPECTED = {
    "environment-ready": "Healthy",
    "environment-unreachable": "Progressing",
    "environment-stalled": "Degraded",
    "migration-awaiting-approval": "Suspended",
    "migration-succeeded": "Healthy",
    "migration-succeeded-edited": "Healthy",
    "migration-failed": "Degraded",
    "migration-rolled-back": "Degraded",
    "migration-pending": "Progressing",
    "migration-applying-quiesced": "Progressing",
    "migration-rolled-back-unhealthy": "Degraded",
    "migration-rehearsal-failed": "Degraded",
    "backup-completed": "Healthy",
    "backup-failed": "Degraded",
    "backupschedule-scheduled": "Healthy",
    "backupschedule-suspended": "Suspended",
    "restore-completed": "Healthy",
    "restore-failed": "Degraded",
}


def test_every_fixture_is_expected_and_every_kind_covered() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == sorted(EXPECTED)
    assert {fixture(n)["kind"] for n in EXPECTED} == set(KINDS)
    assert sorted(p.stem for p in (ARGOCD / "health").glob("*.lua")) == sorted(KINDS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_health_of_real_statuses(name: str) -> None:
    obj = fixture(name)
    got = run_health(obj)
    assert got["status"] == EXPECTED[name], got
    assert got["message"], "a health without a message tells the user nothing"


def test_fixtures_are_what_they_claim() -> None:
    """Guards against a mislabelled recording."""
    phases = {
        "migration-awaiting-approval": "AwaitingApproval",
        "migration-succeeded": "Succeeded",
        "migration-succeeded-edited": "Succeeded",
        "migration-failed": "Failed",
        "migration-rolled-back": "RolledBack",
        "migration-pending": "Pending",
        "migration-applying-quiesced": "Applying",
        "migration-rolled-back-unhealthy": "RolledBack",
        "backup-completed": "Completed",
        "backup-failed": "Failed",
        "restore-completed": "Completed",
        "restore-failed": "Failed",
    }
    for name, phase in phases.items():
        assert fixture(name)["status"]["phase"] == phase, name
    edited = fixture("migration-succeeded-edited")
    assert edited["metadata"]["generation"] > edited["status"]["observedGeneration"]
    assert fixture("backupschedule-suspended")["spec"]["suspend"] is True


def test_messages_carry_the_operator_s_words() -> None:
    gated = run_health(fixture("migration-awaiting-approval"))
    digest = fixture("migration-awaiting-approval")["status"]["planDigest"]
    assert digest in gated["message"] and "spec.approval.planDigest" in gated["message"]
    refused = run_health(fixture("migration-failed"))
    assert "accepts promotions only from pre" in refused["message"]
    rolled = run_health(fixture("migration-rolled-back"))
    assert "injected failure" in rolled["message"]
    assert "Unreachable" in run_health(fixture("environment-unreachable"))["message"]
    assert "missing" in run_health(fixture("environment-stalled"))["message"]
    assert "backups.store" in run_health(fixture("backup-failed"))["message"]


@pytest.mark.parametrize(
    "name",
    [
        "environment-ready",
        "environment-stalled",
        "migration-awaiting-approval",
        "migration-pending",
        "backupschedule-scheduled",
        "backupschedule-suspended",
    ],
)
def test_status_older_than_the_spec_is_progressing(name: str) -> None:
    got = run_health(newer_spec(fixture(name)))
    assert got["status"] == "Progressing"
    assert "observe generation" in got["message"]


@pytest.mark.parametrize(
    "name",
    [
        "migration-succeeded",
        "migration-failed",
        "migration-rolled-back",
        "backup-completed",
        "backup-failed",
        "restore-completed",
        "restore-failed",
    ],
)
def test_a_finished_one_shot_keeps_its_health_after_a_spec_edit(name: str) -> None:
    """The operator never runs a finished Migration, Backup or Restore again, so its
    observedGeneration stays behind for good (``migration-succeeded-edited`` is such a
    real object); reporting Progressing would hold a sync forever."""
    assert run_health(newer_spec(fixture(name)))["status"] == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_not_yet_observed_is_progressing(name: str) -> None:
    obj = without_status(fixture(name))
    obj["spec"].pop("suspend", None)
    assert run_health(obj)["status"] == "Progressing"


def test_restore_reverted_is_degraded() -> None:
    obj = fixture("restore-failed")
    obj["status"]["phase"] = "Reverted"
    assert run_health(obj)["status"] == "Degraded"


def test_restore_phases_in_flight_are_progressing() -> None:
    for phase in ("Pending", "Queued", "BackingUp", "Restoring", "Verifying"):
        obj = fixture("restore-completed")
        obj["status"]["phase"] = phase
        got = run_health(obj)
        assert got["status"] == "Progressing" and got["message"].startswith(phase)


def test_migration_phases_in_flight_are_progressing() -> None:
    for phase in ("Pending", "Queued", "Planning", "BackingUp", "Applying", "Verifying"):
        obj = fixture("migration-pending")
        obj["status"]["phase"] = phase
        got = run_health(obj)
        assert got["status"] == "Progressing" and got["message"].startswith(phase)


def test_drift_is_healthy_but_said() -> None:
    obj = fixture("environment-ready")
    for cond in obj["status"]["conditions"]:
        if cond["type"] == "Drifted":
            cond.update(status="True", reason="ConfigurationChanged", message="changed by hand")
    got = run_health(obj)
    assert got == {"status": "Healthy", "message": "Drifted: changed by hand"}


# --- actions ---------------------------------------------------------------------------


def test_approve_copies_the_plan_digest() -> None:
    gated = fixture("migration-awaiting-approval")
    assert discover("Migration", gated) == {"approve": True}
    approved = run_action("Migration", "approve", gated)
    assert approved["spec"]["approval"] == {
        "required": True,
        "planDigest": gated["status"]["planDigest"],
    }
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", approved["spec"]["approval"]["planDigest"])
    # nothing else changes
    approved["spec"]["approval"] = gated["spec"]["approval"]
    assert approved["spec"] == gated["spec"] and approved["metadata"] == gated["metadata"]


@pytest.mark.parametrize("name", ["migration-succeeded", "migration-pending"])
def test_approve_is_offered_only_while_awaiting_approval(name: str) -> None:
    obj = fixture(name)
    assert discover("Migration", obj) == {"approve": False}
    with pytest.raises(lua51.LuaError, match="not awaiting approval"):
        run_action("Migration", "approve", obj)


def test_approve_refuses_a_plan_older_than_the_spec() -> None:
    stale = newer_spec(fixture("migration-awaiting-approval"))
    assert discover("Migration", stale) == {"approve": False}
    with pytest.raises(lua51.LuaError, match="spec changed"):
        run_action("Migration", "approve", stale)


def test_suspend_and_resume_a_schedule() -> None:
    active, paused = fixture("backupschedule-scheduled"), fixture("backupschedule-suspended")
    assert discover("BackupSchedule", active) == {"suspend": True, "resume": False}
    assert discover("BackupSchedule", paused) == {"suspend": False, "resume": True}
    assert run_action("BackupSchedule", "suspend", active)["spec"]["suspend"] is True
    resumed = run_action("BackupSchedule", "resume", paused)
    assert resumed["spec"]["suspend"] is False
    resumed["spec"]["suspend"] = True
    assert resumed["spec"] == paused["spec"]


def test_backup_now_creates_a_manual_backup() -> None:
    env = fixture("environment-ready")
    env["spec"]["backups"] = {"store": {"path": "/var/lib/ferry/backups"}}
    assert discover("Environment", env) == {"backup-now": True}
    assert discover("Environment", fixture("environment-stalled")) == {"backup-now": False}
    (created,) = run_action("Environment", "backup-now", env, now="20260102030405")
    assert created["operation"] == "create"
    backup = created["resource"]
    assert backup["metadata"]["name"] == "dev-20260102030405"
    assert backup["metadata"]["namespace"] == env["metadata"]["namespace"]
    assert backup["spec"] == {"environment": "dev", "reason": "manual"}
    assert "ownerReferences" not in backup["metadata"]
    from controller.api.backup import parse_backup

    parse_backup(backup)  # the operator accepts what the action creates


def test_backup_now_refuses_a_name_a_timestamp_would_take_past_253_characters() -> None:
    env = fixture("environment-ready")
    env["spec"]["backups"] = {"store": {"path": "/var/lib/ferry/backups"}}
    env["metadata"]["name"] = "e" * 238
    (created,) = run_action("Environment", "backup-now", env, now="20260102030405")
    assert len(created["resource"]["metadata"]["name"]) == 253
    env["metadata"]["name"] = "e" * 239
    with pytest.raises(lua51.LuaError, match="name is too long"):
        run_action("Environment", "backup-now", env, now="20260102030405")


# --- the argocd-cm snippet -------------------------------------------------------------


def _literal(text: str, indent: int) -> str:
    pad = " " * indent
    return "|\n" + "".join(pad + line if line.strip() else line for line in text.splitlines(True))


def render_argocd_cm() -> str:
    """``argocd/argocd-cm.yaml``: every Lua file under ``argocd/``, as Argo CD reads them."""
    out = [
        "# Generated from argocd/health/*.lua and argocd/actions/ by",
        "# `python -m tests.unit.test_argocd_health`; do not edit by hand.",
        "# Merge into Argo CD's ConfigMap (docs/argocd.md):",
        "#   kubectl -n argocd patch configmap argocd-cm --type merge \\",
        "#     --patch-file argocd/argocd-cm.yaml",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: argocd-cm",
        "  namespace: argocd",
        "  labels:",
        "    app.kubernetes.io/name: argocd-cm",
        "    app.kubernetes.io/part-of: argocd",
        "data:",
    ]
    for kind in KINDS:
        lua = health_script(kind)
        out.append(f"  resource.customizations.health.{GROUP}_{kind}: {_literal(lua, 4)}")
    for kind in KINDS:
        actions = ARGOCD / "actions" / kind
        if not actions.is_dir():
            continue
        inner = "discovery.lua: " + _literal((actions / "discovery.lua").read_text(), 2)
        inner += "definitions:\n"
        for action in sorted(p.parent.name for p in actions.glob("*/action.lua")):
            code = (actions / action / "action.lua").read_text()
            inner += f"- name: {action}\n  action.lua: " + _literal(code, 4)
        out.append(f"  resource.customizations.actions.{GROUP}_{kind}: {_literal(inner, 4)}")
    return _join(out)


def _join(lines: list[str]) -> str:
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def test_argocd_cm_is_generated_from_the_lua_files() -> None:
    assert CM.read_text() == render_argocd_cm(), "run: python -m tests.unit.test_argocd_health"


def test_argocd_cm_embeds_exactly_the_lua_files() -> None:
    data = yaml.safe_load(CM.read_text())["data"]
    lua_files = {
        p.relative_to(ARGOCD).as_posix(): p.read_text()
        for p in ARGOCD.rglob("*.lua")
        if p != PRELUDE
    }
    embedded: dict[str, str] = {}
    for key, value in data.items():
        kind = key.rsplit("_", 1)[1]
        assert key.startswith("resource.customizations.") and f".{GROUP}_" in key
        if key.startswith("resource.customizations.health."):
            prelude, found, script = value.partition(f"-- Argo CD health check for {GROUP}/{kind} ")
            assert found, key
            assert prelude == PRELUDE.read_text(), f"{key} does not start with the prelude"
            embedded[f"health/{kind}.lua"] = found + script
            continue
        assert key.startswith("resource.customizations.actions."), key
        actions = yaml.safe_load(value)
        embedded[f"actions/{kind}/discovery.lua"] = actions["discovery.lua"]
        for definition in actions["definitions"]:
            embedded[f"actions/{kind}/{definition['name']}/action.lua"] = definition["action.lua"]
    assert embedded == lua_files


if __name__ == "__main__":
    CM.write_text(render_argocd_cm())
    sys.stdout.write(f"wrote {CM.relative_to(REPO)}\n")
