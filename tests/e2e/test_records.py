"""A finished Migration is a record: the API server refuses edits of its spec.

Argo CD syncing a changed Migration that already ran would otherwise show Healthy and
change nothing (a one-shot never runs twice). The CEL rule on the object compares with
``oldSelf.status.phase``, so no operator is needed here: the API server alone refuses.
"""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Apply, Kubectl
from tests.e2e.test_operator import migration

pytestmark = pytest.mark.e2e
DIGEST = "sha256:" + "a" * 64


def set_phase(kubectl: Kubectl, namespace: str, name: str, phase: str) -> None:
    kubectl.merge_patch(
        f"migration/{name}",
        namespace,
        {"status": {"phase": phase}},
        subresource="status",
        check=True,
    )


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "RolledBack"])
def test_a_finished_migrations_spec_cannot_change(
    kubectl: Kubectl, namespace: str, ferry_crds: list[str], apply: Apply, phase: str
) -> None:
    assert apply(migration("done", "dev", "pre"), namespace).returncode == 0
    set_phase(kubectl, namespace, "done", phase)
    changed = migration(
        "done", "dev", "pre", f"  approval: {{required: true, planDigest: '{DIGEST}'}}\n"
    )
    refused = apply(changed, namespace)
    assert refused.returncode != 0
    assert "finished and is a record" in refused.stderr, refused.stderr
    for patch in (
        {"spec": {"backup": {"skip": True}}},
        {"spec": {"rules": {"strict": True}}},
        {"spec": {"target": "prod"}},
    ):
        got = kubectl.merge_patch("migration/done", namespace, patch)
        assert got.returncode != 0 and "finished and is a record" in got.stderr, (patch, got.stderr)
    spec = kubectl.json("get", "migration", "done", "-n", namespace)["spec"]
    assert spec == {"source": {"environment": "dev"}, "target": "pre"}
    # Metadata stays editable (labels, Argo CD's tracking, finalizers), and so does status.
    kubectl.merge_patch(
        "migration/done", namespace, {"metadata": {"labels": {"team": "a"}}}, check=True
    )
    set_phase(kubectl, namespace, "done", phase)
    kubectl("delete", "migration", "done", "-n", namespace)


@pytest.mark.parametrize("phase", [None, "Pending", "AwaitingApproval", "Applying"])
def test_an_unfinished_migration_can_still_be_approved_and_edited(
    kubectl: Kubectl, namespace: str, ferry_crds: list[str], apply: Apply, phase: str | None
) -> None:
    assert apply(migration("open", "dev", "pre"), namespace).returncode == 0
    if phase:
        set_phase(kubectl, namespace, "open", phase)
    kubectl.merge_patch(
        "migration/open",
        namespace,
        {"spec": {"approval": {"required": True, "planDigest": DIGEST}}},
        check=True,
    )
    spec = kubectl.json("get", "migration", "open", "-n", namespace)["spec"]
    assert spec["approval"]["planDigest"] == DIGEST
