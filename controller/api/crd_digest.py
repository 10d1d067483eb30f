"""Is an installed CRD the one this operator was built with?

``helm upgrade`` never updates a chart's ``crds/``, so after an upgrade the operator can
run against the previous release's CRDs, whose schemas silently prune the fields it now
writes and reads. Each CRD in ``crds/`` therefore carries, in the annotation
:data:`ANNOTATION`, the digest of its ``spec`` (:func:`schema_digest`), written by
``hack/gen_crd_digests.py``, which also writes the digests the operator expects into
:mod:`controller.api.crd_schema`. At start-up the operator reads the installed CRDs and
compares (:func:`check_crd`): this module is that comparison, pure of any I/O.

Digests are compared for equality, not order: the operator knows only its own schema,
so a CRD from a newer release is as unknown to it as one from an older release.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

ANNOTATION = "ferry.dev/schema-digest"

#: How to install the CRDs an operator expects: from the release's sources, or its chart.
FIX = (
    "install the CRDs of this operator's release: "
    "`kubectl apply --server-side --force-conflicts -f crds/` "
    "(or `helm show crds charts/ferry | kubectl apply --server-side --force-conflicts -f -`)"
)


def schema_digest(spec: Mapping[str, Any]) -> str:
    """``sha256:`` over the canonical JSON of a CRD's ``spec`` (sorted keys, no spaces),
    so that formatting and comments of the YAML file do not change it."""
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


class CrdState(enum.StrEnum):
    CURRENT = "current"  # the annotation carries the expected digest
    MISSING = "missing"  # no such CRD in the cluster
    UNANNOTATED = "unannotated"  # a CRD from before digests (or hand-made)
    STALE = "stale"  # another release's schema
    UNREADABLE = "unreadable"  # the API did not answer, or refused the read


@dataclass(frozen=True)
class CrdFinding:
    """What the operator found for one CRD, and what it expected."""

    name: str
    state: CrdState
    expected: str
    found: str = ""  # the digest found, or why the CRD could not be read

    @property
    def current(self) -> bool:
        return self.state is CrdState.CURRENT

    def message(self) -> str:
        """One line naming the CRD, what was found, what was expected and the fix."""
        found = {
            CrdState.CURRENT: f"is current ({self.expected})",
            CrdState.MISSING: "is not installed",
            CrdState.UNANNOTATED: f"has no {ANNOTATION} annotation (an older release's)",
            CrdState.STALE: f"has schema {self.found}",
            CrdState.UNREADABLE: f"could not be read ({self.found})",
        }[self.state]
        if self.current:
            return f"CRD {self.name} {found}"
        return (
            f"CRD {self.name} {found}; this operator expects schema {self.expected} "
            f"and reconciles nothing until it has it. Fix: {FIX}"
        )


def check_crd(name: str, crd: Mapping[str, Any] | None, expected: str) -> CrdFinding:
    """Compare one installed CRD (``None``: not found) with the digest expected for it."""
    if crd is None:
        return CrdFinding(name, CrdState.MISSING, expected)
    meta = crd.get("metadata")
    annotations = meta.get("annotations") if isinstance(meta, Mapping) else None
    found = annotations.get(ANNOTATION) if isinstance(annotations, Mapping) else None
    if not isinstance(found, str) or not found:
        return CrdFinding(name, CrdState.UNANNOTATED, expected)
    if found != expected:
        return CrdFinding(name, CrdState.STALE, expected, found[:80])
    return CrdFinding(name, CrdState.CURRENT, expected, found)


def unreadable(name: str, expected: str, why: str) -> CrdFinding:
    return CrdFinding(name, CrdState.UNREADABLE, expected, why[:200])
