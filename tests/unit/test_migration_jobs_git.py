"""A Migration with a Git source in Job mode: the Job's ``ferry migrate`` clones the
commit the operator planned, with the credentials Secret only as a Secret volume.

The repository is a real local bare repository (``file://``) holding a real ``ferry
export``; the Job's pod runs the real CLI (``tests.unit.fake_jobs``), its Secret volume
projected into a directory as the kubelet would. Over HTTPS with a token the same path
runs against the real Git server: ``tests/db/test_git_jobs.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest

from controller.commands.export import export
from controller.commands.planning import PlanOptions
from controller.commands.sources import git_spec, parse_git_spec
from controller.errors import InvalidInput
from controller.gitsource.remote import holds_credentials
from controller.gitsource.repository import (
    CREDENTIALS_DIR_ENV,
    GitCredentials,
    credentials_from_directory,
)
from tests.harness.gitcmd import git
from tests.unit import test_migration_jobs as mig
from tests.unit.fake_cluster import FakeCluster
from tests.unit.fake_jobs import FakeJobs, secret_free
from tests.unit.test_migration_jobs import dev, jobs, url  # noqa: F401

TOKEN = "ghp_JobModeToken0123456789abcdefXYZ"
KEY_BODY = "b3BlbnNzaC1rZXktdjEAAAAAJobModeKey"
SSH_KEY = f"-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_BODY}\n-----END OPENSSH PRIVATE KEY-----\n"
SECRET = {"token": TOKEN, "username": "ci-bot", "ssh-privatekey": SSH_KEY}
SNAPSHOT = "snapshots/app#1&v=%41"  # a path the fragment must encode


@pytest.fixture
def repo(tmp_path: Path, dev: str) -> dict[str, str]:  # noqa: F811
    """A bare repository (its path holds a ``#``) whose ``main`` holds an export of dev
    under SNAPSHOT; the working tree that pushes to it."""
    bare, work = tmp_path / "config#1.git", tmp_path / "work"
    git(tmp_path, "init", "--quiet", "--bare", "--initial-branch=main", str(bare))
    git(tmp_path, "init", "--quiet", "--initial-branch=main", str(work))
    export(dev, work / SNAPSHOT, PlanOptions())
    git(work, "add", "-A")
    git(work, "commit", "--quiet", "-m", "release 1")
    git(work, "push", "--quiet", str(bare), "main")
    return {"url": f"file://{bare}", "work": str(work), "commit": git(work, "rev-parse", "HEAD")}


def setup(jobs: FakeJobs, url: str, store: Path, source: dict[str, Any]) -> FakeCluster:  # noqa: F811
    cluster = mig.setup(jobs, "sqlite://", url, store, source={"git": source})
    cluster.secrets["git-creds"] = dict(SECRET)
    return cluster


def project_secret(job: dict[str, Any], cluster: FakeCluster, where: Path) -> None:
    """What the kubelet does with the Job's Secret volume: each key a file (behind the
    ``..data`` link it keeps), and the container's variable names that directory."""
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "git-credentials")
    data = where / "..data"
    data.mkdir(parents=True)
    for key, value in cluster.secrets[volume["secret"]["secretName"]].items():
        (data / key).write_text(value)
        (where / key).symlink_to(data / key)
    for var in pod["containers"][0]["env"]:
        if var["name"] == CREDENTIALS_DIR_ENV:
            var["value"] = str(where)


