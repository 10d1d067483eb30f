"""The pre-migration backup reports its steps to the migration's fault hook.

The node tier holds the operator's pod in a Migration's backup (``member:<table>``) to
kill it there; before, the backup never saw the hook, so no failpoint could reach it.
A failure injected there ends the migration before any write.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from controller.backups.store import FilesystemStore
from controller.commands.migrate import MigrationRequest, migrate
from controller.errors import PermanentError
from tests.db.dbhelpers import dump
from tests.fixtures import nocobase_shape as shape

MakeDb = Callable[..., str]
VARS = {"HOOK_TOKEN": ("secret", "t"), "TICKET_WEBHOOK": ("plain", "u")}


def test_the_backup_reports_members_before_the_apply_and_a_failure_there_writes_nothing(
    dialect: str, make_database: MakeDb, tmp_path: Path
) -> None:
    dev, pre = make_database(dialect, "dev"), make_database(dialect, "pre")
    shape.build(dev, app="dev")
    shape.builder_changes(dev)
    shape.build(pre, app="pre", variables=VARS)
    store = FilesystemStore(tmp_path / "store")
    steps: list[str] = []
    migrate(MigrationRequest(dev, pre, store=store, environment="pre", fault=steps.append))
    assert "member:uiSchemas" in steps and "rows:uiSchemas" in steps
    assert steps.index("member:uiSchemas") < steps.index("rows:uiSchemas")

    again = make_database(dialect, "pre2")
    shape.build(again, app="pre", variables=VARS)
    before = dump(again)

    def fault(step: str) -> None:
        if step == "member:uiSchemas":
            raise PermanentError("the operator died in the backup (injected)")

    with pytest.raises(PermanentError, match="died in the backup"):
        migrate(MigrationRequest(dev, again, store=store, environment="pre", fault=fault))
    after = dump(again)
    after.pop("ferry_migrations", None)
    before.pop("ferry_migrations", None)
    assert after == before
