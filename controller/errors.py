"""One error tree for the whole package.

Every failure Ferry reports belongs to one of three families, because the caller's
reaction differs: *invalid input* is never retried and changes nothing (exit 2, a
``Stalled`` condition); *temporary* failures are retried with backoff (an unreachable
database); *permanent* failures happened while changing something and say what was
rolled back (exit 1). Adapters classify driver errors at the edge and chain them.
"""

from __future__ import annotations


class FerryError(Exception):
    """Base of every error Ferry raises on purpose."""

    reason: str = "Error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self)


class InvalidInput(FerryError):
    """The request cannot be carried out as given; nothing was changed."""

    reason = "InvalidInput"


class BackupNotFound(InvalidInput):
    """The store holds no complete backup of that ID; nothing was changed."""

    reason = "BackupNotFound"


class CheckFailed(InvalidInput):
    """A pre-flight check refused the operation before any change."""

    reason = "CheckFailed"

    def __init__(
        self, message: str, *, problems: list[str] | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.problems = list(problems or [message])


class TemporaryError(FerryError):
    """Worth retrying later (a database or server is unreachable, a lock is held)."""

    reason = "Temporary"

    def __init__(self, message: str, *, delay: float = 10.0, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.delay = delay


class Unreachable(TemporaryError):
    """A database or object store did not answer."""

    reason = "Unreachable"


class Busy(TemporaryError):
    """Another writing operation holds the target."""

    reason = "TargetBusy"


class PermanentError(FerryError):
    """A failure while changing something; the message says what state it left.

    ``cause``, when given, is the failure alone (what the database refused), without
    the state the message adds: a caller that tells it in its own words (a rehearsal
    whose scratch copy is dropped anyway) needs no parsing of the message."""

    reason = "Failed"

    def __init__(
        self, message: str, *, reason: str | None = None, cause: str | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.cause = cause


class Reverted(PermanentError):
    """A failure while changing something, after which the target is as it was: the
    transaction rolled back, or the safety backup was put back."""

    reason = "Failed"
