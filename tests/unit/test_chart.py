"""The Helm chart, rendered by the pinned ``helm`` (hack/helm/build.sh) and read back.

These tests assert the promises of charts/ferry that a reviewer cannot check by eye
across value combinations: one Recreate replica, a locked-down pod, a probe on the
operator's liveness endpoint, and RBAC that grants exactly what the operator uses.
Whether those rules are *enough* is proven against a real API server by
tests/e2e/test_rbac.py. ``helm`` missing is a failure, never a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api.crd_schema import EXPECTED as CRD_DIGESTS
from controller.k8s.client import GROUP, PLURALS

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART = REPO_ROOT / "charts" / "ferry"
BUILD_SCRIPT = REPO_ROOT / "hack" / "helm" / "build.sh"
INSTALL = REPO_ROOT / "manifests" / "install" / "ferry.yaml"
RELEASE, NAMESPACE = "ferry", "ferry-system"
RBAC_KINDS = ("Role", "ClusterRole")
# The start-up CRD schema check's grants (tested on their own, below).
CRD_CHECK_ROLES = ("ferry-crd-reader", "ferry-crd-events")
KINDS = sorted(PLURALS.values())


@cache
def helm_binary() -> str:
    """``$HELM``, else the binary hack/helm/build.sh caches; fail if neither exists."""
    explicit = os.environ.get("HELM")
    if explicit:
        path = explicit
    else:
        out = subprocess.run(
            ["bash", str(BUILD_SCRIPT), "--print-path"],
            capture_output=True,
            text=True,
            check=True,
        )
        path = out.stdout.strip().splitlines()[-1]
    if not os.access(path, os.X_OK):
        pytest.fail(
            f"helm not found at {path}: build it once with `bash hack/helm/build.sh` "
            "(or point $HELM at a helm v3 binary)",
            pytrace=False,
        )
    return path


def run_helm(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    include_crds: bool = False,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """``helm template RELEASE charts/ferry`` with ``values`` (as a values file)."""
    with tempfile.TemporaryDirectory() as tmp:
        values_file = Path(tmp) / "values.json"
        values_file.write_text(json.dumps(dict(values or {})))
        args = [helm_binary(), "template", release, str(CHART), "--namespace", namespace]
        args += ["--values", str(values_file)]
        if include_crds:
            args.append("--include-crds")
        proc = subprocess.run(args, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        pytest.fail(f"helm template failed:\n{proc.stderr}", pytrace=False)
    return proc


def render(
    values: Mapping[str, Any] | None = None,
    *,
    release: str = RELEASE,
    namespace: str = NAMESPACE,
    include_crds: bool = False,
) -> list[dict[str, Any]]:
    """The chart rendered with ``values``: its documents, parsed."""
    out = run_helm(values, release=release, namespace=namespace, include_crds=include_crds)
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def of_kind(docs: Iterable[dict[str, Any]], *kinds: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in kinds]


def named(docs: Iterable[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def container(docs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = of_kind(docs, "Deployment")
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(only)


def grants(rules: Iterable[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    """``(apiGroup, resource) -> verbs`` over a role's rules."""
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "resourceNames" not in rule and "nonResourceURLs" not in rule, rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def operator_roles(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in of_kind(docs, *RBAC_KINDS) if d["metadata"]["name"].endswith("-operator")]


@pytest.fixture(scope="module")
def default() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def scoped() -> list[dict[str, Any]]:
    return render({"watchNamespaces": ["team-a", "team-b"]})


# -- the Deployment ----------------------------------------------------------------------


