"""Who is writing a backup, so a store can tell debris from a backup in progress.

A writer killed outright (SIGKILL, OOM, a node lost) cannot clean up after itself. Each
writer leaves a small owner record in its partial backup (host, process ID, the
process's start time); the next writer of the store removes partial backups whose
owner is gone from this host, and any older than :data:`STALE_AFTER_SECONDS`.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

OWNER = ".writer"
STALE_AFTER_SECONDS = 6 * 3600.0


def _start_ticks(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def owner_record() -> bytes:
    pid = os.getpid()
    return json.dumps(
        {"host": socket.gethostname(), "pid": pid, "start": _start_ticks(pid)}
    ).encode()


def owner_gone(record: bytes) -> bool:
    """True when the record names a process on this host that no longer runs."""
    try:
        data = json.loads(record)
        host, pid, start = data["host"], int(data["pid"]), data.get("start")
    except (ValueError, KeyError, TypeError, RecursionError):
        return False
    if host != socket.gethostname() or pid <= 0:
        return False
    ticks = _start_ticks(pid)
    if ticks is None:
        return True  # no such process
    return start is not None and ticks != start  # the PID was reused
