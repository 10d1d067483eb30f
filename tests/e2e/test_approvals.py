"""Separation of duties: the chart's opt-in ValidatingAdmissionPolicy on a real API server.

Two people who may both edit Migrations (a Role granting it): ``erin``, an editor who is
not an approver, and ``abe``, in the approvers group. The admin impersonates each
(``--as``/``--as-group``), so the API server authenticates, authorizes and admits the
requests as theirs.
"""

from __future__ import annotations

import json
import secrets
import subprocess
from collections.abc import Iterator

import pytest
import yaml

from tests.e2e.conftest import Kubectl
from tests.e2e.test_operator import migration
from tests.harness.cluster import wait_for
from tests.unit.test_chart import of_kind, render

pytestmark = pytest.mark.e2e
APPROVERS = "release-managers"
EDITOR = ("erin", "developers")
APPROVER = ("abe", APPROVERS)
DIGEST = "sha256:" + "b" * 64
OTHER = "sha256:" + "c" * 64
POLICY_KINDS = (
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
)


@pytest.fixture
def policy(kubectl: Kubectl, namespace: str, ferry_crds: list[str]) -> Iterator[str]:
    """The chart's policy and binding (scoped to the test namespace), and a Role that lets
    both people edit Migrations there."""
    name = f"ferry-{secrets.token_hex(3)}"
    docs = of_kind(
        render(
            {
                "fullnameOverride": name,
                "watchNamespaces": [namespace],
                "approvals": {"policy": {"enabled": True}, "approvers": {"groups": [APPROVERS]}},
            }
        ),
        *POLICY_KINDS,
    )
    assert len(docs) == 4
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    kubectl(
        "create",
        "role",
        "migration-editor",
        "-n",
        namespace,
        "--verb=get,list,create,update,patch,delete",
        "--resource=migrations.ferry.dev",
    )
    for user, _group in (EDITOR, APPROVER):
        kubectl(
            "create",
            "rolebinding",
            f"edit-{user}",
            "-n",
            namespace,
            "--role=migration-editor",
            f"--user={user}",
        )
    yield name
    for doc in docs:
        kubectl(
            "delete",
            doc["kind"].lower(),
            doc["metadata"]["name"],
            "--ignore-not-found",
            check=False,
        )


def as_user(
    kubectl: Kubectl, who: tuple[str, str], *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    user, group = who
    return kubectl(*args, f"--as={user}", f"--as-group={group}", input=input, check=False)


def patch(
    kubectl: Kubectl,
    who: tuple[str, str],
    namespace: str,
    name: str,
    body: dict[str, object],
    *extra: str,
) -> subprocess.CompletedProcess[str]:
    args = ("patch", "migration", name, "-n", namespace, "--type=merge", "-p", json.dumps(body))
    return as_user(kubectl, who, *args, *extra)


def digest_of(kubectl: Kubectl, namespace: str, name: str) -> str | None:
    spec = kubectl.json("get", "migration", name, "-n", namespace)["spec"]
    return (spec.get("approval") or {}).get("planDigest")


def approved_by(kubectl: Kubectl, namespace: str, name: str) -> str | None:
    meta = kubectl.json("get", "migration", name, "-n", namespace)["metadata"]
    return (meta.get("annotations") or {}).get("ferry.dev/approved-by")


def test_only_approvers_set_the_plan_digest(kubectl: Kubectl, namespace: str, policy: str) -> None:
    gated = migration("gated", "dev", "pre", "  approval: {required: true}\n")
    created = as_user(kubectl, EDITOR, "apply", "-n", namespace, "-f", "-", input=gated)
    assert created.returncode == 0, created.stderr
    approve = {"spec": {"approval": {"planDigest": DIGEST}}}

    # The policies take a moment to reach the admission plugins: wait, with server-side
    # dry runs (admitted like real requests, never stored), until both are in force.
    def stamped() -> bool:
        dry = patch(kubectl, APPROVER, namespace, "gated", approve, "--dry-run=server", "-o=json")
        return '"ferry.dev/approved-by": "abe"' in dry.stdout

    def refusing() -> bool:
        dry = patch(kubectl, EDITOR, namespace, "gated", approve, "--dry-run=server")
        return dry.returncode != 0

    wait_for(stamped, timeout=60, description="the approved-by stamp in force")
    wait_for(refusing, timeout=60, description="the approvals policy in force")
    refused = patch(kubectl, EDITOR, namespace, "gated", approve)
    assert refused.returncode != 0
    assert "erin may not set or change spec.approval.planDigest" in refused.stderr
    assert digest_of(kubectl, namespace, "gated") is None
    # The editor may still edit everything else.
    other = patch(kubectl, EDITOR, namespace, "gated", {"spec": {"rules": {"strict": True}}})
    assert other.returncode == 0, other.stderr
    # Nor can the editor create a Migration approved in advance, or switch approval off.
    pre_approved = migration(
        "pre-approved", "dev", "pre", f"  approval: {{required: true, planDigest: '{DIGEST}'}}\n"
    )
    got = as_user(kubectl, EDITOR, "apply", "-n", namespace, "-f", "-", input=pre_approved)
    assert got.returncode != 0 and "erin may not set" in got.stderr, got.stderr
    off = patch(kubectl, EDITOR, namespace, "gated", {"spec": {"approval": {"required": False}}})
    assert off.returncode != 0 and "may not turn spec.approval.required off" in off.stderr

    allowed = patch(kubectl, APPROVER, namespace, "gated", approve)
    assert allowed.returncode == 0, allowed.stderr
    assert digest_of(kubectl, namespace, "gated") == DIGEST
    # The API server stamped who approved, and nobody may write that stamp by hand.
    assert approved_by(kubectl, namespace, "gated") == "abe"
    for who in (EDITOR, APPROVER):
        forged = patch(
            kubectl,
            who,
            namespace,
            "gated",
            {"metadata": {"annotations": {"ferry.dev/approved-by": "someone"}}},
        )
        assert forged.returncode != 0 and "set by the API server" in forged.stderr, forged.stderr
    assert approved_by(kubectl, namespace, "gated") == "abe"
    # Changing or removing the approval is the approver's too.
    for body in (
        {"spec": {"approval": {"planDigest": OTHER}}},
        {"spec": {"approval": {"planDigest": None}}},
    ):
        got = patch(kubectl, EDITOR, namespace, "gated", body)
        assert got.returncode != 0 and "erin may not set or change" in got.stderr, got.stderr
    assert digest_of(kubectl, namespace, "gated") == DIGEST
    assert (
        patch(
            kubectl, APPROVER, namespace, "gated", {"spec": {"approval": {"planDigest": OTHER}}}
        ).returncode
        == 0
    )
    assert digest_of(kubectl, namespace, "gated") == OTHER
    # Status is the operator's and is not matched by the policy.
    status = kubectl.merge_patch(
        "migration/gated",
        namespace,
        {"status": {"phase": "AwaitingApproval"}},
        subresource="status",
    )
    assert status.returncode == 0, status.stderr