def test_one_replica_replaced_by_recreate(default: list[dict[str, Any]]) -> None:
    (deployment,) = of_kind(default, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert deployment["metadata"]["namespace"] == NAMESPACE


def test_two_replicas_are_refused_by_the_schema() -> None:
    proc = run_helm({"replicaCount": 2}, check=False)
    assert proc.returncode != 0 and "replicaCount" in proc.stderr


def test_pod_runs_non_root_read_only_without_capabilities(default: list[dict[str, Any]]) -> None:
    (deployment,) = of_kind(default, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    ctx = container(default)["securityContext"]
    assert ctx["runAsNonRoot"] is True and ctx["runAsUser"] != 0
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    # A read-only root needs a writable /tmp (spooled backups, Git checkouts).
    mounts = {m["mountPath"]: m["name"] for m in container(default)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_root_is_refused_by_the_schema() -> None:
    proc = run_helm({"securityContext": {"runAsNonRoot": False}}, check=False)
    assert proc.returncode != 0 and "runAsNonRoot" in proc.stderr


def test_resources_requested_and_limited(default: list[dict[str, Any]]) -> None:
    resources = container(default)["resources"]
    assert set(resources["requests"]) == {"cpu", "memory"}
    assert set(resources["limits"]) == {"cpu", "memory"}


def test_liveness_probe_on_the_operators_endpoint(default: list[dict[str, Any]]) -> None:
    c = container(default)
    probe = c["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert probe["path"] == "/healthz" and ports[probe["port"]] == 8080
    # The operator serves the endpoint the probe asks for.
    assert "--liveness=http://0.0.0.0:8080/healthz" in c["args"]


def test_args_watch_all_namespaces_by_default(default: list[dict[str, Any]]) -> None:
    args = container(default)["args"]
    assert args[0] == "run"
    assert not [a for a in args if a.startswith(("--namespace", "-n"))]
    assert "--metrics-port=9090" in args


def test_args_name_each_watched_namespace(scoped: list[dict[str, Any]]) -> None:
    args = container(scoped)["args"]
    assert args[0] == "run"
    assert [a for a in args if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]


def test_invalid_namespace_names_are_refused() -> None:
    proc = run_helm({"watchNamespaces": ["Not_A_Namespace"]}, check=False)
    assert proc.returncode != 0 and "watchNamespaces" in proc.stderr


def test_unknown_values_are_refused() -> None:
    proc = run_helm({"replicas": 1}, check=False)
    assert proc.returncode != 0 and "replicas" in proc.stderr


def test_image_from_values_and_app_version(default: list[dict[str, Any]]) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == "0.1.0"
    assert container(default)["image"].endswith(f":{chart['appVersion']}")
    c = container(render({"image": {"repository": "r.example/ferry", "tag": "t1"}}))
    assert c["image"] == "r.example/ferry:t1"
    digest = "sha256:" + "a" * 64
    assert container(render({"image": {"digest": digest}}))["image"].endswith(f"@{digest}")


# -- RBAC ----------------------------------------------------------------------------------


def all_roles(*renders: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [role for docs in renders for role in of_kind(docs, *RBAC_KINDS)]


def test_no_wildcards_anywhere(default: list[dict[str, Any]], scoped: list[dict[str, Any]]) -> None:
    roles = all_roles(default, scoped)
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule[field], (role["metadata"]["name"], rule)
                assert not any("*" in item for item in rule[field]), (role["metadata"], rule)


def test_operator_rules_are_exactly_what_it_uses(default: list[dict[str, Any]]) -> None:
    (role,) = operator_roles(default)
    assert role["kind"] == "ClusterRole"
    got = grants(role["rules"])
    expected: dict[tuple[str, str], set[str]] = {}
    for plural in KINDS:
        expected[(GROUP, plural)] = {"get", "list", "watch", "patch"}
        expected[(GROUP, f"{plural}/status")] = {"get", "patch"}
    # Backups alone are created (by schedules) and deleted (by retention); the owner
    # reference they get needs the schedule's finalizers (OwnerReferencesPermissionEnforcement).
    expected[(GROUP, "backups")] |= {"create", "delete"}
    expected[(GROUP, "backupschedules/finalizers")] = {"update"}
    expected[("", "events")] = {"create"}
    # spec.application: the replica count through the scale subresource, pods listed;
    # its bootCheck: one pod from the workload's template created, read and deleted.
    for workload in ("deployments", "statefulsets"):
        expected[("apps", workload)] = {"get"}
        expected[("apps", f"{workload}/scale")] = {"get", "patch"}
    expected[("", "pods")] = {"list", "get", "create", "delete"}
    # spec.execution.mode Job: its Jobs (their pods are read through the list above),
    # patched only to let one created suspended start.
    expected[("batch", "jobs")] = {"get", "list", "create", "patch", "delete"}
    # Each Job pod's progress token: its account, Role and binding, created (the garbage
    # collector deletes them with their object; controller/k8s/job_access.py).
    expected[("", "serviceaccounts")] = {"get", "create"}  # default's imagePullSecrets
    for rbac in ("roles", "rolebindings"):
        expected[("rbac.authorization.k8s.io", rbac)] = {"create"}
    assert got == expected  # no Secrets: only where Environments live (below)


def test_boot_check_pods_are_granted_only_with_boot_checks_on() -> None:
    (role,) = operator_roles(render({"bootCheck": {"enabled": False}}))
    assert grants(role["rules"])[("", "pods")] == {"list"}  # the quiesce still lists them


def test_secrets_are_read_only_and_nothing_else_core(
    default: list[dict[str, Any]], scoped: list[dict[str, Any]]
) -> None:
    for role in all_roles(default, scoped):
        if role["metadata"]["name"] in CRD_CHECK_ROLES:
            continue
        for (group, resource), verbs in grants(role["rules"]).items():
            if resource == "secrets":
                assert verbs == {"get"}, role["metadata"]
            # Standalone Kopf with fixed namespaces: no peering, no namespace or CRD scans.
            assert group not in {"kopf.dev", "zalando.org", "apiextensions.k8s.io"}
            assert resource not in {"namespaces", "configmaps", "nodes"}
            if resource == "pods":  # a quiesced workload's pods gone; a boot check's pod
                assert verbs == {"list", "get", "create", "delete"}, role["metadata"]
            assert not resource.startswith("pods/"), role["metadata"]  # no exec, no logs


def test_cluster_wide_binding_to_the_service_account(default: list[dict[str, Any]]) -> None:
    bindings = of_kind(default, "ClusterRoleBinding")
    assert sorted(b["metadata"]["name"] for b in bindings) == ["ferry-crd-reader", "ferry-operator"]
    (binding,) = [b for b in bindings if b["metadata"]["name"] == "ferry-operator"]
    (sa,) = of_kind(default, "ServiceAccount")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "ferry-operator",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": NAMESPACE}
    ]
    (deployment,) = of_kind(default, "Deployment")
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert not of_kind(default, "Role", "RoleBinding")


def test_watch_namespaces_gives_a_role_in_each_and_nothing_cluster_wide(
    default: list[dict[str, Any]], scoped: list[dict[str, Any]]
) -> None:
    roles = [r for r in of_kind(scoped, "Role") if r["metadata"]["name"] not in CRD_CHECK_ROLES]
    bindings = [
        b for b in of_kind(scoped, "RoleBinding") if b["metadata"]["name"] not in CRD_CHECK_ROLES
    ]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    (cluster_role,) = operator_roles(default)
    for role in roles:
        assert grants(role["rules"]) == grants(cluster_role["rules"]) | {("", "secrets"): {"get"}}
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] in {r["metadata"]["name"] for r in roles}
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "ferry", "namespace": NAMESPACE}
        ]
    assert not operator_roles(of_kind(scoped, "ClusterRole"))
    # Cluster-wide: only reading Ferry's own CRDs (test_crd_check_reads_only_ferrys_crds).
    (wide,) = of_kind(scoped, "ClusterRoleBinding")
    assert wide["roleRef"]["name"] == "ferry-crd-reader"
    assert "secrets" not in json.dumps(of_kind(scoped, "ClusterRole"))


def test_crd_check_reads_only_ferrys_crds_by_name(
    default: list[dict[str, Any]], scoped: list[dict[str, Any]]
) -> None:
    """The start-up schema check gets ``get`` on the five CRDs by name (never list, never
    another CRD), and may post its Events on them in ``default``, where Events about
    cluster-scoped objects live: a Role there only when the install is scoped and does
    not already watch ``default``."""
    for docs in (default, scoped):
        reader = named(docs, "ClusterRole", "ferry-crd-reader")
        assert reader["rules"] == [
            {
                "apiGroups": ["apiextensions.k8s.io"],
                "resources": ["customresourcedefinitions"],
                "resourceNames": sorted(CRD_DIGESTS),
                "verbs": ["get"],
            }
        ]
        binding = named(docs, "ClusterRoleBinding", "ferry-crd-reader")
        assert binding["roleRef"]["name"] == "ferry-crd-reader"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "ferry", "namespace": NAMESPACE}
        ]
    events = named(scoped, "Role", "ferry-crd-events")
    assert events["metadata"]["namespace"] == "default"
    assert grants(events["rules"]) == {("", "events"): {"create"}}
    bound = named(scoped, "RoleBinding", "ferry-crd-events")
    assert bound["metadata"]["namespace"] == "default"
    assert bound["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": "ferry-crd-events",
    }
    assert not [r for r in of_kind(default, "Role") if r["metadata"]["name"] in CRD_CHECK_ROLES]
    watches_default = render({"watchNamespaces": ["default", "team-a"]})
    assert not [
        r for r in of_kind(watches_default, "Role") if r["metadata"]["name"] in CRD_CHECK_ROLES
    ]
    (in_default,) = [
        r for r in of_kind(watches_default, "Role") if r["metadata"]["namespace"] == "default"
    ]
    assert grants(in_default["rules"])[("", "events")] == {"create"}  # the operator's Role


