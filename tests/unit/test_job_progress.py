"""A Job's progress reaches its object's status: the access the operator creates for the
pod, the CLI that writes with it, and the operator leaving that progress alone while the
Job runs. (The token's RBAC against a real API server: tests/e2e/test_job_progress_token.py;
on a real node: tests/node/test_jobs.py.)"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from controller.api.execution import ExecutionMode, ExecutionSpec
from controller.flows.jobs import JobRequest, StoreMount, job_manifest, job_name
from controller.k8s.job_access import TOKEN_DIR, access_objects
from controller.k8s.jobs import JobSettings
from controller.k8s.status_progress import StatusProgress
from tests.hostile import assert_refused, run_cli
from tests.unit.fake_cluster import FakeCluster
from tests.unit.fake_jobs import FakeJobs
from tests.unit.test_jobs import JOB, backup, environment, run, setup

SETTINGS = JobSettings(image="ferry:test")
PLURAL = {"Backup": "backups", "Restore": "restores", "Migration": "migrations"}


@pytest.fixture
def jobs(tmp_path: Path) -> FakeJobs:
    return FakeJobs(FakeCluster(), tmp_path / "results")


def manifest(kind: str, account: str | None = None) -> dict[str, Any]:
    body = {"metadata": {"name": "x", "namespace": "team", "uid": f"uid-{kind}"}}
    execution = ExecutionSpec(mode=ExecutionMode.JOB, service_account_name=account)
    request = JobRequest(kind, body, ["backup", "create"], [], StoreMount("s3://b"), execution)
    return job_manifest(request, SETTINGS)


@pytest.mark.parametrize("kind", ["Backup", "Restore", "Migration"])
def test_each_job_gets_an_account_that_may_patch_only_its_objects_status(kind: str) -> None:
    job = manifest(kind)
    name = job_name(kind, "x", f"uid-{kind}")
    account, role, binding = access_objects("team", job)
    assert [o["kind"] for o in (account, role, binding)] == [
        "ServiceAccount",
        "Role",
        "RoleBinding",
    ]
    for obj in (account, role, binding):
        assert obj["metadata"]["name"] == name
        (owner,) = obj["metadata"]["ownerReferences"]  # collected with the object
        assert (owner["kind"], owner["name"], owner["uid"]) == (kind, "x", f"uid-{kind}")
        kubernetes_validate.validate({**obj}, "1.37.0", strict=True)
    assert account["automountServiceAccountToken"] is False
    assert role["rules"] == [
        {
            "apiGroups": ["ferry.dev"],
            "resources": [f"{PLURAL[kind]}/status"],
            "resourceNames": ["x"],
            "verbs": ["patch"],
        }
    ]
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": name,
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "team"}]

    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == name and pod["automountServiceAccountToken"] is False
    token = [v for v in pod["volumes"] if "projected" in v]
    assert len(token) == 1, "one projected volume, the progress token"
    sources = token[0]["projected"]["sources"]
    assert sources[0] == {"serviceAccountToken": {"path": "token", "expirationSeconds": 600}}
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    mounts = [m for m in container["volumeMounts"] if m["name"] == token[0]["name"]]
    assert mounts == [{"name": token[0]["name"], "mountPath": TOKEN_DIR, "readOnly": True}]
    assert {"name": "FERRY_PROGRESS_TO", "value": f"{kind}/team/x"} in container["env"]
    kubernetes_validate.validate(job, "1.37.0", strict=True)


def test_a_job_with_its_own_account_keeps_it_and_only_gets_the_role_bound_to_it() -> None:
    job = manifest("Backup", account="cloud-identity")
    assert job["spec"]["template"]["spec"]["serviceAccountName"] == "cloud-identity"
    kinds = [o["kind"] for o in access_objects("team", job)]
    assert kinds == ["Role", "RoleBinding"]  # no account created: the spec names one
    binding = access_objects("team", job)[1]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "cloud-identity", "namespace": "team"}
    ]


def test_a_job_without_the_token_or_an_owner_gets_no_access() -> None:
    job = manifest("Backup")
    bare = {**job, "metadata": {**job["metadata"], "ownerReferences": []}}
    assert access_objects("team", bare) == []
    spec = job["spec"]["template"]["spec"]
    untokened = {**job, "spec": {"template": {"spec": {**spec, "volumes": []}}}}
    assert access_objects("team", untokened) == []


def test_the_pod_writes_progress_and_the_running_operator_leaves_it_alone(
    url: str, store: Path, jobs: FakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = setup(jobs, environment(url, store, JOB), backup())
    run(cluster, jobs)
    name = jobs.only()["metadata"]["name"]
    assert {k for k, _ in jobs.access} == {"ServiceAccount", "Role", "RoleBinding"}
    assert {n for _, n in jobs.access} == {name}

    # While the Job runs, what its pod wrote stays: the operator's polls carry no progress.
    written = {"phase": "BackingUp", "tables": "2/9", "rows": 5, "updated": "2026-11-30T11:59:00Z"}
    cluster.patch_status("Backup", "ns", "b", {"progress": written})
    for _ in range(2):
        polled = run(cluster, jobs)
        assert polled.status["phase"] == "Running" and "progress" not in polled.status
    assert (cluster.get("Backup", "ns", "b") or {})["status"]["progress"] == written

    # The pod itself reports into that status as it works (before the operator's end).
    cluster.patch_status("Backup", "ns", "b", {"progress": None})
    jobs.run_pod(jobs.only(), monkeypatch)
    mid = (cluster.get("Backup", "ns", "b") or {})["status"]["progress"]
    assert mid["phase"] == "BackingUp" and re.fullmatch(r"\d+/\d+", mid["tables"])
    done = run(cluster, jobs)  # the final progress comes from the result, every table done
    tables = done.status["tables"]
    assert (
        done.status["phase"] == "Completed"
        and done.status["progress"]["tables"] == f"{tables}/{tables}"
    )


def test_a_refused_progress_write_never_fails_the_work_and_shows_no_token(
    url: str, store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An API server that does not answer, with a token mounted: the backup completes,
    and stderr says once, without the token, that progress did not get through."""
    tokens = tmp_path / "token"
    tokens.mkdir()
    secret = "eyJhbGciOiJSUzI1NiJ9.token-that-must-never-be-printed"
    (tokens / "token").write_text(secret)
    (tokens / "ca.crt").write_text("")
    monkeypatch.setenv("FERRY_PROGRESS_TOKEN_DIR", str(tokens))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "9")  # nobody answers
    argv = ["backup", "create", "--store", str(store), "--database", url]
    outcome = run_cli([*argv, "--progress-to", "Backup/ns/b"])
    assert outcome.code == 0, outcome.stderr
    lines = [line for line in outcome.stderr.splitlines() if "progress" in line]
    assert len(lines) == 1 and "Backup ns/b" in lines[0], outcome.stderr
    assert secret not in outcome.stderr + outcome.stdout
    assert list(store.rglob("manifest.json"))


