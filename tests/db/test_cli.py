"""The `ferry` command line: formats, exit codes, and no secrets in its output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli.main import main
from tests.db.dbhelpers import dump
from tests.fixtures import nocobase_shape as shape

VARS = {"HOOK_TOKEN": ("secret", "x"), "TICKET_WEBHOOK": ("plain", "y")}


@pytest.fixture
def sqlite_envs(tmp_path: Path) -> tuple[str, str]:
    dev, pre = f"sqlite:///{tmp_path}/dev.db", f"sqlite:///{tmp_path}/pre.db"
    shape.build(dev, app="dev", variables=VARS)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables=VARS)
    return dev, pre


def test_plan_json_shape(sqlite_envs: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    dev, pre = sqlite_envs
    assert main(["plan", "--source", dev, "--target", pre, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["digest"].startswith("sha256:") and isinstance(out["warnings"], list)
    roles = next(t for t in out["tables"] if t["table"] == "roles")
    assert {k: roles[k] for k in ("rule", "insert", "update", "delete", "unchanged")} == {
        "rule": "overwrite",
        "insert": 1,
        "update": 0,
        "delete": 0,
        "unchanged": 3,
    }
    assert "schema" in roles


def test_plan_markdown(sqlite_envs: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    dev, pre = sqlite_envs
    assert main(["plan", "--source", dev, "--target", pre, "--format", "markdown"]) == 0
    assert "| `roles` | overwrite | 1 | 0 | 0 | 3 |" in capsys.readouterr().out


def test_migrate_json_then_noop(
    sqlite_envs: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dev, pre = sqlite_envs
    args = ["migrate", "--source", dev, "--target", pre, "--id", "r1", "--format", "json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["id"] == "r1" and first["status"] == "succeeded"
    assert first["digest"].startswith("sha256:") and first["tables"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "noop"


def test_invalid_rules_exit_2_naming_the_value(
    sqlite_envs: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev, pre = sqlite_envs
    rules = tmp_path / "rules.yaml"
    rules.write_text("system: overwrte\n")
    assert main(["plan", "--source", dev, "--target", pre, "--rules", str(rules)]) == 2
    assert "overwrte" in capsys.readouterr().err


def test_missing_variables_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dev, pre = f"sqlite:///{tmp_path}/dev.db", f"sqlite:///{tmp_path}/pre.db"
    shape.build(dev, app="dev", variables=VARS)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables={})
    assert main(["migrate", "--source", dev, "--target", pre]) == 2
    err = capsys.readouterr().err
    assert "HOOK_TOKEN, TICKET_WEBHOOK" in err and "nothing was changed" in err
    variables = tmp_path / "vars.yaml"
    variables.write_text("HOOK_TOKEN: x\nTICKET_WEBHOOK: y\n")
    assert main(["migrate", "--source", dev, "--target", pre, "--variables", str(variables)]) == 0


def test_same_source_and_target_refused(
    sqlite_envs: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dev, _ = sqlite_envs
    assert main(["plan", "--source", dev, "--target", dev]) == 2
    assert "same database" in capsys.readouterr().err


def test_unreachable_database_hides_password(
    sqlite_envs: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    dev, _ = sqlite_envs
    target = "postgresql+psycopg://ferry:hunter2-secret@127.0.0.1:1/nowhere"
    assert main(["plan", "--source", dev, "--target", target]) == 75
    captured = capsys.readouterr()
    assert "hunter2-secret" not in captured.err + captured.out
    assert "unreachable" in captured.err


def test_bad_source_exit_2(
    sqlite_envs: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, pre = sqlite_envs
    assert main(["plan", "--source", str(tmp_path / "nope"), "--target", pre]) == 2
    assert "neither a database URL nor a snapshot directory" in capsys.readouterr().err


def test_migrate_reports_its_backup_and_rollback_undoes_it(
    sqlite_envs: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dev, pre = sqlite_envs
    store = str(tmp_path / "store")
    assert (
        main(
            [
                "migrate",
                "--source",
                dev,
                "--target",
                pre,
                "--id",
                "r1",
                "--backup-store",
                store,
                "--format",
                "json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "succeeded" and out["backupId"]
    assert main(["backup", "list", "--store", store, "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [b["id"] for b in listed] == [out["backupId"]]
    assert listed[0]["reason"] == "pre-migration"
    assert main(["backup", "verify", out["backupId"], "--store", store]) == 0
    capsys.readouterr()
    assert (
        main(
            [
                "rollback",
                "--store",
                store,
                "--migration",
                "r1",
                "--database",
                pre,
                "--format",
                "json",
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["status"] == "rolled-back"
    assert main(["rollback", "--store", store, "--migration", "r1", "--database", pre]) == 2
    assert "rolled-back" in capsys.readouterr().err


NO_BACKUP_WARNING = "warning: --no-backup is deprecated; use --skip-backup\n"


@pytest.mark.parametrize("flag", ["--skip-backup", "--no-backup"])
def test_no_backup_is_stated(
    flag: str,
    sqlite_envs: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--no-backup`` is the deprecated spelling of ``--skip-backup`` (issue #10): the
    same migration, no store created, and one warning line for the old spelling only."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FERRY_BACKUP_STORE", raising=False)
    dev, pre = sqlite_envs
    assert main(["migrate", "--source", dev, "--target", pre, "--id", "r1", flag]) == 0
    out, err = capsys.readouterr()
    assert "migration r1: succeeded" in out
    assert "pre-migration backup: skipped (--skip-backup)" in out
    assert err == ("" if flag == "--skip-backup" else NO_BACKUP_WARNING)
    assert not (tmp_path / "ferry-backups").exists()


def test_both_spellings_of_skip_backup_migrate_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    targets, results = {}, {}
    for flag in ("--skip-backup", "--no-backup"):
        dev, pre = f"sqlite:///{tmp_path}/dev{flag}.db", f"sqlite:///{tmp_path}/pre{flag}.db"
        shape.build(dev, app="dev", variables=VARS)
        shape.builder_changes(dev)
        shape.build(pre, app="pre", variables=VARS)
        argv = ["migrate", "--source", dev, "--target", pre, "--id", "r1", "--format", "json"]
        assert main([*argv, flag, "--backup-store", str(tmp_path / "store")]) == 0
        result = json.loads(capsys.readouterr().out)
        assert result["status"] == "succeeded" and result["backupId"] is None, result
        results[flag] = result
        targets[flag] = {k: v for k, v in dump(pre).items() if k != "ferry_migrations"}
    assert results["--skip-backup"] == results["--no-backup"]
    assert targets["--skip-backup"] == targets["--no-backup"]
    assert not (tmp_path / "store").exists()


def _backup_tables(argv: list[str], store: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    assert main([*argv, "--format", "json"]) == 0
    backup_id = json.loads(capsys.readouterr().out)["id"]
    assert main(["backup", "show", backup_id, "--store", str(store), "--format", "json"]) == 0
    return sorted(m["table"] for m in json.loads(capsys.readouterr().out)["members"])


@pytest.mark.parametrize("flag", ["--tables", "--exclude"])
def test_list_flags_repeated_or_comma_separated_back_up_alike(
    flag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path}/app.db"
    shape.build(db)
    store = tmp_path / "store"
    create = ["backup", "create", "--database", db, "--store", str(store)]
    comma = _backup_tables([*create, flag, "roles,users"], store, capsys)
    repeated = _backup_tables([*create, flag, "roles", flag, "users"], store, capsys)
    mixed = _backup_tables([*create, flag, "users", flag, " roles , users"], store, capsys)
    assert comma == repeated == mixed
    everything = _backup_tables(create, store, capsys)
    chosen = ["roles", "users"]
    assert comma == (chosen if flag == "--tables" else sorted(set(everything) - set(chosen)))


def test_restore_tables_repeated_or_comma_separated_restore_alike(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path}/app.db"
    shape.build(db)
    store = tmp_path / "store"
    assert (
        main(["backup", "create", "--database", db, "--store", str(store), "--format", "json"]) == 0
    )
    backup_id = json.loads(capsys.readouterr().out)["id"]
    restore = ["restore", "--store", str(store), "--backup", backup_id, "--database", db]
    restored = []
    for tables in (["--tables", "roles,users"], ["--tables", "roles", "--tables", "users"]):
        assert main([*restore, *tables, "--format", "json"]) == 0
        out, err = capsys.readouterr()
        assert err == ""
        restored.append(sorted(json.loads(out)["tables"]))
    assert restored == [["roles", "users"], ["roles", "users"]]


def test_backup_create_json_and_damaged_verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"sqlite:///{tmp_path}/app.db"
    shape.build(db)
    store = tmp_path / "store"
    assert (
        main(
            [
                "backup",
                "create",
                "--database",
                db,
                "--store",
                str(store),
                "--environment",
                "prod",
                "--exclude",
                "users",
                "--format",
                "json",
            ]
        )
        == 0
    )
    created = json.loads(capsys.readouterr().out)
    assert set(created) == {"id", "location", "tables", "rows", "bytes", "checksum", "files"}
    assert created["files"] is None  # no files root: the backup holds rows only
    assert main(["backup", "show", created["id"], "--store", str(store)]) == 0
    assert "users" not in capsys.readouterr().out
    member = next((store / "prod" / created["id"] / "tables").iterdir())
    member.write_bytes(member.read_bytes()[:-10])
    assert main(["backup", "verify", created["id"], "--store", str(store)]) == 2
    assert "corrupted or truncated" in capsys.readouterr().err
