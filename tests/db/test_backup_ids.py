"""A backup ID given to the writer (``ferry backup create --id``, the operator's Jobs):
a complete backup of it is never written over, and a writer of it removes what a
stopped earlier writer of the same ID left, nothing else. The filesystem store and the
S3 store against the real S3 server the db tier runs (SeaweedFS)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from controller.backups import writers
from controller.backups.s3store import S3Store
from controller.backups.store import BackupStore, FilesystemStore
from controller.commands.backup import create_backup, verify
from controller.errors import BackupExists
from tests.fixtures import nocobase_shape as shape
from tests.hostile import assert_one_line_error, run_cli

pytestmark = pytest.mark.db


class Place:
    """A store and how to look at everything in it, byte for byte."""

    def __init__(self, store: BackupStore, url: str, objects: Callable[[], dict[str, bytes]]):
        self.store, self.url, self.objects = store, url, objects


def _fs(tmp_path: Path) -> Place:
    root = tmp_path / "store"
    root.mkdir()

    def objects() -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    return Place(FilesystemStore(root), str(root), objects)


def _s3(bucket: str) -> Place:
    store = S3Store(bucket, "ids")

    def objects() -> dict[str, bytes]:
        listed = store.client.list_objects_v2(Bucket=bucket, Prefix="").get("Contents", [])
        return {
            o["Key"]: store.client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in listed
        }

    return Place(store, f"s3://{bucket}/ids", objects)


@pytest.fixture(params=["filesystem", "s3"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "filesystem":
        return _fs(tmp_path)
    request.getfixturevalue("aws_env")
    return _s3(request.getfixturevalue("s3_bucket"))


@pytest.fixture
def src(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/src.db"
    shape.build(url)
    return url


def test_a_complete_backup_is_never_written_over(place: Place, src: str) -> None:
    manifest, _ = create_backup(src, place.store, environment="e", backup_id="nightly-1")
    assert manifest.id == "nightly-1"
    before = place.objects()
    argv = ["backup", "create", "--database", src, "--store", place.url]
    refused = run_cli([*argv, "--environment", "e", "--id", "nightly-1"])
    assert refused.code == 2, refused
    assert "backup nightly-1 already exists" in assert_one_line_error(refused.stderr)
    assert place.objects() == before
    assert verify(place.store, "nightly-1")[1] == []


def test_a_backup_that_appears_before_the_publish_is_not_written_over(
    place: Place, src: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer of the ID published while this one wrote (the ID's owner broke
    the one-writer rule): this one is refused as it publishes, and its abort leaves
    the other's backup whole. With S3, also with the look before the write skipped:
    the conditional write alone refuses."""
    winner, _ = create_backup(src, place.store, environment="e", backup_id="w")
    published = place.objects()

    def hide_and_return() -> None:
        for key, data in published.items():
            _put(place, key, data)

    # The winner is moved aside, the loser writes, the winner comes back just before
    # the loser publishes.
    _clear(place)
    if isinstance(place.store, S3Store):
        # The look before the manifest's write (the second look of three: the writer's
        # start, the publish, the abort) says "none": the server's condition decides.
        complete, looks = S3Store._complete, []

        def blind_at_publish(self: S3Store, prefix: str) -> bool:
            looks.append(prefix)
            return False if len(looks) == 2 else complete(self, prefix)

        monkeypatch.setattr(S3Store, "_complete", blind_at_publish)
    says = "a complete backup is there" if isinstance(place.store, S3Store) else "already exists"
    with pytest.raises(BackupExists, match=says):
        create_backup(src, place.store, environment="e", backup_id="w",
                      on_publish=hide_and_return)  # fmt: skip
    assert _manifests(place.objects()) == _manifests(published)
    if isinstance(place.store, FilesystemStore):
        assert place.objects() == published  # and no partial left
    monkeypatch.undo()
    assert place.store.manifest("w", "e").checksum == winner.checksum
    assert verify(place.store, "w")[1] == []


def test_a_writer_removes_only_what_a_stopped_writer_of_its_id_left(place: Place, src: str) -> None:
    """The leftovers of a writer of the same ID, its owner record saying it runs here
    (as a pod on another node could not be told from one that runs): removed. Another
    ID's, even one that starts the same: kept."""
    owner = writers.owner_record()  # this process: alive
    if isinstance(place.store, FilesystemStore):
        stale = {
            "e/.partial-job-1+0badc0de/tables/0000-old.arrow": b"old",
            "e/.partial-job-1+0badc0de/.writer": owner,
            "e/.partial-job-1/.writer": owner,
        }
        kept = {"e/.partial-job-10+feedf00d/.writer": owner}
    else:
        stale = {"ids/e/job-1/tables/9999-old.arrow": b"old", "ids/e/job-1/.writer": owner}
        kept = {"ids/e/job-10/.writer": owner}  # fmt: skip
    for key, data in {**stale, **kept}.items():
        _put(place, key, data)
    manifest, _ = create_backup(src, place.store, environment="e", backup_id="job-1")
    left = place.objects()
    assert not set(stale) & set(left), sorted(left)
    assert set(kept) <= set(left)
    assert verify(place.store, manifest.id)[1] == []
    assert not any("9999-old" in key for key in left)


def _manifests(objects: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in objects.items() if k.endswith("manifest.json")}


def _put(place: Place, key: str, data: bytes) -> None:
    if isinstance(place.store, S3Store):
        place.store.client.put_object(Bucket=place.store.bucket, Key=key, Body=data)
        return
    path = Path(place.url) / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _clear(place: Place) -> Any:
    if isinstance(place.store, S3Store):
        for key in place.objects():
            place.store.client.delete_object(Bucket=place.store.bucket, Key=key)
        return
    for item in Path(place.url).iterdir():
        shutil.rmtree(item)