def test_the_job_clones_the_planned_commit_with_the_secret_only_as_a_volume(
    url: str, store: Path, jobs: FakeJobs, repo: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    source = {"repository": repo["url"], "revision": "main", "path": SNAPSHOT}
    cluster = setup(jobs, url, store, {**source, "secretRef": {"name": "git-creds"}})
    first = mig.run(cluster, jobs)
    assert first.status["phase"] == "Applying", first.status["message"]
    assert first.status["source"]["commit"] == repo["commit"]
    job = jobs.only()
    args = mig.args_of(job)
    # The pinned commit, not the branch; the path as given, encoded in the fragment.
    given = args[args.index("--source") + 1]
    assert parse_git_spec(given) == (repo["url"], repo["commit"], SNAPSHOT)
    assert "main" not in given.partition("#")[2]
    # The Secret reaches the pod only as a volume: no value, no key name in the env.
    pod = job["spec"]["template"]["spec"]
    volume = next(v for v in pod["volumes"] if v["name"] == "git-credentials")
    assert volume["secret"] == {"secretName": "git-creds", "defaultMode": 0o440}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert mounts["git-credentials"]["readOnly"] is True
    env = {v["name"]: v for v in pod["containers"][0]["env"]}
    assert env[CREDENTIALS_DIR_ENV] == {
        "name": CREDENTIALS_DIR_ENV,
        "value": mounts["git-credentials"]["mountPath"],
    }
    assert "FERRY_SOURCE_DATABASE_URL" not in env
    text = json.dumps(job)
    assert secret_free(job, cluster.secrets) == []
    assert [s for s in (TOKEN, KEY_BODY, "ci-bot") if s in text] == []
    kubernetes_validate.validate(job, "1.33", strict=True)

    # main moves on (the snapshot is gone there): the Job still clones what was planned.
    work = Path(repo["work"])
    git(work, "rm", "-rq", SNAPSHOT.split("/", maxsplit=1)[0])
    git(work, "commit", "--quiet", "-m", "drop the snapshot")
    git(work, "push", "--quiet", repo["url"].removeprefix("file://"), "main")
    project_secret(job, cluster, tmp_path / "secret-volume")
    jobs.run_pod(job, monkeypatch)
    done = mig.run(cluster, jobs)
    assert done.status["phase"] == "Succeeded", done.status["message"]
    assert mig.tickets(url) == 1 and mig.ledger(url) == [(mig.MIGRATION_ID, "succeeded")]
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err and TOKEN not in json.dumps(done.status)


def test_without_a_secret_the_job_gets_no_credentials_volume(
    url: str, store: Path, jobs: FakeJobs, repo: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    cluster = setup(jobs, url, store, {"repository": repo["url"], "path": SNAPSHOT})
    assert mig.run(cluster, jobs).status["phase"] == "Applying"
    job = jobs.only()
    pod = job["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"] if "secret" in v] == []
    assert CREDENTIALS_DIR_ENV not in {v["name"] for v in pod["containers"][0]["env"]}
    jobs.run_pod(job, monkeypatch)
    assert mig.run(cluster, jobs).status["phase"] == "Succeeded" and mig.tickets(url) == 1


def test_a_repository_gone_before_the_pod_ran_fails_as_in_process(
    url: str, store: Path, jobs: FakeJobs, repo: dict[str, str],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    cluster = setup(jobs, url, store, {"repository": repo["url"], "path": SNAPSHOT})
    assert mig.run(cluster, jobs).status["phase"] == "Applying"
    job = jobs.only()
    bare = Path(repo["url"].removeprefix("file://"))
    bare.rename(bare.with_name("moved.git"))
    jobs.run_pod(job, monkeypatch)  # exit 2: refused, the Job fails at once
    ended = mig.run(cluster, jobs)
    assert ended.status["phase"] == "Failed"
    ready = next(c for c in ended.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "GitRepositoryNotFound", ready
    assert ended.status["message"].startswith(f"git: repository {repo['url']} not found")
    assert mig.tickets(url) == 0 and mig.ledger(url) == []


# --- the pieces -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("repository", "revision", "path"),
    [
        ("https://git.example/org/config.git", "0" * 40, "."),
        ("file:///srv/a#b/c.git", "v1.2", "snap shots/app"),
        ("ssh://git@git.example:2222/c.git", None, "a&b=c/%41/#x"),
        ("git@git.example:org/c.git", "release/2026-12", "ünïcode/päth"),
    ],
)
def test_a_git_spec_reads_back_exactly(repository: str, revision: str | None, path: str) -> None:
    spec = git_spec(repository, revision, path)
    assert parse_git_spec(spec) == (repository, revision, path)


@pytest.mark.parametrize(
    ("repository", "holds"),
    [
        ("https://git.example/c.git", False),
        ("https://x-access-token:tok@git.example/c.git", True),
        ("https://tok@git.example/c.git", True),
        ("https://user:@git.example/c.git", True),
        ("ssh://git@git.example/c.git", False),
        ("ssh://git:pw@git.example/c.git", True),
        ("git@git.example:c.git", False),
        ("file:///srv/c.git", False),
        ("/srv/c.git", False),
        ("https://[::1/c.git", True),  # unparsable: treated as the worst case
    ],
)
def test_credentials_in_a_repository_url(repository: str, holds: bool) -> None:
    assert holds_credentials(repository) is holds


def test_credentials_from_a_secret_volume(tmp_path: Path) -> None:
    (tmp_path / "..data").mkdir()
    for key, value in {**SECRET, "authScheme": "Bearer", "other": "ignored"}.items():
        (tmp_path / "..data" / key).write_text(value)
        (tmp_path / key).symlink_to(tmp_path / "..data" / key)
    read = credentials_from_directory(tmp_path)
    assert read == GitCredentials(token=TOKEN, username="ci-bot", bearer=True, ssh_key=SSH_KEY)
    assert TOKEN not in repr(read)


@pytest.mark.parametrize(
    ("content", "says"),
    [(b"\xff\xfe" + TOKEN.encode(), "is not UTF-8"), (b"x" * ((1 << 20) + 1), "larger than")],
)
def test_a_bad_secret_file_is_refused_without_its_content(
    tmp_path: Path, content: bytes, says: str
) -> None:
    (tmp_path / "token").write_bytes(content)
    with pytest.raises(InvalidInput) as err:
        credentials_from_directory(tmp_path)
    assert says in err.value.message and TOKEN not in err.value.message


def test_a_missing_secret_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="is not a directory"):
        credentials_from_directory(tmp_path / "absent")
