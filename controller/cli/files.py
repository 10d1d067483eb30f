"""Files and directories named on the command line: read or created, never guessed.

Paths come from users and from scripts that build them; each helper turns every way
a path can be wrong into one :class:`InvalidInput` line that names it (escaped when it
holds characters a terminal would interpret), instead of an ``OSError`` traceback.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from controller.errors import InvalidInput

MAX_BYTES = 4 * 1024 * 1024


def shown(path: str | Path) -> str:
    text = str(path)
    return text if text.isprintable() else repr(text)


def _reason(err: Exception) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return str(err)


def read_text(path: str, what: str, limit: int = MAX_BYTES) -> str:
    """The UTF-8 text of the regular file ``path`` (at most ``limit`` bytes)."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise InvalidInput(f"{what} file {shown(path)} is not a regular file")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except (OSError, ValueError) as err:  # ValueError: a NUL byte in the path
        raise InvalidInput(f"cannot read {what} file {shown(path)}: {_reason(err)}") from err
    if len(data) > limit:
        raise InvalidInput(f"{what} file {shown(path)} is larger than {limit} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InvalidInput(
            f"{what} file {shown(path)} is not UTF-8 text (byte 0x{data[err.start]:02x} at "
            f"offset {err.start})"
        ) from err
    if "\x00" in text:
        raise InvalidInput(f"{what} file {shown(path)} is binary (it contains NUL bytes)")
    return text.removeprefix("\ufeff")


def create_output_dir(directory: Path, what: str) -> list[Path]:
    """Create ``directory`` (and missing parents) before any work, so an unwritable or
    impossible place is refused first; returns what was created, for :func:`discard`.

    Writability is proved by creating, not by ``os.access``: root passes every
    permission check, yet cannot create ``/proc/x``.
    """
    missing: list[Path] = []
    try:
        missing = [p for p in [directory, *directory.parents] if not p.exists()]
        if directory.exists() and not directory.is_dir():
            raise InvalidInput(f"{what} {shown(directory)} exists and is not a directory")
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".ferry-probe-{os.getpid()}"
        probe.touch(exist_ok=False)
        probe.unlink()
    except (OSError, ValueError) as err:
        discard(list(reversed(missing)))
        raise InvalidInput(f"cannot write {what} {shown(directory)}: {_reason(err)}") from err
    return list(reversed(missing))


def discard(created: list[Path]) -> None:
    """Remove directories :func:`create_output_dir` created, deepest first, if empty."""
    for path in sorted(created, key=lambda p: len(p.parts), reverse=True):
        try:
            path.rmdir()
        except OSError:
            return
