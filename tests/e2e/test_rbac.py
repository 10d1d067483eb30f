"""The chart's RBAC, for real: the operator runs as the chart's ServiceAccount.

The harness's API server enforces RBAC for every identity but its admin, so applying
the ServiceAccount, Role and RoleBinding that ``helm template`` renders (scoped to this
test's namespace) and running the operator with that account's token makes any
missing verb fail the reconciliation. ``kubectl auth can-i`` then checks the other
direction: nothing beyond what the operator needs.
"""

from __future__ import annotations

import functools
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Kubectl
from tests.e2e.operator import Operator
from tests.e2e.test_application_lifecycle import (
    REPLICAS,
    HealthServer,
    declare,
    replicas,
    serve_health,
)
from tests.e2e.test_backups_operator import make_schedule_due
from tests.e2e.test_operator import apply_ok, environment, migration, status, wait_phase
from tests.harness.cluster import ControlPlane, wait_for
from tests.unit.test_chart import INSTALL, of_kind, render

pytestmark = pytest.mark.e2e
RBAC_KINDS = ("ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding")


class Release:
    """The chart's identity and access objects, applied under a unique name."""

    def __init__(self, name: str, namespace: str, docs: list[dict[str, Any]]) -> None:
        self.name = name
        self.namespace = namespace
        self.docs = docs
        (sa,) = of_kind(docs, "ServiceAccount")
        self.service_account: str = sa["metadata"]["name"]
        self.user = f"system:serviceaccount:{namespace}:{self.service_account}"


def install(kubectl: Kubectl, namespace: str, watch: list[str], **values: Any) -> Iterator[Release]:
    """The rendered chart's RBAC and ServiceAccount, released into ``namespace``. The
    cluster-scoped objects get a unique name and are deleted afterwards; the rest goes
    with the namespace."""
    name = f"ferry-{secrets.token_hex(3)}"
    docs = render(
        {"watchNamespaces": watch, "fullnameOverride": name, **values},
        release=name,
        namespace=namespace,
    )
    applied = of_kind(docs, *RBAC_KINDS)
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all(applied))
    yield Release(name, namespace, applied)
    for kind in ("ClusterRoleBinding", "ClusterRole"):
        names = [d["metadata"]["name"] for d in of_kind(applied, kind)]
        if names:
            kubectl("delete", kind.lower(), *names, "--ignore-not-found", check=False)
    for doc in applied:  # the CRD check's Events Role lives in `default`, not the release's
        where = doc["metadata"].get("namespace")
        if where and where not in {namespace, *watch}:
            kubectl("delete", doc["kind"].lower(), doc["metadata"]["name"], "-n", where,
                    "--ignore-not-found", check=False)  # fmt: skip


@pytest.fixture
def release(kubectl: Kubectl, namespace: str, ferry_crds: list[str]) -> Iterator[Release]:
    """The chart watching only the test namespace: a Role there, nothing cluster-wide
    but the aggregated roles."""
    yield from install(kubectl, namespace, [namespace])


@pytest.fixture
def cluster_release(kubectl: Kubectl, namespace: str, ferry_crds: list[str]) -> Iterator[Release]:
    """The chart watching all namespaces through a ClusterRole, Secrets readable only in
    the test namespace (where its Environments would live)."""
    yield from install(kubectl, namespace, [], rbac={"secretNamespaces": [namespace]})


