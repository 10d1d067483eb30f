"""The Migration flow's error branches, each reached for real: an engine failure after
the apply began (rolled back), a plan that moved after its approval, refusals by the
rules and by the schema, an unreachable database, Git sources that cannot be read, and a
baseline that cannot be recorded after a success.

Two SQLite databases, a filesystem store and a local bare Git repository (``file://``)
in ``tmp_path``, and the in-memory cluster; no mocks of the engine.
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import controller.commands.migrate as migrate_module
import controller.flows.migration as flow_module
from controller.commands.migrate import plan_only as real_plan_only
from controller.engine.plan import PLAN_FORMAT
from controller.errors import PermanentError, TemporaryError
from controller.flows.migration import reconcile_migration
from tests.fixtures import nocobase_shape as shape
from tests.harness.gitcmd import git
from tests.unit.fake_cluster import FakeCluster
from tests.unit.test_flows_migration import NOW, READY, VARS, conditions_of, env, migration


def run(
    cluster: FakeCluster, name: str, fault: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], list[tuple[str, str, str]], float | None]:
    body = cluster.get("Migration", "ns", name)
    assert body is not None
    outcome = reconcile_migration(body, cluster, now=NOW, on_phase=lambda _p: None, fault=fault)
    cluster.patch_status("Migration", "ns", name, outcome.status)
    events = [(str(e.type), e.reason, e.message) for e in outcome.events]
    return outcome.status, events, outcome.retry_after


def fail_at(step: str) -> Callable[[str], None]:
    def fault(at: str) -> None:
        if at == step:
            raise PermanentError(f"failpoint {at}: injected failure")

    return fault


@pytest.fixture
def urls(tmp_path: Path) -> dict[str, str]:
    urls = {n: f"sqlite:///{tmp_path}/{n}.db" for n in ("dev", "pre")}
    shape.build(urls["dev"], app="dev", variables=VARS)
    shape.builder_changes(urls["dev"])
    shape.build(urls["pre"], app="pre", variables=VARS)
    return urls


@pytest.fixture
def cluster(tmp_path: Path, urls: dict[str, str]) -> FakeCluster:
    return FakeCluster(env("dev", urls["dev"]), env("pre", urls["pre"], store=tmp_path / "store"))


def stalled(status: dict[str, Any], phase: str, reason: str) -> None:
    assert status["phase"] == phase, status
    conditions = conditions_of(status)
    assert conditions["Stalled"] == ("True", reason)
    assert conditions["Ready"] == ("False", reason)
    assert conditions["Applied"] == ("False", reason)
    assert status["completionTime"] == "2026-03-28T12:00:00Z"


def dump(url: str) -> dict[str, list[str]]:
    """Every row of every table but Ferry's ledger, in a stable order."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        names = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        return {
            n: sorted(map(repr, conn.execute(f'select * from "{n}"')))
            for n in names
            if n != "ferry_migrations"
        }


def ledger(url: str) -> list[tuple[str, str]]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return list(conn.execute("select id, result from ferry_migrations"))


def sql(url: str, *statements: str) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        for statement in statements:
            conn.execute(statement)


# -- failures after the apply began --------------------------------------------------------


@pytest.mark.parametrize("step", ["schema", "verify", "ledger"])
def test_a_failure_while_applying_rolls_back(
    cluster: FakeCluster, urls: dict[str, str], step: str
) -> None:
    before = dump(urls["pre"])
    env_before = cluster.get("Environment", "ns", "pre")
    cluster.add(migration("m"))
    status, events, delay = run(cluster, "m", fail_at(step))
    stalled(status, "RolledBack", "RolledBack")
    expected = (
        f"failpoint {step}: injected failure; the target is unchanged "
        "(the transaction was rolled back)"
    )
    assert status["message"] == expected
    assert events == [("Warning", "RolledBack", expected)]
    assert delay is None
    assert status["backup"]["id"]  # taken before the apply, kept for the record
    assert status["migrationId"] == "ns.m.m-0000-u"
    assert dump(urls["pre"]) == before
    assert ledger(urls["pre"]) == [("ns.m.m-0000-u", "rolled-back")]
    # A migration that did not happen moves no baseline.
    assert cluster.get("Environment", "ns", "pre") == env_before
    assert ("patch_status", "Environment", "pre") not in cluster.calls


