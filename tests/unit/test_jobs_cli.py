"""The container side of Job mode: ``ferry backup create`` reads its database from the
environment and reports its outcome in the result file (the termination message), for
success and for every failure class, without a password in it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from controller.api.execution import ExecutionMode, effective, parse_execution
from controller.api.resources import Node
from controller.cli.main import main
from controller.errors import InvalidInput


def result(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    assert isinstance(data, dict)
    return data


def test_success_is_written_with_the_backup_id_and_counts(
    url: str, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "termination-log"
    monkeypatch.setenv("FERRY_RESULT_FILE", str(out))
    monkeypatch.setenv("FERRY_DATABASE_URL", url)
    code = main(["backup", "create", "--store", str(store), "--environment", "prod",
                 "--reason", "scheduled"])  # fmt: skip
    got = result(out)
    assert code == 0 and got["outcome"] == "completed"
    manifest = json.loads((store / "prod" / got["id"] / "manifest.json").read_text())
    members = manifest["members"]
    assert manifest["reason"] == "scheduled" and got["rows"] == sum(m["rows"] for m in members)
    assert got["tables"] == len(members) and got["environment"] == "prod"


@pytest.mark.parametrize(
    ("database", "code", "reason"),
    [
        pytest.param("postgresql+psycopg://app@127.0.0.1:1/app", 75, "Unreachable", id="down"),
        pytest.param("mysql+pymysql://app@[::1/x", 2, "InvalidInput", id="malformed"),
    ],
)
def test_a_failure_is_written_with_its_exit_code_and_reason_and_no_password(
    store: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    database: str,
    code: int,
    reason: str,
) -> None:
    out = tmp_path / "termination-log"
    monkeypatch.setenv("FERRY_RESULT_FILE", str(out))
    monkeypatch.setenv("FERRY_DATABASE_URL", database)
    monkeypatch.setenv("FERRY_DATABASE_PASSWORD", "pa55-w0rd/with@chars")
    got_code = main(["backup", "create", "--store", str(store)])
    got = result(out)
    assert got_code == code and got["exitCode"] == code and got["outcome"] == "failed"
    assert got["reason"] == reason and "\n" not in got["message"]
    assert "pa55-w0rd" not in out.read_text()
    assert list(store.iterdir()) == []


def test_without_the_variable_nothing_is_written(
    url: str, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FERRY_RESULT_FILE", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["backup", "create", "--store", str(store), "--database", url]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prod.db", "store"]


def test_no_database_at_all_is_invalid_input(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FERRY_DATABASE_URL", raising=False)
    assert main(["backup", "create", "--store", str(store)]) == 2


def execution(**spec: Any) -> Node:
    from controller.api.backup import FIELDS_READ

    return Node.root({"spec": {"environment": "e", "execution": spec}}, "Backup", FIELDS_READ)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"mode": "Cron"}, "spec.execution.mode: unknown value 'Cron'"),
        ({"activeDeadlineSeconds": 0}, "activeDeadlineSeconds: expected an integer >= 1"),
        ({"activeDeadlineSeconds": 10**9}, "activeDeadlineSeconds: at most 604800"),
        ({"backoffLimit": 11}, "backoffLimit: at most 10"),
        ({"resources": {"limits": {"memory": "lots"}}}, "memory: malformed value 'lots'"),
        ({"resources": {"limits": {"gpu": "1"}}}, "unknown field(s) gpu"),
        ({"storeVolumeClaim": "Not_A_Name"}, "storeVolumeClaim"),
        ({"image": "evil:latest"}, "unknown field(s) image"),
    ],
)
def test_an_invalid_execution_is_refused(spec: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_execution(execution(**spec))
    assert fragment in err.value.message


def test_a_backup_overrides_only_the_keys_it_sets() -> None:
    env = parse_execution(execution(mode="Job", backoffLimit=5, storeVolumeClaim="c"))
    own = parse_execution(execution(activeDeadlineSeconds=60))
    merged = effective(own, env)
    assert merged.mode is ExecutionMode.JOB and merged.backoff_limit == 5
    assert merged.active_deadline_seconds == 60 and merged.store_volume_claim == "c"
    assert effective(None, None).mode is ExecutionMode.IN_PROCESS
    off = effective(parse_execution(execution(mode="InProcess")), env)
    assert not off.is_job