def test_aggregated_roles_are_labelled(default: list[dict[str, Any]]) -> None:
    view = named(default, "ClusterRole", "ferry-view")
    edit = named(default, "ClusterRole", "ferry-edit")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert "rbac.authorization.k8s.io/aggregate-to-view" not in edit["metadata"]["labels"]
    view_grants = grants(view["rules"])
    edit_grants = grants(edit["rules"])
    for plural in KINDS:
        assert view_grants[(GROUP, plural)] == {"get", "list", "watch"}
        assert {"create", "update", "patch", "delete"} <= edit_grants[(GROUP, plural)]
        # Status is the operator's to write.
        assert (GROUP, f"{plural}/status") not in edit_grants
    assert {group for group, _ in view_grants | edit_grants} == {GROUP}
    without = of_kind(render({"rbac": {"aggregateToBuiltinRoles": False}}), "ClusterRole")
    assert [r["metadata"]["name"] for r in without] == [
        "ferry-operator",
        "ferry-secret-reader",
        "ferry-crd-reader",
    ]


def test_cluster_wide_secret_reads_only_where_bound(default: list[dict[str, Any]]) -> None:
    """Cluster-wide installs read Secrets only in rbac.secretNamespaces: a RoleBinding to
    the secret-reader ClusterRole in each; nothing by default; ``*`` binds it everywhere."""
    reader = named(default, "ClusterRole", "ferry-secret-reader")
    assert grants(reader["rules"]) == {("", "secrets"): {"get"}}
    assert not [
        b
        for b in of_kind(default, "RoleBinding", "ClusterRoleBinding")
        if "secret" in b["metadata"]["name"]
    ]
    docs = render({"rbac": {"secretNamespaces": ["apps", "data"]}})
    bindings = [
        b
        for b in of_kind(docs, "RoleBinding")
        if b["roleRef"]["name"] == reader["metadata"]["name"]
    ]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["apps", "data"]
    for binding in bindings:
        assert binding["roleRef"]["kind"] == "ClusterRole"
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "ferry", "namespace": NAMESPACE}
        ]
    everywhere = render({"rbac": {"secretNamespaces": ["*"]}})
    (wide,) = [
        b for b in of_kind(everywhere, "ClusterRoleBinding") if "secret" in b["metadata"]["name"]
    ]
    assert wide["roleRef"]["name"] == "ferry-secret-reader"
    assert (
        run_helm({"rbac": {"secretNamespaces": ["Not_A_Namespace"]}}, check=False).returncode != 0
    )


