"""A drill of a backup with the application's files proves the files too, on SQLite,
PostgreSQL and MariaDB, through ``ferry backup drill``.

A drill restores rows into a scratch database and writes no file anywhere, so until it
read the file members a backup whose files were damaged drilled green. Now every file
member is read and checked against its manifest's size and sha256: a good backup says
how many files it proved, a damaged one fails (exit 1) naming the member.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.backups.store import FilesystemStore
from tests.db.test_backup_drill import _condition, _schedule_cluster, _tick
from tests.db.test_backup_files import PNG, app_with_files, backup_cli, tamper_logo
from tests.hostile import run_cli

pytestmark = pytest.mark.db
MakeDb = Callable[..., str]
UPLOADS_BYTES = len(PNG) + len("notes v1\n")  # logo.png, notes…txt and the empty file


def drilled(dialect: str, make_database: MakeDb, tmp_path: Path) -> tuple[Path, str, str, str]:
    """A backup with files of a NocoBase-shaped database: its store, its ID, a scratch
    database and the database's URL."""
    db, files, store = app_with_files(dialect, make_database, tmp_path)
    scratch = (
        f"sqlite:///{tmp_path / 'scratch.db'}"
        if dialect == "sqlite"
        else make_database(dialect, "scratch")
    )
    return store, backup_cli(store, db, files), scratch, db


def drill(store: Path, backup_id: str, scratch: str, *extra: str) -> tuple[int, str, str]:
    out = run_cli(
        ["backup", "drill", backup_id, "--store", str(store), "--scratch", scratch, *extra]
    )
    return out.code, out.stdout, out.stderr


def test_a_drill_proves_the_backups_files(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    store, backup_id, scratch, _ = drilled(dialect, make_database, tmp_path)
    code, out, err = drill(store, backup_id, scratch, "--format", "json")
    assert code == 0, out + err
    result = json.loads(out)
    assert result["outcome"] == "Passed"
    assert result["files"] == {
        "count": 3,
        "bytes": UPLOADS_BYTES,
        "outcome": "Passed",
        "problems": [],
    }
    code, out, _ = drill(store, backup_id, scratch)
    assert code == 0 and "ok     files" in out and "3 file(s)" in out, out


def test_a_drill_of_a_backup_with_a_damaged_file_fails_and_names_it(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    store, backup_id, scratch, _ = drilled(dialect, make_database, tmp_path)
    key = tamper_logo(store, backup_id)

    code, out, err = drill(store, backup_id, scratch, "--format", "json")
    assert code == 1, out + err
    result = json.loads(out)
    assert result["outcome"] == "Failed"
    assert all(t["outcome"] == "Passed" for t in result["tables"])  # the rows restored
    files = result["files"]
    assert (files["count"], files["outcome"]) == (3, "Failed")
    assert len(files["problems"]) == 1 and key in files["problems"][0]
    code, out, _ = drill(store, backup_id, scratch)
    assert code == 1 and "FAILED: 1 file member(s) are damaged" in out, out
    assert key in out


def test_a_schedules_drill_records_the_files_on_the_backup_and_the_schedule(
    make_database: MakeDb, tmp_path: Path
) -> None:
    """Through the operator's flow (SQLite: the dialects are the CLI tests' above)."""
    store, backup_id, scratch, db = drilled("sqlite", make_database, tmp_path)
    cluster = _schedule_cluster("sqlite", db, store, backup_id, scratch)
    status = _tick(cluster, dt.datetime(2026, 11, 29, 4, 0, 1, tzinfo=dt.UTC))
    drilled_status = cluster.get("Backup", "ns", "nightly-20261129020000")["status"]["lastDrill"]
    assert drilled_status == status["lastDrill"]
    assert status["lastDrill"]["files"] == {"count": 3, "bytes": UPLOADS_BYTES, "outcome": "Passed"}
    assert ", 3 files proven in " in status["lastDrill"]["message"]

    manifest = FilesystemStore(store).manifest(backup_id)
    assert manifest.files is not None
    member = store / "prod" / backup_id / manifest.files.entries[0].key
    member.write_bytes(member.read_bytes()[:-1])
    status = _tick(cluster, dt.datetime(2026, 12, 6, 4, 0, 1, tzinfo=dt.UTC))
    cond = _condition(status, "DrillFailed")
    assert (cond["status"], cond["reason"]) == ("True", "BackupNotRestorable")
    assert manifest.files.entries[0].key in cond["message"]
    assert status["lastDrill"]["files"]["outcome"] == "Failed"
