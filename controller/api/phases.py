"""The base of every kind's ``status.phase`` enum: which phases are final.

A final phase means the object is never worked on again (the flows return at once,
the write queue lets the next writer go, metrics count the result). Each kind names its
final phases once, here in ``api/``, instead of every flow and handler keeping a set of
strings that can drift from the enum.
"""

from __future__ import annotations

import enum
from typing import Self


class Phase(enum.StrEnum):
    """A kind's phases; a subclass says which are final in :meth:`final`."""

    @classmethod
    def final(cls) -> frozenset[Self]:
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        return self in self.final()

    @classmethod
    def is_finished(cls, value: object) -> bool:
        """Whether a status's ``phase`` (any value read from the API, or None) is final."""
        return isinstance(value, str) and value in cls.final()