@pytest.fixture
def sa_operator(
    control_plane: ControlPlane,
    kubectl: Kubectl,
    namespace: str,
    release: Release,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Operator]:
    """The operator authenticated as the chart's ServiceAccount (a TokenRequest token)."""
    kubeconfig = control_plane.write_token_kubeconfig(
        tmp_path / "sa.kubeconfig", namespace, release.service_account
    )
    whoami = subprocess.run(
        [str(control_plane.kubectl_path), "--kubeconfig", str(kubeconfig), "auth", "whoami",
         "-o", "jsonpath={.status.userInfo.username}"],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    assert whoami.stdout.strip() == release.user, "the operator must not run as the admin"
    op = Operator(control_plane, namespace, tmp_path / "operator.log", kubeconfig=kubeconfig)
    op.start()
    yield op
    # Delete Backups while the operator still runs, so its finalizer lets them go.
    kubectl(
        "delete", "backupschedules,backups", "--all", "-n", namespace, "--timeout=60s", check=False
    )
    op.stop()
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        print(f"\n--- operator log ({op.log}) ---\n{op.tail(200)}")


def can_i(kubectl: Kubectl, user: str, verb: str, resource: str, namespace: str) -> bool:
    """``kubectl auth can-i`` as ``user`` (the admin impersonates it); ``resource`` may
    name a subresource, ``migrations.ferry.dev/status``."""
    kind, _, sub = resource.partition("/")
    args = ["auth", "can-i", verb, kind, "-n", namespace, f"--as={user}"]
    if sub:
        args.append(f"--subresource={sub}")
    got = kubectl(*args, check=False)
    answer = got.stdout.strip()
    assert answer in {"yes", "no"}, (got.stdout, got.stderr)
    return answer == "yes"


def test_operator_works_with_the_charts_rbac(
    kubectl: Kubectl,
    namespace: str,
    release: Release,
    sa_operator: Operator,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
) -> None:
    """Every kind the operator touches, as the ServiceAccount: an Environment whose URL
    is in a Secret becomes Ready, a Migration Succeeds (status, events, a pre-migration
    backup), and a BackupSchedule creates its Backups and prunes the older one."""
    store = tmp_path / "backups"
    kubectl(
        "create",
        "secret",
        "generic",
        "dev-db",
        "-n",
        namespace,
        f"--from-literal=url={sqlite_envs['dev']}",
    )
    dev = environment("dev", "development", "sqlite:///unused").replace(
        'url: "sqlite:///unused"', "urlFrom: {secretKeyRef: {name: dev-db, key: url}}"
    )
    apply_ok(
        kubectl,
        namespace,
        dev
        + "---"
        + environment("pre", "pre-release", sqlite_envs["pre"], accepts="dev", store=str(store)),
    )
    for env in ("dev", "pre"):
        kubectl("wait", "--for=condition=Ready", f"environment/{env}", "-n", namespace,
                "--timeout=90s")  # fmt: skip
    assert status(kubectl, "environment", namespace, "dev")["reachable"] is True

    apply_ok(kubectl, namespace, migration("to-pre", "dev", "pre"))
    done = wait_phase(kubectl, namespace, "to-pre", {"Succeeded", "Failed", "RolledBack"}, 90)
    assert done["phase"] == "Succeeded", done
    assert done["backup"]["id"] and done["plan"]["totals"]["insert"] == 10
    events = kubectl("get", "events", "-n", namespace, "-o", "json").stdout
    assert '"reason": "Applied"' in events

    # Schedules create Backups (owned by them) and delete the ones retention drops.
    apply_ok(
        kubectl,
        namespace,
        """
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata: {name: nightly}
spec: {environment: pre, schedule: "0 0 1 1 *", immediate: true, retention: {keepLast: 1}}
""",
    )
    first = wait_for(
        lambda: schedule_backups(kubectl, namespace, "nightly"),
        timeout=60,
        description="the immediate backup",
    )[0]["metadata"]["name"]
    wait_for(
        lambda: status(kubectl, "backup", namespace, first).get("phase") in {"Completed", "Failed"},
        timeout=90,
        description=f"Backup {first} done",
    )
    got = status(kubectl, "backup", namespace, first)
    assert got["phase"] == "Completed", got
    # Make the next run due now (yearly until now, so that no run raced the first one).
    make_schedule_due(kubectl, namespace, "nightly")
    wait_for(
        lambda: (
            (
                names := {
                    b["metadata"]["name"] for b in schedule_backups(kubectl, namespace, "nightly")
                }
            )
            and first not in names
        ),
        timeout=120,
        description=f"a second scheduled backup, and retention deleting {first}",
    )
    # No request of the operator was refused, Kopf's included: with fixed namespaces
    # and standalone, it needs no cluster-wide scans (settings.scanning.disabled).
    refused = [line for line in sa_operator.tail(100_000).splitlines() if "orbidden" in line]
    assert not refused, (
        "requests refused by RBAC (GET namespaces / customresourcedefinitions are Kopf's "
        "scans, off with settings.scanning.disabled):\n" + "\n".join(refused[:6])
    )


def schedule_backups(kubectl: Kubectl, namespace: str, schedule: str) -> list[dict[str, Any]]:
    got = kubectl.json("get", "backups", "-n", namespace, "-l", f"ferry.dev/schedule={schedule}")
    return sorted(got.get("items", []), key=lambda b: b["metadata"]["name"])


@pytest.fixture
def health() -> Iterator[HealthServer]:
    yield from serve_health()


def test_application_lifecycle_works_with_the_charts_rbac(
    kubectl: Kubectl,
    namespace: str,
    sa_operator: Operator,
    sqlite_envs: dict[str, str],
    tmp_path: Path,
    health: HealthServer,
) -> None:
    """Scale read and set, pods listed, the finalizer added: as the chart's account."""
    declare(kubectl, namespace, sqlite_envs, tmp_path / "backups", health.url)
    apply_ok(kubectl, namespace, migration("release", "dev", "pre"))
    done = wait_phase(kubectl, namespace, "release", {"Succeeded", "Failed", "RolledBack"}, 90)
    assert done["phase"] == "Succeeded", done
    assert done["application"]["replicas"] == REPLICAS and health.hits >= 1
    assert replicas(kubectl, namespace) == REPLICAS
    refused = [line for line in sa_operator.tail(100_000).splitlines() if "orbidden" in line]
    assert not refused, "\n".join(refused[:6])


def test_service_account_can_do_no_more(kubectl: Kubectl, namespace: str, release: Release) -> None:
    """What the operator's ServiceAccount may do, asked of the API server's authorizer."""
    # Cluster-wide, only the start-up schema check's read of Ferry's own CRDs.
    (wide,) = of_kind(release.docs, "ClusterRoleBinding")
    assert wide["roleRef"]["name"] == f"{release.name}-crd-reader"
    for crd, allowed in [
        ("environments.ferry.dev", True),
        ("migrations.ferry.dev", True),
        ("clusterkopfpeerings.kopf.dev", False),
        ("roles.rbac.authorization.k8s.io", False),
    ]:
        got = kubectl("auth", "can-i", "get", f"customresourcedefinitions/{crd}",
                      f"--as={release.user}", check=False).stdout.strip()  # fmt: skip
        assert got == ("yes" if allowed else "no"), (crd, got)
    assert can_i(kubectl, release.user, "create", "events", "default")
    assert not can_i(kubectl, release.user, "get", "events", "default")
    user, ns = release.user, namespace
    for verb, resource in [
        ("get", "secrets"),
        ("watch", "migrations.ferry.dev"),
        ("patch", "migrations.ferry.dev/status"),
        ("create", "backups.ferry.dev"),
        ("delete", "backups.ferry.dev"),
        ("update", "backupschedules.ferry.dev/finalizers"),
        ("create", "events"),
        ("get", "deployments.apps"),
        ("get", "statefulsets.apps"),
        ("patch", "deployments.apps/scale"),
        ("patch", "statefulsets.apps/scale"),
        ("list", "pods"),
        ("create", "jobs.batch"),  # spec.execution.mode Job
        ("delete", "jobs.batch"),
        ("patch", "jobs.batch"),  # to let a Job created suspended start its pod
        ("get", "pods"),
        ("create", "pods"),  # spec.application.bootCheck's pod
        ("delete", "pods"),
        # A Job pod's progress token: its account, Role and binding (k8s/job_access.py).
        ("create", "serviceaccounts"),
        ("get", "serviceaccounts"),  # default's imagePullSecrets, copied
        ("create", "roles.rbac.authorization.k8s.io"),
        ("create", "rolebindings.rbac.authorization.k8s.io"),
    ]:
        assert can_i(kubectl, user, verb, resource, ns), f"{user} cannot {verb} {resource}"
    for verb, resource, where in [
        ("delete", "secrets", ns),
        ("list", "secrets", ns),
        ("watch", "secrets", ns),
        ("create", "secrets", ns),
        ("update", "secrets", ns),
        ("get", "secrets", "default"),  # only the watched namespaces
        ("list", "migrations.ferry.dev", "default"),
        ("create", "jobs.batch", "default"),  # only the watched namespaces
        ("patch", "pods", ns),  # a boot check's pod is created and deleted, never changed
        ("create", "pods/exec", ns),
        ("patch", "deployments.apps", ns),  # the scale only, never the pod template
        ("update", "deployments.apps", ns),
        ("patch", "deployments.apps/scale", "default"),  # only the watched namespaces
        ("patch", "replicasets.apps/scale", ns),
        ("get", "configmaps", ns),
        ("list", "namespaces", ns),
        ("update", "migrations.ferry.dev", ns),
        ("create", "migrations.ferry.dev", ns),
        ("delete", "environments.ferry.dev", ns),
        ("create", "environments.ferry.dev", ns),
        ("update", "backupschedules.ferry.dev", ns),
        ("patch", "roles.rbac.authorization.k8s.io", ns),
        ("list", "customresourcedefinitions.apiextensions.k8s.io", ns),
        ("list", "clusterkopfpeerings.kopf.dev", ns),
        ("create", "serviceaccounts/token", ns),
        ("bind", "roles.rbac.authorization.k8s.io", ns),  # only what it holds itself
        ("escalate", "roles.rbac.authorization.k8s.io", ns),
        ("delete", "rolebindings.rbac.authorization.k8s.io", ns),
        ("create", "clusterroles.rbac.authorization.k8s.io", ns),
        ("create", "serviceaccounts", "default"),  # only the watched namespaces
    ]:
        assert not can_i(kubectl, user, verb, resource, where), f"{user} may {verb} {resource}"


def test_cluster_wide_install_reads_secrets_only_where_bound_and_writes_none(
    kubectl: Kubectl, namespace: str, cluster_release: Release
) -> None:
    assert not of_kind(cluster_release.docs, "Role")
    user = cluster_release.user
    assert can_i(kubectl, user, "get", "secrets", namespace)
    for where in (namespace, "default", "kube-system"):
        if where != namespace:
            assert not can_i(kubectl, user, "get", "secrets", where), where
        assert can_i(kubectl, user, "watch", "migrations.ferry.dev", where)
        assert can_i(kubectl, user, "create", "backups.ferry.dev", where)
        for verb in ("list", "watch", "create", "update", "patch", "delete"):
            assert not can_i(kubectl, user, verb, "secrets", where), f"{user} may {verb} secrets"
        assert not can_i(kubectl, user, "create", "migrations.ferry.dev", where)
        assert can_i(kubectl, user, "list", "pods", where)  # spec.application's pods
        assert can_i(kubectl, user, "delete", "pods", where)  # a boot check's pod
        assert not can_i(kubectl, user, "create", "pods/exec", where)
        assert not can_i(kubectl, user, "patch", "deployments.apps", where)
    assert not can_i(kubectl, user, "list", "namespaces", namespace)
    assert not can_i(
        kubectl, user, "list", "customresourcedefinitions.apiextensions.k8s.io", namespace
    )


def test_aggregated_roles_reach_view_and_edit(
    kubectl: Kubectl, namespace: str, release: Release
) -> None:
    """Users bound to the built-in view / edit roles get Ferry's kinds through the
    chart's aggregated ClusterRoles (the controller-manager aggregates them)."""
    for role in ("view", "edit"):
        kubectl("create", "serviceaccount", f"user-{role}", "-n", namespace)
        kubectl(
            "create",
            "rolebinding",
            f"user-{role}",
            f"--clusterrole={role}",
            f"--serviceaccount={namespace}:user-{role}",
            "-n",
            namespace,
        )
    viewer = f"system:serviceaccount:{namespace}:user-view"
    editor = f"system:serviceaccount:{namespace}:user-edit"
    kinds = ("environments", "backups", "backupschedules", "restores", "migrations")

    def aggregated(resource: str) -> bool:
        return can_i(kubectl, viewer, "list", resource, namespace) and can_i(
            kubectl, editor, "create", resource, namespace
        )

    for kind in kinds:
        resource = f"{kind}.ferry.dev"
        wait_for(
            functools.partial(aggregated, resource),
            timeout=30,
            description=f"view/edit aggregate {resource}",
        )
        assert not can_i(kubectl, viewer, "create", resource, namespace)
        assert not can_i(kubectl, viewer, "delete", resource, namespace)
        assert can_i(kubectl, editor, "delete", resource, namespace)
        assert not can_i(kubectl, editor, "patch", f"{resource}/status", namespace)


def test_plain_manifests_apply_to_the_api_server(kubectl: Kubectl, ferry_crds: list[str]) -> None:
    """manifests/install as a user applies it (server-side): every object is accepted."""
    docs = [d for d in yaml.safe_load_all(INSTALL.read_text()) if d]
    cluster_scoped = [
        (d["kind"].lower(), d["metadata"]["name"])
        for d in docs
        if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}
    ]
    try:
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(INSTALL))
        deployment = kubectl.json("get", "deployment", "ferry", "-n", "ferry-system")
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"]["type"] == "Recreate"
        user = "system:serviceaccount:ferry-system:ferry"
        # No Secret anywhere until a RoleBinding to ferry-secret-reader says where.
        assert not can_i(kubectl, user, "get", "secrets", "default")
        assert not can_i(kubectl, user, "list", "secrets", "default")
    finally:
        kubectl("delete", "namespace", "ferry-system", "--wait=false", check=False)
        for kind, name in cluster_scoped:
            kubectl("delete", kind, name, "--ignore-not-found", check=False)