def test_a_rolled_back_migration_is_not_run_again(cluster: FakeCluster) -> None:
    cluster.add(migration("m"))
    run(cluster, "m", fail_at("verify"))
    calls = len(cluster.calls)
    status, events, delay = run(cluster, "m")
    assert (status, events, delay) == ({}, [], None)
    assert len(cluster.calls) == calls + 1  # only this test's own status write


def test_a_plan_that_moved_after_approval_is_planned_again(
    cluster: FakeCluster, urls: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a plan is shown before the apply (an application to stop first, a
    rehearsal), a builder edits the source between the flow's plan (which the approval
    matched) and the engine's own plan inside its write session: nothing is applied, and
    the Migration goes back to Planning to show the new plan."""
    cluster.add(migration("gated", approval={"required": True}))
    digest = run(cluster, "gated")[0]["planDigest"]
    cluster.patch("Migration", "ns", "gated", {"spec": {"approval": {"planDigest": digest}}})
    before = dump(urls["pre"])
    monkeypatch.setattr(flow_module._Flow, "plans_once", lambda *_a: False)

    def plan_then_edit(*args: Any, **kwargs: Any) -> Any:
        planned = real_plan_only(*args, **kwargs)
        sql(urls["dev"], "update roles set title = 'Edited meanwhile'")
        return planned

    monkeypatch.setattr(flow_module, "plan_only", plan_then_edit)
    status, events, delay = run(cluster, "gated")
    assert status["phase"] == "Planning", status
    assert status["message"].startswith(
        f"the approved digest {digest} no longer matches the plan sha256:"
    )
    assert status["message"].endswith(
        f"(plan format {PLAN_FORMAT}): the source or target changed, or the digest was made under "
        "another plan format"
    )
    assert conditions_of(status)["Reconciling"] == ("True", "PlanChanged")
    assert conditions_of(status)["Ready"] == ("False", "PlanChanged")
    assert delay == 1.0
    assert events == [("Normal", "PlanChanged", status["message"])]
    assert "completionTime" not in status
    assert dump(urls["pre"]) == before
    # The next pass plans again and waits for an approval of the new plan.
    monkeypatch.setattr(flow_module, "plan_only", real_plan_only)
    again = run(cluster, "gated")[0]
    assert again["phase"] == "AwaitingApproval" and again["planDigest"] != digest
    assert "no longer matches" in again["message"]


# -- refusals before anything is changed ---------------------------------------------------


def test_an_approved_plan_is_made_once_and_a_moved_one_asks_again(
    cluster: FakeCluster, urls: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing waits for a plan shown first: the engine's plan under the write lock is
    the only one. A source edited after the approval applies nothing and asks for the
    new digest; approving that applies it, planned once, and status shows that plan."""
    cluster.add(migration("gated", approval={"required": True}))
    digest = run(cluster, "gated")[0]["planDigest"]
    cluster.patch("Migration", "ns", "gated", {"spec": {"approval": {"planDigest": digest}}})
    sql(urls["dev"], "update roles set title = 'Edited after the approval'")
    before = dump(urls["pre"])
    status, _events, delay = run(cluster, "gated")
    assert status["phase"] == "AwaitingApproval" and delay is None
    assert status["message"].startswith(f"the approved digest {digest} no longer matches")
    assert dump(urls["pre"]) == before and "approval" not in status
    moved = status["planDigest"]
    assert moved != digest
    cluster.patch("Migration", "ns", "gated", {"spec": {"approval": {"planDigest": moved}}})
    plans: list[str] = []
    real_prepare = migrate_module.prepare

    def counted(*args: Any, **kwargs: Any) -> Any:
        prepared = real_prepare(*args, **kwargs)
        plans.append(prepared.plan.digest)
        return prepared

    monkeypatch.setattr(migrate_module, "prepare", counted)
    monkeypatch.setattr(flow_module, "plan_only", None)  # never called on this path
    status, _events, _delay = run(cluster, "gated")
    assert status["phase"] == "Succeeded", status
    assert plans == [moved] and status["planDigest"] == moved
    assert status["approval"]["planDigest"] == moved
    assert any(t["table"] == "roles" and t["update"] for t in status["plan"]["tables"])
    assert ledger(urls["pre"]) == [(status["migrationId"], "succeeded")]


