"""Ferry's health checks and actions evaluated by Argo CD itself, on recorded objects.

``argocd admin settings resource-overrides`` (the pinned Argo CD, built by
``hack/argocd/build.sh``) loads ``argocd/argocd-cm.yaml`` the way Argo CD's controller
and API server do and runs each script in Argo CD's own Lua VM (gopher-lua, Lua 5.1,
with the libraries Argo CD preloads). Every recorded object
(``tests/unit/fixtures/argocd``) and its variants (a spec the operator has not seen
yet, no status yet) must get the health ``tests/unit/test_argocd_health.py`` expects,
and the same status and message lupa gives: the fast unit tests run on an interpreter
that agrees with Argo CD's on every object Ferry records.

No cluster is needed: these run wherever the Argo CD binary is built.
"""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.argocd import FERRY_CM, build_argocd
from tests.unit.test_argocd_health import (
    EXPECTED,
    fixture,
    newer_spec,
    run_health,
    without_status,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def argocd_bin() -> Path:
    return build_argocd() / "argocd"


def admin(argocd_bin: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "ARGOCD_BINARY_NAME": "argocd"}
    return subprocess.run(
        [str(argocd_bin), "admin", "settings", "resource-overrides", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def argocd_health(argocd_bin: Path, tmp_path: Path, obj: dict[str, Any]) -> dict[str, str]:
    """``{status, message}`` as Argo CD assesses ``obj`` with Ferry's argocd-cm."""
    path = tmp_path / f"{obj['metadata']['name']}.yaml"
    path.write_text(json.dumps(obj))
    got = admin(argocd_bin, tmp_path, "health", str(path), "--argocd-cm-path", str(FERRY_CM))
    assert got.returncode == 0, got.stderr
    lines = got.stdout.splitlines()
    assert lines[0].startswith("STATUS: "), got.stdout
    message = "\n".join(lines[1:])
    assert message.startswith("MESSAGE: "), got.stdout
    return {"status": lines[0].removeprefix("STATUS: "), "message": message[len("MESSAGE: ") :]}


def variants(name: str) -> dict[str, dict[str, Any]]:
    obj = fixture(name)
    fresh = without_status(obj)
    fresh["spec"].pop("suspend", None)
    return {"recorded": obj, "newer-spec": newer_spec(obj), "no-status": fresh}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_argo_cd_assesses_every_recorded_object_as_lupa_does(
    argocd_bin: Path, tmp_path: Path, name: str
) -> None:
    for variant, obj in variants(name).items():
        got = argocd_health(argocd_bin, tmp_path, obj)
        assert got == run_health(obj), f"{name} ({variant})"
        if variant == "recorded":
            assert got["status"] == EXPECTED[name]
            assert got["message"]
        if variant == "no-status":
            assert got["status"] == "Progressing"


def list_actions(argocd_bin: Path, tmp_path: Path, obj: dict[str, Any]) -> dict[str, bool]:
    path = tmp_path / "obj.yaml"
    path.write_text(json.dumps(obj))
    got = admin(argocd_bin, tmp_path, "list-actions", str(path), "--argocd-cm-path", str(FERRY_CM))
    assert got.returncode == 0, got.stderr
    rows = [line.split() for line in got.stdout.splitlines()[1:] if line.strip()]
    return {row[0]: row[1] == "false" for row in rows}


def run_action(
    argocd_bin: Path, tmp_path: Path, obj: dict[str, Any], action: str
) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "obj.yaml"
    path.write_text(json.dumps(obj))
    return admin(
        argocd_bin, tmp_path, "run-action", str(path), action, "--argocd-cm-path", str(FERRY_CM)
    )


def test_argo_cd_offers_approve_only_while_awaiting_approval(
    argocd_bin: Path, tmp_path: Path
) -> None:
    gated = fixture("migration-awaiting-approval")
    assert list_actions(argocd_bin, tmp_path, gated) == {"approve": True}
    for other in (fixture("migration-succeeded"), newer_spec(gated)):
        assert list_actions(argocd_bin, tmp_path, other) == {"approve": False}
    refused = run_action(argocd_bin, tmp_path, fixture("migration-succeeded"), "approve")
    assert refused.returncode != 0 and "not awaiting approval" in refused.stderr + refused.stdout


def test_argo_cd_runs_approve_and_suspend_resume(argocd_bin: Path, tmp_path: Path) -> None:
    gated = fixture("migration-awaiting-approval")
    got = run_action(argocd_bin, tmp_path, gated, "approve")
    assert got.returncode == 0, got.stderr
    assert gated["status"]["planDigest"] in got.stdout, got.stdout
    active, paused = fixture("backupschedule-scheduled"), fixture("backupschedule-suspended")
    assert list_actions(argocd_bin, tmp_path, active) == {"resume": False, "suspend": True}
    assert list_actions(argocd_bin, tmp_path, paused) == {"resume": True, "suspend": False}
    assert "suspend" in run_action(argocd_bin, tmp_path, active, "suspend").stdout


def test_argo_cd_runs_backup_now(argocd_bin: Path, tmp_path: Path) -> None:
    env = copy.deepcopy(fixture("environment-ready"))
    env["spec"]["backups"] = {"store": {"path": "/var/lib/ferry/backups"}}
    assert list_actions(argocd_bin, tmp_path, env) == {"backup-now": True}
    got = run_action(argocd_bin, tmp_path, env, "backup-now")
    assert got.returncode == 0, got.stderr
    assert got.stdout.startswith("Following resource was created:"), got.stdout
    created = yaml.safe_load(got.stdout.split("\n", 1)[1])
    assert created["kind"] == "Backup" and created["spec"] == {
        "environment": "dev",
        "reason": "manual",
    }
    assert created["metadata"]["name"].startswith("dev-")
    assert "ownerReferences" not in created["metadata"]


def test_argo_cd_refuses_backup_now_for_a_name_too_long_to_extend(
    argocd_bin: Path, tmp_path: Path
) -> None:
    env = copy.deepcopy(fixture("environment-ready"))
    env["spec"]["backups"] = {"store": {"path": "/var/lib/ferry/backups"}}
    env["metadata"]["name"] = "e" * 238
    assert run_action(argocd_bin, tmp_path, env, "backup-now").returncode == 0
    env["metadata"]["name"] = "e" * 239
    refused = run_action(argocd_bin, tmp_path, env, "backup-now")
    assert refused.returncode != 0
    assert "name is too long" in refused.stderr + refused.stdout
