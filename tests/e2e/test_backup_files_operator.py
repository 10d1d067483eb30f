"""The application's files through the operator: an Environment with ``spec.files``,
a Backup, a change to files and rows, a Restore that brings both back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.db.dbhelpers import dump, execute
from tests.e2e.conftest import Kubectl
from tests.e2e.test_backups_operator import artifact, backup, restore, wait_phase
from tests.e2e.test_operator import apply_ok, environment

pytestmark = pytest.mark.e2e


@pytest.fixture
def tidy(kubectl: Kubectl, namespace: str, operator: Any) -> Iterator[None]:
    yield
    kubectl("delete", "restores,backups", "--all", "-n", namespace, "--timeout=60s", check=False)


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".ferry-displaced" not in p.relative_to(root).parts
    }


def test_backup_and_restore_carry_the_files(
    kubectl: Kubectl, namespace: str, tidy: None, sqlite_envs: dict[str, str], tmp_path: Path
) -> None:
    url, store, files = sqlite_envs["dev"], tmp_path / "backups", tmp_path / "storage"
    (files / "uploads").mkdir(parents=True)
    (files / "uploads" / "logo.png").write_bytes(b"\x89PNG" + bytes(range(256)) * 64)
    (files / "environment-variables").mkdir()
    (files / "environment-variables" / "dev").write_bytes(b"the application's key")
    extra = f"  files: {{path: {files}, exclude: ['*.tmp']}}\n"
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", url, store=str(store), extra=extra),
    )
    apply_ok(kubectl, namespace, backup("with-files", "dev"))
    done = wait_phase(kubectl, "backup", namespace, "with-files", {"Completed", "Failed"})
    assert done["phase"] == "Completed", done
    assert "1 files" in done["message"], done
    logo = (files / "uploads" / "logo.png").stat().st_size
    # status.files went through the API server's schema for the Backup's status
    assert done["files"] == {
        "count": 1,
        "bytes": logo,
        "consistency": "copied-after-snapshot",
        "skipped": 0,
    }, done
    manifest = json.loads(artifact(store, "dev", done["id"]).read_text())
    assert manifest["version"] == 4
    assert [e["path"] for e in manifest["files"]["entries"]] == ["uploads/logo.png"]
    assert manifest["files"]["consistency"] == "copied-after-snapshot"

    rows_before, files_before = dump(url), _tree(files)
    execute(url, "update roles set title = 'changed by hand'")
    (files / "uploads" / "logo.png").write_bytes(b"replaced")
    (files / "uploads" / "later.pdf").write_bytes(b"uploaded after the backup")
    (files / "uploads" / "scratch.tmp").write_bytes(b"excluded: left alone")
    apply_ok(kubectl, namespace, restore("back", "  backup: with-files\n"))
    finished = wait_phase(kubectl, "restore", namespace, "back", {"Completed", "Failed"})
    assert finished["phase"] == "Completed", finished
    assert "2 moved aside" in finished["message"], finished
    assert dump(url) == rows_before
    assert _tree(files) == {**files_before, "uploads/scratch.tmp": b"excluded: left alone"}
    aside = next((files / ".ferry-displaced").iterdir())
    assert finished["files"] == {
        "root": str(files),
        "written": 1,
        "unchanged": 0,
        "displaced": 2,
        "displacedTo": f".ferry-displaced/{aside.name}/",
    }, finished
    assert _tree(aside) == {
        "uploads/logo.png": b"replaced",
        "uploads/later.pdf": b"uploaded after the backup",
    }