def test_a_rule_a_built_in_table_refuses_fails_the_migration(
    cluster: FakeCluster, urls: dict[str, str]
) -> None:
    before = dump(urls["pre"])
    cluster.add(migration("m", rules={"tables": [{"match": "migrations", "rule": "overwrite"}]}))
    status, events, delay = run(cluster, "m")
    stalled(status, "Failed", "RuleRefused")
    assert status["message"].startswith(
        "rules.tables[0]: rule overwrite is not allowed on table migrations ("
    )
    assert events == [("Warning", "RuleRefused", status["message"])]
    assert delay is None and "plan" not in status
    assert dump(urls["pre"]) == before


def test_a_glob_a_built_in_table_refuses_only_warns(cluster: FakeCluster) -> None:
    cluster.add(migration("m", rules={"tables": [{"match": "migr*", "rule": "overwrite"}]}))
    status = run(cluster, "m")[0]
    assert status["phase"] == "Succeeded", status
    assert any("not allowed on table migrations" in w for w in status["plan"]["warnings"])


# -- an unreachable database ---------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def postgres_env(name: str, port: int) -> dict[str, Any]:
    return {
        "kind": "Environment",
        "metadata": {"name": name},
        "spec": {
            "stage": "production",
            "allowRunningApplication": True,
            "database": {
                "dialect": "postgresql",
                "url": f"postgresql://ferry@127.0.0.1:{port}/app",
            },
        },
        "status": READY,
    }


@pytest.mark.parametrize("side", ["source", "target"])
def test_an_unreachable_database_is_retried_in_the_phase_it_reached(
    cluster: FakeCluster, side: str
) -> None:
    cluster.add(postgres_env("prod", closed_port()))
    spec = {"source": {"environment": "prod"}} if side == "source" else {"target": "prod"}
    cluster.add(migration("m", **spec))
    status, events, delay = run(cluster, "m")
    assert status["phase"] == "Pending", status
    assert "127.0.0.1" in status["message"] and "completionTime" not in status
    assert conditions_of(status)["Reconciling"] == ("True", "Unreachable")
    assert conditions_of(status)["Ready"] == ("False", "Unreachable")
    assert events == [("Normal", "Unreachable", status["message"])]
    assert delay is not None and delay > 0
    # A retry in the same phase posts no second event.
    cluster.patch_status("Migration", "ns", "m", {"phase": "Unreachable"})
    cluster.patch_status("Migration", "ns", "m", {"phase": "Pending"})
    again, events_again, _ = run(cluster, "m")
    assert again["phase"] == "Pending" and events_again == []


# -- Git sources that cannot be read -------------------------------------------------------


@pytest.fixture
def bare_repo(tmp_path: Path) -> tuple[str, str]:
    """``file://`` URL of a bare repository with one commit (a README only), and that
    commit's SHA."""
    bare, work = tmp_path / "config.git", tmp_path / "work"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(work))
    (work / "README").write_text("configuration lives under snapshot/\n")
    git(work, "add", "README")
    git(work, "commit", "--quiet", "-m", "first")
    git(work, "push", "--quiet", str(bare), "main")
    return f"file://{bare}", git(work, "rev-parse", "HEAD")


def git_migration(repository: str, **git_spec: Any) -> dict[str, Any]:
    return migration("g", source={"git": {"repository": repository, **git_spec}})


