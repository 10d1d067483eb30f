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


def write_failure(exit_code: int, reason: str, message: str) -> None:
    write_result("failed", exitCode=exit_code, reason=reason, message=message)
