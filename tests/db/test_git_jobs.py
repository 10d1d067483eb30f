"""A Git source with credentials in Job mode, against the real HTTPS Git server.

``ferry plan`` and ``ferry migrate`` read a Git credentials Secret the way a Job's pod
gets it, as a Secret volume: ``--git-credentials DIR`` or ``$FERRY_GIT_CREDENTIALS_DIR``
names a directory holding its keys. A Migration in Job mode puts nothing but that
volume into its Job, and its pod (the real CLI, ``tests.unit.fake_jobs``) clones with the
token from it; a server that does not answer, or a URL that holds the token itself,
ends the Migration as in process. The server demands the token
(``tests/harness/gitserver.py``); its CA is trusted through ``GIT_SSL_CAINFO``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.gitsource.repository import CREDENTIALS_DIR_ENV
from tests.db.test_git_sources import TOKEN, WRONG, config_repo  # noqa: F401
from tests.harness.gitserver import GitServer
from tests.hostile import assert_refused, run_cli
from tests.unit import test_migration_jobs as mig
from tests.unit.fake_cluster import FakeCluster
from tests.unit.fake_jobs import FakeJobs, secret_free
from tests.unit.test_migration_jobs import jobs, url  # noqa: F401
from tests.unit.test_migration_jobs_git import project_secret

SNAPSHOT = "snapshots/app"


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitServer]:
    with GitServer(tmp_path / "served", token=TOKEN) as running:
        monkeypatch.setenv(*running.trust_env())
        yield running


@pytest.fixture
def repository(server: GitServer, config_repo: dict[str, str]) -> str:  # noqa: F811
    return server.create_repository("config", Path(config_repo["work"]))


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    path.mkdir()
    return path


def secret_dir(where: Path, **data: str) -> Path:
    """A Secret volume as the kubelet lays it out: each key a link into ``..data``."""
    (where / "..data").mkdir(parents=True)
    for key, value in data.items():
        (where / "..data" / key).write_text(value)
        (where / key).symlink_to(where / "..data" / key)
    return where


# --- the CLI --------------------------------------------------------------------------


def test_ferry_plan_reads_the_token_from_a_secret_volume(
    repository: str, config_repo: dict[str, str], tmp_path: Path,  # noqa: F811
    server: GitServer, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    source = f"git+{repository}#revision=v1&path={SNAPSHOT}"
    argv = ["plan", "--source", source, "--target", config_repo["target"], "--format", "json"]
    # Without credentials the server refuses the clone.
    assert_refused(argv, 2, [config_repo["target"]], says="was denied")
    volume = secret_dir(tmp_path / "creds", token=TOKEN, username="x-access-token")
    for given in (["--git-credentials", str(volume)], []):
        if not given:  # the same directory, named the way a Job's pod names it
            monkeypatch.setenv(CREDENTIALS_DIR_ENV, str(volume))
        out = run_cli([*argv, *given])
        assert out.code == 0, out.stderr
        assert json.loads(out.stdout)["digest"].startswith("sha256:")
        assert TOKEN not in out.stdout + out.stderr
    assert any(r.accepted and r.username == "x-access-token" for r in server.requests)


def test_ferry_migrate_with_a_wrong_token_is_denied_without_showing_it(
    repository: str, config_repo: dict[str, str], tmp_path: Path, store: Path,  # noqa: F811
) -> None:  # fmt: skip
    volume = secret_dir(tmp_path / "creds", token=WRONG)
    argv = ["migrate", "--source", f"git+{repository}#path={SNAPSHOT}"]
    argv += ["--target", config_repo["target"], "--backup-store", str(store)]
    out = assert_refused([*argv, "--git-credentials", str(volume)], 2, [config_repo["target"]])
    assert "was denied" in out.stderr and WRONG not in out.stderr + out.stdout


# --- a Migration in Job mode ----------------------------------------------------------


def setup(
    jobs: FakeJobs,  # noqa: F811
    url: str,  # noqa: F811
    store: Path,
    source: dict[str, Any],
) -> FakeCluster:
    cluster = mig.setup(jobs, "sqlite://", url, store, source={"git": source})
    cluster.secrets["git-creds"] = {"token": TOKEN}
    return cluster


def reason_of(status: dict[str, Any]) -> str:
    return str(next(c for c in status["conditions"] if c["type"] == "Ready")["reason"])


def test_a_job_clones_with_the_token_of_its_secret_volume(
    repository: str, config_repo: dict[str, str], jobs: FakeJobs, url: str,  # noqa: F811
    store: Path, server: GitServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    source = {"repository": repository, "revision": "next", "path": SNAPSHOT}
    cluster = setup(jobs, url, store, {**source, "secretRef": {"name": "git-creds"}})
    first = mig.run(cluster, jobs)
    assert first.status["phase"] == "Applying", first.status["message"]
    job = jobs.only()
    args = mig.args_of(job)
    pinned = f"git+{repository}#revision={config_repo['next']}&path={SNAPSHOT}"
    assert args[args.index("--source") + 1] == pinned
    assert TOKEN not in json.dumps(job) and secret_free(job, cluster.secrets) == []
    seen = len(server.requests)
    project_secret(job, cluster, tmp_path / "volume")
    jobs.run_pod(job, monkeypatch)
    done = mig.run(cluster, jobs)
    assert done.status["phase"] == "Succeeded", done.status["message"]
    assert mig.tickets(url) == 1
    pod = server.requests[seen:]  # the pod's clone sent the Secret's token
    assert pod and all(r.accepted and r.username == "x-access-token" for r in pod)


def test_a_server_that_does_not_answer_the_job_waits_as_in_process(
    repository: str, jobs: FakeJobs, url: str, store: Path,  # noqa: F811
    server: GitServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    source = {"repository": repository, "path": SNAPSHOT, "secretRef": {"name": "git-creds"}}
    cluster = setup(jobs, url, store, source)
    assert mig.run(cluster, jobs).status["phase"] == "Applying"
    job = jobs.only()
    project_secret(job, cluster, tmp_path / "volume")
    server.stop()
    for _ in range(2):  # exit 75 is retried up to backoffLimit (1), then the Job fails
        jobs.run_pod(jobs.only(), monkeypatch)
    told = json.loads(jobs.pods[("ns", job["metadata"]["name"])][-1]["status"][
        "containerStatuses"][0]["state"]["terminated"]["message"])  # fmt: skip
    assert told["exitCode"] == 75 and told["reason"] == "GitUnavailable"
    waiting = mig.run(cluster, jobs)
    # As in process (tests/db/test_git_sources.py: the server down is temporary): the
    # Migration waits and plans again; the failed Job is removed, nothing was applied.
    assert waiting.retry_after is not None and reason_of(waiting.status) == "GitUnavailable"
    assert waiting.status["phase"] == "Applying" and jobs.jobs == {}
    in_process = mig.setup(FakeJobs(FakeCluster(), tmp_path), "sqlite://", url, store,
                           execution=None, source={"git": source})  # fmt: skip
    in_process.secrets["git-creds"] = {"token": TOKEN}
    alone = mig.run(in_process, None)
    assert reason_of(alone.status) == "GitUnavailable" and alone.retry_after is not None
    assert mig.tickets(url) == 0 and mig.ledger(url) == []


def test_a_token_in_the_repository_url_is_refused_in_job_mode(
    server: GitServer, repository: str, jobs: FakeJobs, url: str, store: Path,  # noqa: F811
) -> None:  # fmt: skip
    with_token = repository.replace("https://", f"https://x-access-token:{TOKEN}@")
    cluster = setup(jobs, url, store, {"repository": with_token, "path": SNAPSHOT})
    outcome = mig.run(cluster, jobs)
    assert outcome.status["phase"] == "Failed" and reason_of(outcome.status) == "JobUnavailable"
    assert "holds credentials" in outcome.status["message"]
    assert jobs.jobs == {} and TOKEN not in json.dumps(outcome.status) + repr(outcome.events)
