"""The result file: how a command run as a Kubernetes Job tells the operator its outcome.

The operator runs heavy work as a Job whose container runs this CLI (docs/concepts.md,
"Job mode") and sets ``FERRY_RESULT_FILE`` to the container's termination-message path.
The command writes one small JSON object there (the outcome, the backup's ID, counts;
for a failure the exit code, reason and one-line message, redacted as stderr's is), and
the kubelet hands it to the operator in the pod's status: never through the logs.
Without the variable nothing is written.
"""

from __future__ import annotations

import json
import os
from typing import Any

from controller.commands.backup import RestoreResult
from controller.commands.migrate import MigrationResult
from controller.commands.rollback import RollbackResult

RESULT_FILE_ENV = "FERRY_RESULT_FILE"
LIMIT = 4096  # the kubelet keeps at most 4096 bytes of a termination message


def write_result(outcome: str, **fields: Any) -> None:
    path = os.environ.get(RESULT_FILE_ENV)
    if not path:
        return
    data = {"outcome": outcome, **fields}
    text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    if len(text.encode()) > LIMIT and "message" in data:
        data["message"] = str(data["message"])[:1024]
        text = json.dumps(data, separators=(",", ":"), sort_keys=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)


def write_failure(
    exit_code: int, reason: str, message: str, error: str = "", problems: list[str] | None = None
) -> None:
    """A failure: ``error`` names the error's class (``Reverted``, ``CheckFailed``…) so
    the operator ends the object as the in-process path would; ``problems`` are a
    failed check's, as many as fit."""
    fields: dict[str, Any] = {"exitCode": exit_code, "reason": reason, "message": message}
    if error:
        fields["error"] = error
    shown = list(problems or [])
    while shown and len(json.dumps([*shown, message])) > LIMIT // 2:
        shown.pop()
    if shown:
        fields["problems"] = shown
    write_result("failed", **fields)


def write_restored(result: RestoreResult) -> None:
    """A restore's result: what the operator puts into the Restore's status. The
    restored tables' names are left out (the operator knows them from the backup and
    ``--tables``), and so are the dropped ones' if they would not fit."""
    fields: dict[str, Any] = {
        "backupId": result.backup.id,
        "tables": len(result.tables),
        "rows": result.rows,
        "dropped": list(result.dropped),
        "safetyBackupId": result.safety_backup,
        "undoneMigrations": list(result.undone),
        "files": result.files.to_dict() if result.files else None,
    }
    if len(json.dumps(fields)) > LIMIT // 2:
        fields["dropped"] = len(result.dropped)
    write_result("completed", **fields)


def write_migrated(result: MigrationResult) -> None:
    """A migration's result (``ferry migrate``): its ID, ledger status, pre-migration
    backup and warnings. The operator asks the target's ledger whether it committed;
    this adds what the ledger does not keep (the warnings after the commit)."""
    fields: dict[str, Any] = {
        "id": result.id,
        "status": result.status,
        "digest": result.digest or (result.plan.digest if result.plan else ""),
        "backupId": result.backup_id,
        "message": result.message,
        "warnings": [w[:500] for w in result.warnings[:5]],
        "planned": result.plan is not None,
    }
    if result.status in ("succeeded", "noop"):
        write_result("completed", **fields)
        return
    write_result("failed", exitCode=1, reason="ApplyFailed", **fields)


def write_rolled_back(result: RollbackResult) -> None:
    """A scoped rollback's result (``ferry rollback``): what the operator puts into the
    Restore's status. Later edits are shortened and, if they would not fit, fewer."""
    fields = result.to_dict()
    edits = [str(e)[:200] for e in fields.pop("laterEdits")]
    while edits and len(json.dumps({**fields, "laterEdits": edits})) > LIMIT // 2:
        edits.pop()
    write_result("completed", **fields, laterEdits=edits)
