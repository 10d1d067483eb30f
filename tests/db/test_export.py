"""`ferry export`: deterministic, reviewable, secret-free, and a source as good as the DB."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from controller.commands.export import export
from controller.commands.migrate import MigrationRequest, migrate, plan_only
from controller.commands.planning import PlanOptions
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_refused

MakeDb = Callable[..., str]
VARS = {"HOOK_TOKEN": ("secret", "SUPER-SECRET-VALUE"), "TICKET_WEBHOOK": ("plain", "u")}


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_export_is_deterministic_and_secret_free(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    dev = make_database(dialect, "dev")
    shape.build(dev, app="dev", variables=VARS)
    shape.builder_changes(dev)
    first, second = tmp_path / "a", tmp_path / "b"
    result = export(dev, first, PlanOptions())
    export(dev, second, PlanOptions())
    assert _files(first) == _files(second)
    assert result.with_rows > 5
    everything = b"".join(_files(first).values())
    assert b"SUPER-SECRET-VALUE" not in everything
    assert b"REDACTED-HASH" not in everything  # users are business data: never exported
    roles = (first / "tables" / "roles.yaml").read_text()
    assert roles.index("name: admin") < roles.index("name: member") < roles.index("name: root")
    assert "x-component" in (first / "tables" / "uiSchemas.yaml").read_text()  # JSON as YAML


def test_snapshot_plans_and_migrates_like_the_database(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    dev, pre = make_database(dialect, "dev"), make_database(dialect, "pre")
    shape.build(dev, app="dev", variables=VARS)
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables=VARS)
    snapshot = tmp_path / "snap"
    export(dev, snapshot, PlanOptions())
    from_db = plan_only(dev, pre, PlanOptions()).plan
    from_dir = plan_only(str(snapshot), pre, PlanOptions()).plan
    assert from_dir.digest == from_db.digest
    result = migrate(MigrationRequest(str(snapshot), pre))
    assert result.status == "succeeded", result.message
    assert not plan_only(dev, pre, PlanOptions()).plan.changes_anything


def test_plan_from_a_git_revision(tmp_path: Path) -> None:
    import subprocess

    from controller.cli.main import main

    dev, pre = f"sqlite:///{tmp_path}/dev.db", f"sqlite:///{tmp_path}/pre.db"
    shape.build(dev, app="dev", variables=VARS)
    shape.build(pre, app="pre", variables=VARS)
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    export(dev, repo / "app", PlanOptions())
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    subprocess.run([*git, "tag", "v1"], check=True)
    shape.builder_changes(dev)
    export(dev, repo / "app", PlanOptions())
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "tickets"], check=True)
    v1 = plan_only(f"git+file://{repo}#revision=v1&path=app", pre, PlanOptions()).plan
    head = plan_only(f"git+file://{repo}#path=app", pre, PlanOptions()).plan
    assert v1.table("roles").insert == 0  # type: ignore[union-attr]
    assert head.table("roles").insert == 1  # type: ignore[union-attr]
    assert (
        main(["plan", "--source", f"git+file://{repo}#revision=nope&path=app", "--target", pre])
        == 2
    )


def test_literal_credentials_are_never_exported(tmp_path: Path) -> None:
    from controller.errors import CheckFailed
    from tests.db.dbhelpers import execute

    dev = f"sqlite:///{tmp_path}/dev.db"
    shape.build(dev, app="dev", variables=VARS)
    target = tmp_path / "snap"
    export(dev, target, PlanOptions())
    before = _files(target)
    execute(
        dev,
        "update flow_nodes set config = "
        '\'{"url": "https://x", "headers": {"password": "hunter2-literal"}}\' '
        "where key = 'node1-0'",
    )
    with pytest.raises(CheckFailed) as err:
        export(dev, target, PlanOptions())
    assert any("flow_nodes" in p and "headers.password" in p for p in err.value.problems)
    assert "hunter2-literal" not in str(err.value) + " ".join(err.value.problems)
    assert _files(target) == before  # the previous snapshot is untouched
    execute(
        dev,
        "update flow_nodes set config = "
        '\'{"headers": {"password": "{{$env.HOOK_TOKEN}}"}}\' where key = \'node1-0\'',
    )
    export(dev, target, PlanOptions())
    assert b"{{$env.HOOK_TOKEN}}" in b"".join(_files(target).values())


def test_export_deletes_only_the_files_it_wrote(make_database: MakeDb, tmp_path: Path) -> None:
    """A note kept beside the snapshot survives; a table no longer exported goes."""
    dev = make_database("sqlite", "dev")
    shape.build(dev, app="dev", variables=VARS)
    project = tmp_path / "proj"
    export(dev, project, PlanOptions())
    note = project / "tables" / "my-notes.txt"
    note.write_text("why roles look like this\n", encoding="utf-8")
    readme = project / "README.md"
    readme.write_text("# config\n", encoding="utf-8")
    stale = project / "tables" / "roles.yaml"
    manifest = project / "ferry-snapshot.yaml"
    text = manifest.read_text(encoding="utf-8")
    assert "- roles\n" in text
    # Pretend an earlier export also wrote a table that is gone now.
    manifest.write_text(text.replace("- roles\n", "- roles\n- droppedTable\n"), encoding="utf-8")
    gone = project / "tables" / "droppedTable.yaml"
    gone.write_text("table: droppedTable\n", encoding="utf-8")
    export(dev, project, PlanOptions())
    assert note.read_text(encoding="utf-8") == "why roles look like this\n"
    assert readme.exists() and stale.exists()
    assert not gone.exists()
    assert "droppedTable" not in manifest.read_text(encoding="utf-8")


def test_export_refuses_a_symlinked_tables_folder(make_database: MakeDb, tmp_path: Path) -> None:
    dev = make_database("sqlite", "dev")
    shape.build(dev, app="dev", variables=VARS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("x", encoding="utf-8")
    project = tmp_path / "proj"
    project.mkdir()
    (project / "tables").symlink_to(elsewhere, target_is_directory=True)
    assert_refused(
        ["export", "--source", dev, "--dir", str(project), "--profile", "generic"],
        2,
        watched=[elsewhere, dev],
        says="symbolic link",
    )
