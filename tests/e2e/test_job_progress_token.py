"""A Job pod's progress token, against the real API server's RBAC.

The operator runs as the chart's ServiceAccount (its rendered RBAC), so creating each
Job's ServiceAccount, Role and RoleBinding proves the chart lets it grant that Role
(RBAC refuses to grant what the granter lacks), and the account copies the namespace's
default account's image pull secrets. Without a kubelet the Job's pod stays
Pending; a token bound to that pod (TokenRequest, as the kubelet asks for the projected
one) is then used by the CLI's own writer: it may patch its Backup's
``status.progress``, and nothing else: another Backup's status, its Backup's spec, and
the Backup itself are refused with 403. Deleting the Backup removes the three objects
(the garbage collector, through their owner reference).
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from kubernetes.client.exceptions import ApiException

from controller.flows.jobs import job_name
from controller.k8s.client import KubeCluster
from controller.k8s.progress_token import TIMEOUT, TokenStatusWriter, token_api_client
from tests.e2e.conftest import Kubectl
from tests.e2e.operator import Operator
from tests.e2e.test_operator import apply_ok, environment, status
from tests.e2e.test_rbac import Release, install
from tests.harness.cluster import ControlPlane, wait_for

pytestmark = pytest.mark.e2e
ACCESS = ("serviceaccount", "role", "rolebinding")


@pytest.fixture
def release(kubectl: Kubectl, namespace: str, ferry_crds: list[str]) -> Iterator[Release]:
    yield from install(kubectl, namespace, [namespace])


@pytest.fixture
def job_operator(
    control_plane: ControlPlane, namespace: str, release: Release, tmp_path: Path
) -> Iterator[Operator]:
    """The operator as the chart's ServiceAccount, with a job image (Job mode on)."""
    kubeconfig = control_plane.write_token_kubeconfig(
        tmp_path / "sa.kubeconfig", namespace, release.service_account
    )
    op = Operator(
        control_plane,
        namespace,
        tmp_path / "operator.log",
        kubeconfig=kubeconfig,
        env={"FERRY_JOB_IMAGE": "ferry:test"},
    ).start()
    yield op
    op.stop()


def backup(name: str) -> str:
    return f"""
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata: {{name: {name}}}
spec: {{environment: pre}}
"""


def uid(kubectl: Kubectl, namespace: str, name: str) -> str:
    return str(kubectl.json("get", "backup", name, "-n", namespace)["metadata"]["uid"])


def job_pod(kubectl: Kubectl, namespace: str, job: str) -> str | None:
    pods = kubectl.json("get", "pods", "-n", namespace, "-l", f"batch.kubernetes.io/job-name={job}")
    items = pods.get("items") or []
    return str(items[0]["metadata"]["name"]) if items else None


def pod_token_dir(
    control_plane: ControlPlane, kubectl: Kubectl, namespace: str, account: str, pod: str, to: Path
) -> Path:
    """What the kubelet mounts: a token of ``account`` bound to ``pod``, and the CA."""
    token = kubectl(
        "create", "token", account, "-n", namespace, "--duration=10m",
        "--bound-object-kind=Pod", f"--bound-object-name={pod}",
    ).stdout.strip()  # fmt: skip
    to.mkdir()
    (to / "token").write_text(token)
    shutil.copy(control_plane.directory / "pki" / "ca.crt", to / "ca.crt")
    return to


def refused(call: Any, *args: Any, **kwargs: Any) -> int:
    with pytest.raises(ApiException) as caught:
        call(*args, **kwargs)
    return int(caught.value.status)


def test_a_job_pods_token_patches_only_its_own_objects_status(
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    job_operator: Operator,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kubernetes import client

    # The namespace pulls images with a secret its default account names: so do the Jobs.
    pull = {"imagePullSecrets": [{"name": "registry"}]}
    wait_for(
        lambda: kubectl.merge_patch("serviceaccount/default", namespace, pull).returncode == 0,
        timeout=30,
        description="the namespace's default account, patched",
    )
    job_mode = "  execution: {mode: Job, storeVolumeClaim: backups}\n"
    pre = environment("pre", "pre-release", sqlite_envs["pre"], store=str(tmp_path / "b"))
    apply_ok(kubectl, namespace, pre + job_mode + "---" + backup("mine") + "---" + backup("other"))
    mine = job_name("Backup", "mine", uid(kubectl, namespace, "mine"))
    wait_for(
        lambda: status(kubectl, "backup", namespace, "mine").get("job", {}).get("name") == mine,
        timeout=90,
        description="the Backup's Job started (by the operator, as the chart's account)",
    )
    for kind in ACCESS:
        got = kubectl.json("get", kind, mine, "-n", namespace)
        owner = got["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("Backup", "mine")
    pod = wait_for(lambda: job_pod(kubectl, namespace, mine), timeout=60, description="its pod")
    spec = kubectl.json("get", "pod", pod, "-n", namespace)["spec"]
    assert spec["serviceAccountName"] == mine and spec["automountServiceAccountToken"] is False
    assert spec["imagePullSecrets"] == [{"name": "registry"}]

    server = urlsplit(control_plane.server)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", str(server.hostname))
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(server.port))
    tokens = pod_token_dir(control_plane, kubectl, namespace, mine, pod, tmp_path / "token")
    api = token_api_client(tokens)
    custom = client.CustomObjectsApi(api)
    warnings = io.StringIO()
    writer = TokenStatusWriter(KubeCluster(api, request_timeout=TIMEOUT), warnings)

    # Its own object's status.progress: written, in the shape the operator writes.
    progress = {
        "phase": "BackingUp",
        "tables": "3/17",
        "rows": 42,
        "updated": "2026-12-01T06:00:00Z",
    }
    writer.patch_status("Backup", namespace, "mine", {"progress": progress})
    assert warnings.getvalue() == ""
    assert status(kubectl, "backup", namespace, "mine")["progress"] == progress

    # Anything else: refused by RBAC.
    group = ("ferry.dev", "v1alpha1", namespace, "backups")
    body = {"status": {"progress": progress}}
    assert refused(custom.patch_namespaced_custom_object_status, *group, "other", body) == 403
    spec_patch = {"spec": {"reason": "manual"}}
    assert refused(custom.patch_namespaced_custom_object, *group, "mine", spec_patch) == 403
    assert refused(custom.get_namespaced_custom_object, *group, "mine") == 403
    assert refused(custom.delete_namespaced_custom_object, *group, "mine") == 403
    assert refused(custom.list_namespaced_custom_object, *group) == 403
    core = client.CoreV1Api(api)
    assert refused(core.read_namespaced_secret, "anything", namespace) == 403
    assert "progress" not in status(kubectl, "backup", namespace, "other")

    # The CLI's writer says once that progress does not get through, and goes on.
    writer.patch_status("Backup", namespace, "other", body["status"])
    writer.patch_status("Backup", namespace, "other", body["status"])
    said = warnings.getvalue()
    assert said.count("\n") == 1 and "403" in said and "Backup" in said
    leaked = (tokens / "token").read_text() in said  # a bool: a failure must not print it
    assert not leaked, "the token was shown"

    # Deleted with the Backup: the garbage collector follows the owner references.
    kubectl("delete", "backup", "mine", "-n", namespace, "--timeout=60s")

    def gone() -> bool:
        got = kubectl("get", ",".join(ACCESS), "-n", namespace, "-o", "name", check=False)
        return got.returncode == 0 and mine not in got.stdout

    wait_for(gone, timeout=90, description="the Job's account, Role and binding collected")