def test_tmp_is_size_limited_and_the_token_mounted_only_in_the_pod(
    default: list[dict[str, Any]],
) -> None:
    (deployment,) = of_kind(default, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tmp"]["emptyDir"] == {"sizeLimit": "2Gi"}
    assert pod["automountServiceAccountToken"] is True
    (account,) = of_kind(default, "ServiceAccount")
    assert account["automountServiceAccountToken"] is False
    custom = render(
        {
            "tmpVolume": {"sizeLimit": "512Mi", "medium": "Memory"},
            "automountServiceAccountToken": False,
        }
    )
    (deployment,) = of_kind(custom, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert {v["name"]: v for v in pod["volumes"]}["tmp"]["emptyDir"] == {
        "sizeLimit": "512Mi",
        "medium": "Memory",
    }
    assert pod["automountServiceAccountToken"] is False
    assert run_helm({"tmpVolume": {"sizeLimit": "lots"}}, check=False).returncode != 0


def test_approvals_policy_is_opt_in_and_needs_approvers(default: list[dict[str, Any]]) -> None:
    kinds = ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding")
    assert not of_kind(default, *kinds)
    refused = run_helm({"approvals": {"policy": {"enabled": True}}}, check=False)
    assert refused.returncode != 0 and "approvals.approvers" in refused.stderr
    docs = render(
        {
            "approvals": {
                "policy": {"enabled": True},
                "approvers": {"groups": ["rel"], "users": ["al"]},
            },
            "watchNamespaces": ["team-a"],
        }
    )
    (policy,) = of_kind(docs, "ValidatingAdmissionPolicy")
    (binding,) = of_kind(docs, "ValidatingAdmissionPolicyBinding")
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    (rule,) = policy["spec"]["matchConstraints"]["resourceRules"]
    assert rule["resources"] == ["migrations"]  # not migrations/status: the operator's
    approver = {v["name"]: v["expression"] for v in policy["spec"]["variables"]}["approver"]
    assert '["al"]' in approver and '["rel"]' in approver
    selector = binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"]
    assert selector[0]["values"] == ["team-a"]


# -- metrics, storage, CRDs, plain manifests -------------------------------------------------


def test_metrics_service_and_optional_service_monitor(default: list[dict[str, Any]]) -> None:
    (service,) = of_kind(default, "Service")
    (port,) = service["spec"]["ports"]
    assert port["port"] == 9090 and port["targetPort"] == "metrics"
    (deployment,) = of_kind(default, "Deployment")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert not of_kind(default, "ServiceMonitor")
    with_monitor = render({"metrics": {"serviceMonitor": {"enabled": True}}})
    (monitor,) = of_kind(with_monitor, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    off = render({"metrics": {"enabled": False}})
    assert not of_kind(off, "Service") and "--metrics-port=0" in container(off)["args"]


def test_backup_store_volume_with_an_optional_claim(default: list[dict[str, Any]]) -> None:
    assert not of_kind(default, "PersistentVolumeClaim")
    docs = render({"backupStore": {"enabled": True}})
    (claim,) = of_kind(docs, "PersistentVolumeClaim")
    assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    mounts = {m["name"]: m["mountPath"] for m in container(docs)["volumeMounts"]}
    assert mounts["backups"] == "/var/lib/ferry/backups"
    existing = render({"backupStore": {"enabled": True, "existingClaim": "mine"}})
    assert not of_kind(existing, "PersistentVolumeClaim")
    (deployment,) = of_kind(existing, "Deployment")
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["backups"]["persistentVolumeClaim"] == {"claimName": "mine"}


def test_chart_crds_are_the_crds() -> None:
    sources = sorted((REPO_ROOT / "crds").glob("*.yaml"))
    copies = sorted((CHART / "crds").iterdir())
    assert [p.name for p in copies] == [p.name for p in sources]
    for src, copy in zip(sources, copies, strict=True):
        assert copy.read_bytes() == src.read_bytes(), f"{copy} differs: cp {src} {copy}"


def test_plain_manifests_are_the_rendered_chart() -> None:
    """manifests/install/ferry.yaml = a Namespace + `helm template --include-crds`
    with the default values (regenerate: hack/check-chart.sh --write)."""
    docs = [d for d in yaml.safe_load_all(INSTALL.read_text()) if d]
    namespace, *rest = docs
    assert namespace == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                "app.kubernetes.io/part-of": "ferry",
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }
    assert rest == render(include_crds=True), "stale: run hack/check-chart.sh --write"