@pytest.mark.parametrize(
    ("git_spec", "reason", "expected"),
    [
        (
            {"revision": "no-such-branch"},
            "GitRevisionNotFound",
            "git: revision 'no-such-branch' does not exist in ",
        ),
        (
            {"revision": "f" * 40},
            "GitRevisionNotFound",
            f"git: revision '{'f' * 40}' does not exist in ",
        ),
        ({"path": "snapshot"}, "GitPathNotFound", "git: path 'snapshot' does not exist at "),
        (
            {"revision": "main", "path": "snapshot/app"},
            "GitPathNotFound",
            "git: path 'snapshot/app' does not ",
        ),
    ],
)
def test_a_git_revision_or_path_that_does_not_exist_fails(
    cluster: FakeCluster,
    urls: dict[str, str],
    bare_repo: tuple[str, str],
    git_spec: dict[str, str],
    reason: str,
    expected: str,
) -> None:
    repository, commit = bare_repo
    before = dump(urls["pre"])
    cluster.add(git_migration(repository, **git_spec))
    status, events, delay = run(cluster, "g")
    # The Git error's own reason reaches the condition and the event.
    stalled(status, "Failed", reason)
    assert status["message"].startswith(expected), status["message"]
    if "path" in git_spec:
        assert status["message"].endswith(f" at {commit[:12]}")
    assert events == [("Warning", reason, status["message"])]
    assert delay is None and "plan" not in status
    assert dump(urls["pre"]) == before


def test_a_git_repository_that_does_not_exist_fails(
    cluster: FakeCluster, tmp_path: Path, urls: dict[str, str]
) -> None:
    missing = f"file://{tmp_path}/nowhere.git"
    cluster.add(git_migration(missing))
    status, events, delay = run(cluster, "g")
    stalled(status, "Failed", "GitRepositoryNotFound")
    assert status["message"].startswith(f"git: repository {missing} not found (")
    assert events == [("Warning", "GitRepositoryNotFound", status["message"])]
    assert delay is None


@pytest.mark.parametrize(
    ("repository", "reason", "fragment"),
    [
        ("ext::sh -c touch% /tmp/ferry-pwned", "InvalidSpec", "malformed value 'ext::sh"),
        ("http://example.org/config.git", "GitSourceRefused", "git: "),
    ],
)
def test_a_git_remote_refused_before_git_runs_fails(
    cluster: FakeCluster, repository: str, reason: str, fragment: str
) -> None:
    cluster.add(git_migration(repository))
    status = run(cluster, "g")[0]
    stalled(status, "Failed", reason)
    assert fragment in status["message"], status["message"]
    assert not Path("/tmp/ferry-pwned").exists()


def test_unanswered_git_credentials_are_retried(
    cluster: FakeCluster, bare_repo: tuple[str, str]
) -> None:
    cluster.unanswered.add("creds")
    cluster.add(git_migration(bare_repo[0], secretRef={"name": "creds"}))
    status, events, delay = run(cluster, "g")
    assert status["phase"] == "Pending"
    assert status["message"] == ("Kubernetes API: reading Secret ns/creds: 503 Service Unavailable")
    assert conditions_of(status)["Reconciling"] == ("True", "Temporary")
    assert events == [("Normal", "Temporary", status["message"])]
    assert delay == 5


# -- after a success -----------------------------------------------------------------------


class RefusingEnvironmentStatus(FakeCluster):
    """The API server refuses the Environment's status patch (a conflict, RBAC)."""

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        if kind == "Environment":
            self.calls.append(("refused patch_status", kind, name))
            raise TemporaryError(f"Kubernetes API: patching {kind} {namespace}/{name}: 409")
        super().patch_status(kind, namespace, name, status)


def test_a_baseline_that_cannot_be_recorded_leaves_the_success_alone(
    tmp_path: Path, urls: dict[str, str]
) -> None:
    cluster = RefusingEnvironmentStatus(
        env("dev", urls["dev"]), env("pre", urls["pre"], store=tmp_path / "store")
    )
    env_before = cluster.get("Environment", "ns", "pre")
    cluster.add(migration("m"))
    status, events, delay = run(cluster, "m")
    assert status["phase"] == "Succeeded", status
    assert status["message"] == "applied to pre"
    assert conditions_of(status)["Ready"] == ("True", "Applied")
    assert events == [("Normal", "Applied", "applied to pre")]
    assert delay is None and "warnings" not in status
    assert ("refused patch_status", "Environment", "pre") in cluster.calls
    assert cluster.get("Environment", "ns", "pre") == env_before
    assert ledger(urls["pre"]) == [("ns.m.m-0000-u", "succeeded")]
