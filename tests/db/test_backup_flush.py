"""A backup's members are flushed to disk on a thread of their own while the next
member is written; the manifest is written only once every one is on disk, and a
failed flush fails the backup, leaving nothing listed and no debris."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from controller.backups import store as store_module
from controller.backups.store import FilesystemStore
from controller.commands.backup import create_backup
from tests.fixtures import nocobase_shape as shape


@pytest.fixture
def src(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/src.db"
    shape.build(url)
    return url


def test_the_manifest_waits_for_every_member_on_disk(
    src: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[str] = []
    fsync, seal = store_module._fsync, store_module.seal_manifest

    def slow_fsync(path: Path) -> None:
        time.sleep(0.02)  # a slow disk: the backup goes on meanwhile
        fsync(path)
        steps.append(f"flushed {path.name}")

    def sealed(*args: object) -> object:
        steps.append("manifest")
        return seal(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(store_module, "_fsync", slow_fsync)
    monkeypatch.setattr(store_module, "seal_manifest", sealed)
    manifest, _ = create_backup(src, FilesystemStore(tmp_path / "store"), environment="e")
    assert steps[-1] == "manifest"
    assert sorted(steps[:-1]) == sorted(f"flushed {Path(m.key).name}" for m in manifest.members)


def test_a_failed_flush_fails_the_backup(
    src: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fsync = store_module._fsync
    flushed: list[str] = []

    def failing(path: Path) -> None:
        flushed.append(path.name)
        if len(flushed) == 3:
            raise OSError(5, "Input/output error (injected)")
        fsync(path)

    monkeypatch.setattr(store_module, "_fsync", failing)
    store = FilesystemStore(tmp_path / "store")
    with pytest.raises(OSError, match="injected"):
        create_backup(src, store, environment="e")
    assert store.manifests() == []
    assert list((tmp_path / "store" / "e").iterdir()) == []  # debris removed