@pytest.mark.parametrize(
    "target",
    ["Backup/ns", "Pod/ns/b", "Backup/ns/b/extra", "Backup/NS/b", "Backup/ns/", "Backup//b"],
)
def test_a_malformed_progress_target_is_refused_before_any_work(
    url: str, store: Path, target: str
) -> None:
    argv = ["backup", "create", "--store", str(store), "--database", url, "--progress-to", target]
    assert_refused(argv, 2, [url, store], says="--progress-to")


def test_the_progress_target_also_comes_from_the_environment(
    url: str, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cluster = FakeCluster({"kind": "Backup", "metadata": {"name": "b", "namespace": "ns"}})
    monkeypatch.setattr("controller.cli.progress.TokenStatusWriter", lambda: cluster)
    monkeypatch.setenv("FERRY_PROGRESS_TO", "Backup/ns/b")
    outcome = run_cli(["backup", "create", "--store", str(store), "--database", url])
    assert outcome.code == 0, outcome.stderr
    progress = (cluster.get("Backup", "ns", "b") or {})["status"]["progress"]
    done, total = progress["tables"].split("/")
    assert progress["phase"] == "BackingUp" and int(total) > 0 and 0 <= int(done) <= int(total)


def test_the_pods_progress_writes_what_the_throttle_held_back_without_a_next_change() -> None:
    """Work that waits mid-run (a locked table) still shows the tables it finished: the
    pod's progress writes a held-back change once the interval has passed, and its last
    state when it closes."""
    cluster = FakeCluster({"kind": "Backup", "metadata": {"name": "b", "namespace": "ns"}})
    progress = StatusProgress(cluster, "Backup", "ns", "b", interval=0.3, trailing=True)

    def shown() -> str:
        return str(((cluster.get("Backup", "ns", "b") or {})["status"]["progress"])["tables"])

    progress.start("BackingUp", 4)
    progress.table("users", rows=3)
    progress.table("roles", rows=2)
    assert shown() == "0/4"  # held back by the throttle
    deadline = time.monotonic() + 5
    while shown() != "2/4" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert shown() == "2/4"  # written with no further change
    progress.table("fields")
    progress.close()  # the held-back change is written now, and no timer is left
    assert shown() == "3/4" and progress.timer is None
    writes = [c for c in cluster.calls if c[0] == "patch_status"]
    assert len(writes) == 3
