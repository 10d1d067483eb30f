"""Git sources with credentials, against a real Git server over HTTPS.

``tests/harness/gitserver.py`` serves bare repositories with ``git http-backend``
behind an HTTPS server that demands the token (Bearer, or Basic with the token as
password). Its certificate is signed by a certificate authority made at test start,
which the tests trust as a user trusts a private CA: ``GIT_SSL_CAINFO``.
The snapshot in the repository is a real ``ferry export`` of a NocoBase-shaped SQLite
database, and the checkout is planned against a target to show it is a usable source.

Over SSH the same repository is served by a real OpenSSH ``sshd`` the harness starts
on 127.0.0.1 (:class:`tests.harness.gitserver.SSHGitServer`) with its own host key and
one authorized client key; a missing ``sshd`` skips these tests locally and fails
them in CI (run ``hack/ensure-system-packages.sh``).
"""

from __future__ import annotations

import base64
import logging
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.commands.export import export
from controller.commands.migrate import plan_only
from controller.commands.planning import PlanOptions
from controller.errors import InvalidInput, TemporaryError
from controller.gitsource.repository import (
    GitCredentials,
    checkout,
    credentials_from_secret,
    redact_url,
)
from tests.fixtures import nocobase_shape as shape
from tests.harness import gitserver
from tests.harness.gitserver import GitServer, SSHGitServer, fingerprint

TOKEN = "ghp_FerryTestToken0123456789abcdef"
WRONG = "ghp_WrongToken9876543210fedcba"
VARS = {"HOOK_TOKEN": ("secret", "t"), "TICKET_WEBHOOK": ("plain", "u")}


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.email=ci@ferry.dev", "-c", "user.name=CI", *args],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


@pytest.fixture(scope="module")
def config_repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A repository: ``main`` with an export under ``snapshots/app`` (tag ``v1``), and a
    branch ``next`` one commit ahead. Returns paths, URLs and commits."""
    root = tmp_path_factory.mktemp("git-sources")
    dev = f"sqlite:///{root}/dev.db"
    shape.build(dev, app="dev", variables=VARS)
    shape.builder_changes(dev)
    repo = root / "work"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    export(dev, repo / "snapshots" / "app", PlanOptions())
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "release 1")
    _git(repo, "tag", "v1")
    main = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-b", "next")
    (repo / "NOTES.md").write_text("next release\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "next")
    nxt = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "main")
    target = f"sqlite:///{root}/pre.db"
    shape.build(target, app="pre", variables=VARS)
    return {"work": str(repo), "main": main, "next": nxt, "target": target}


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitServer]:
    with GitServer(tmp_path / "served", token=TOKEN) as running:
        monkeypatch.setenv(*running.trust_env())
        yield running


def _url(server: GitServer, config_repo: dict[str, str]) -> str:
    return server.create_repository("config", Path(config_repo["work"]))


def test_clone_with_the_token_records_the_commit(
    server: GitServer, config_repo: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    url = _url(server, config_repo)
    caplog.set_level(logging.DEBUG)
    with checkout(url, "v1", "snapshots/app", token=TOKEN) as out:
        assert out.commit == config_repo["main"]
        assert (out.directory / "tables").is_dir()
        plan = plan_only(str(out.directory), config_repo["target"], PlanOptions()).plan
        assert plan.changes_anything
    assert server.requests and all(r.accepted for r in server.requests)
    # Basic auth with the default user name; the token is in no URL and no log line.
    assert {(r.scheme, r.username) for r in server.requests} == {("Basic", "x-access-token")}
    assert not any(TOKEN in r.path for r in server.requests)
    assert TOKEN not in caplog.text


def test_default_branch_other_branches_and_commits(
    server: GitServer, config_repo: dict[str, str]
) -> None:
    url = _url(server, config_repo)
    with checkout(url, None, "snapshots/app", token=TOKEN) as out:
        assert out.commit == config_repo["main"]
    with checkout(url, "next", ".", token=TOKEN) as out:  # a branch only on the remote
        assert out.commit == config_repo["next"] and (out.directory / "NOTES.md").is_file()
    with checkout(url, config_repo["next"][:12], ".", token=TOKEN) as out:
        assert out.commit == config_repo["next"]


def test_bearer_token(server: GitServer, config_repo: dict[str, str]) -> None:
    url = _url(server, config_repo)
    creds = credentials_from_secret({"token": TOKEN, "authScheme": "Bearer"})
    with checkout(url, "main", "snapshots/app", credentials=creds) as out:
        assert out.commit == config_repo["main"]
    assert {r.scheme for r in server.requests if r.accepted} == {"Bearer"}


def test_username_from_the_secret(
    tmp_path: Path, config_repo: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with GitServer(tmp_path / "served", token=TOKEN, username="ferry-bot") as strict:
        monkeypatch.setenv(*strict.trust_env())
        url = strict.create_repository("config", Path(config_repo["work"]))
        creds = credentials_from_secret({"username": "ferry-bot", "password": TOKEN})
        with checkout(url, "v1", "snapshots/app", credentials=creds) as out:
            assert out.commit == config_repo["main"]
        with (
            pytest.raises(InvalidInput, match="denied"),
            checkout(url, "v1", ".", token=TOKEN),
        ):
            pass


@pytest.mark.parametrize("token", [WRONG, None], ids=["wrong-token", "no-token"])
def test_refused_credentials_are_a_clear_invalid_input(
    server: GitServer,
    config_repo: dict[str, str],
    token: str | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = _url(server, config_repo)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(InvalidInput) as caught, checkout(url, "v1", ".", token=token):
        pass
    err = caught.value
    assert err.reason == "GitAccessDenied"
    assert "access to" in err.message and "denied" in err.message and url in err.message
    encoded = base64.b64encode(f"x-access-token:{WRONG}".encode()).decode()
    for secret in (WRONG, encoded):
        assert secret not in err.message and secret not in caplog.text
    assert any(r.accepted is False for r in server.requests)


def test_credentials_in_the_url_are_redacted(
    server: GitServer, config_repo: dict[str, str]
) -> None:
    url = _url(server, config_repo).replace("https://", f"https://someone:{WRONG}@")
    with pytest.raises(InvalidInput) as caught, checkout(url, "v1", "."):
        pass
    assert WRONG not in caught.value.message and "https://***@127.0.0.1" in caught.value.message
    assert redact_url("https://u:p@git.example.com/x.git") == "https://***@git.example.com/x.git"


def test_missing_revision_and_path(server: GitServer, config_repo: dict[str, str]) -> None:
    url = _url(server, config_repo)
    with pytest.raises(InvalidInput) as caught, checkout(url, "v404", ".", token=TOKEN):
        pass
    assert caught.value.reason == "GitRevisionNotFound" and "'v404'" in caught.value.message
    with (
        pytest.raises(InvalidInput, match="not a revision"),
        checkout(url, "--all", ".", token=TOKEN),
    ):
        pass
    with pytest.raises(InvalidInput) as caught, checkout(url, "v1", "snapshots/nope", token=TOKEN):
        pass
    assert caught.value.reason == "GitPathNotFound" and config_repo["main"][:12] in str(
        caught.value
    )
    with (
        pytest.raises(InvalidInput, match="leaves the repository"),
        checkout(url, "v1", "../..", token=TOKEN),
    ):
        pass


def test_missing_repository(server: GitServer, config_repo: dict[str, str]) -> None:
    _url(server, config_repo)
    with (
        pytest.raises(InvalidInput) as caught,
        checkout(server.url("nope"), None, ".", token=TOKEN),
    ):
        pass
    assert caught.value.reason == "GitRepositoryNotFound"
    assert TOKEN not in caught.value.message


def test_server_down_is_temporary() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        pytest.raises(TemporaryError) as caught,
        checkout(f"https://127.0.0.1:{port}/config.git", None, ".", token=TOKEN),
    ):
        pass
    assert TOKEN not in caught.value.message


@pytest.mark.parametrize("token", [TOKEN, None], ids=["with-token", "no-token"])
def test_plain_http_is_refused_before_any_request(
    server: GitServer, config_repo: dict[str, str], token: str | None
) -> None:
    """A token over http:// would travel in clear text, and so would the snapshot Ferry
    then applies: refused before git runs, so the server sees no request at all."""
    url = _url(server, config_repo).replace("https://", "http://")
    with pytest.raises(InvalidInput) as caught, checkout(url, "v1", ".", token=token):
        pass
    assert caught.value.reason == "GitSourceRefused"
    assert "http:// is not accepted" in caught.value.message and "https://" in caught.value.message
    assert TOKEN not in caught.value.message
    assert server.requests == [] and server.connections == 0


def test_a_server_certificate_git_does_not_trust_is_refused(
    server: GitServer, config_repo: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the CA, the TLS handshake fails before any HTTP request: the token is
    never sent, and the error says how to trust a private CA."""
    url = _url(server, config_repo)
    monkeypatch.delenv("GIT_SSL_CAINFO")
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent-ca-bundle.pem")
    with pytest.raises(InvalidInput) as caught, checkout(url, "v1", ".", token=TOKEN):
        pass
    assert caught.value.reason == "GitCertificateNotTrusted"
    assert "GIT_SSL_CAINFO" in caught.value.message and TOKEN not in caught.value.message
    assert server.connections >= 1 and server.requests == []  # reached, nothing sent


@pytest.mark.parametrize(
    "remote",
    [
        pytest.param("ext::sh -c touch% {marker}", id="ext"),
        pytest.param("ext::sh", id="ext-no-space"),
        pytest.param("fd::3", id="fd"),
        pytest.param("file::{work}", id="file-transport"),
        pytest.param("--upload-pack=touch {marker}", id="upload-pack-option"),
        pytest.param("-uhttps://example.com/x.git", id="short-option"),
        pytest.param("ssh://-oProxyCommand=touch%20{marker}/x.git", id="ssh-host-option"),
        pytest.param("-oProxyCommand=touch:x.git", id="scp-host-option"),
        pytest.param("git://127.0.0.1:9/x.git", id="git-protocol"),
        pytest.param("ftp://127.0.0.1/x.git", id="ftp"),
        pytest.param("https://127.0.0.1:99999/x.git", id="bad-port"),
        pytest.param("https:///x.git", id="no-host"),
        pytest.param("https://127.0.0.1/x.git\n--upload-pack=x", id="newline"),
    ],
)
def test_dangerous_transports_are_refused_before_git_runs(
    remote: str, tmp_path: Path, config_repo: dict[str, str]
) -> None:
    marker = tmp_path / "pwned"
    url = remote.format(marker=marker, work=config_repo["work"])
    with pytest.raises(InvalidInput) as caught, checkout(url, None, ".", token=TOKEN):
        pass
    assert caught.value.reason == "GitSourceRefused", caught.value.message
    assert "\n" not in caught.value.message and TOKEN not in caught.value.message
    assert not marker.exists()


@pytest.mark.parametrize(
    ("revision", "path"),
    [
        ("main..next", "."),
        ("HEAD@{1}", "."),
        ("v1^", "."),
        ("v1~1", "."),
        ("refs/heads/*", "."),
        ("v1:snapshots", "."),
        ("v 1", "."),
        ("-n", "."),
        ("main.lock", "."),
        ("x" * 300, "."),
        ("v1", "/etc"),
        ("v1", "snapshots/../../x"),
        ("v1", "-x"),
        ("v1", "snap\x00shots"),
    ],
)
def test_malformed_revision_or_path_is_refused_before_cloning(
    server: GitServer, config_repo: dict[str, str], revision: str, path: str
) -> None:
    url = _url(server, config_repo)
    with pytest.raises(InvalidInput) as caught, checkout(url, revision, path, token=TOKEN):
        pass
    assert caught.value.reason == "GitSourceRefused", caught.value.message
    assert server.requests == []


def test_credentials_never_show_in_repr() -> None:
    creds = credentials_from_secret(
        {"username": "bot", "token": TOKEN, "ssh-privatekey": "-----BEGIN KEY-----"}
    )
    assert TOKEN not in repr(creds) and "BEGIN" not in repr(creds) and "bot" in repr(creds)
    assert creds == GitCredentials(token=TOKEN, username="bot", ssh_key="-----BEGIN KEY-----")
    with pytest.raises(InvalidInput, match="authScheme"):
        credentials_from_secret({"token": TOKEN, "authScheme": "digest"})


# --- SSH -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ssh_server() -> Iterator[SSHGitServer]:
    """A real sshd for the whole session (skips locally, fails in CI without one)."""
    yield from gitserver.ssh_git_server_or_fail()


@pytest.fixture
def ssh_url(ssh_server: SSHGitServer, config_repo: dict[str, str]) -> str:
    return ssh_server.create_repository("config", Path(config_repo["work"]))


def _user_known_hosts() -> str | None:
    path = Path.home() / ".ssh" / "known_hosts"
    return path.read_text() if path.exists() else None


def _key_material(*keys: str) -> list[str]:
    """The private keys and every line of them long enough to identify them."""
    found = [key.strip() for key in keys]
    for key in keys:
        found += [line for line in key.splitlines() if len(line) >= 16 and "-----" not in line]
    return found


def test_clone_over_ssh_with_the_key_and_known_hosts(
    ssh_server: SSHGitServer,
    ssh_url: str,
    config_repo: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert ssh_url.startswith(f"ssh://{ssh_server.user}@127.0.0.1:{ssh_server.port}/")
    caplog.set_level(logging.DEBUG)
    before = _user_known_hosts()
    # What a ``kubernetes.io/ssh-auth`` Secret holds, plus ``known_hosts``.
    secret = {"ssh-privatekey": ssh_server.client_key, "known_hosts": ssh_server.known_hosts}
    with checkout(
        ssh_url, "v1", "snapshots/app", credentials=credentials_from_secret(secret)
    ) as out:
        assert out.commit == config_repo["main"]
        assert (out.directory / "tables").is_dir()
        plan = plan_only(str(out.directory), config_repo["target"], PlanOptions()).plan
        assert plan.changes_anything
        # The key and known_hosts files are gone as soon as the clone is done.
        clone_dir = next(p for p in out.directory.parents if p.name.startswith("ferry-git-"))
        assert not (clone_dir / "ssh-key").exists() and not (clone_dir / "known_hosts").exists()
    assert not clone_dir.exists()
    # The server saw our key and served the repository through git-shell.
    assert fingerprint(ssh_server.client_public_key) in ssh_server.accepted_keys()
    assert (
        ssh_server.commands[-1] == f"git-upload-pack '{ssh_url.split(str(ssh_server.port), 1)[1]}'"
    )
    # The other Secret spelling, a branch only on the remote.
    alias = {"sshPrivateKey": ssh_server.client_key, "known_hosts": ssh_server.known_hosts}
    with checkout(ssh_url, "next", ".", credentials=credentials_from_secret(alias)) as out:
        assert out.commit == config_repo["next"]
    assert _user_known_hosts() == before  # nothing remembered outside the clone
    assert not any(m in caplog.text for m in _key_material(ssh_server.client_key))


def test_ssh_key_the_server_does_not_know_is_denied(
    ssh_server: SSHGitServer, ssh_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    served = len(ssh_server.commands)
    creds = GitCredentials(ssh_key=ssh_server.other_key, known_hosts=ssh_server.known_hosts)
    with pytest.raises(InvalidInput) as caught, checkout(ssh_url, "v1", ".", credentials=creds):
        pass
    err = caught.value
    assert err.reason == "GitAccessDenied"
    assert "access to" in err.message and "was denied" in err.message
    assert "Permission denied (publickey)" in err.message
    assert redact_url(ssh_url) in err.message
    keys = _key_material(ssh_server.other_key, ssh_server.client_key)
    for text in (err.message, str(err), caplog.text):
        assert "PRIVATE KEY" not in text
        assert not any(material in text for material in keys)
    # sshd really refused that key, and nothing was served.
    assert fingerprint(ssh_server.other_public_key) in ssh_server.refused_keys()
    assert len(ssh_server.commands) == served


def test_ssh_without_known_hosts_is_refused(ssh_server: SSHGitServer, ssh_url: str) -> None:
    """Ferry's choice: no known_hosts, no clone (not ``accept-new``).

    Trust on first use would make every clone a first use (each runs in a fresh
    temporary directory, in a pod without memory), so it would verify nothing: a
    man-in-the-middle could hand Ferry any snapshot, which Ferry then applies to a
    database. So host keys are checked strictly: only the Secret's ``known_hosts`` (or
    the controller image's ``/etc/ssh/ssh_known_hosts``) is trusted, the refusal says
    what to add, and no known_hosts file is written anywhere.
    """
    before = _user_known_hosts()
    served = len(ssh_server.commands)
    logins = len(ssh_server.accepted_keys())
    creds = credentials_from_secret({"ssh-privatekey": ssh_server.client_key})
    with pytest.raises(InvalidInput) as caught, checkout(ssh_url, None, ".", credentials=creds):
        pass
    err = caught.value
    assert err.reason == "GitHostKeyNotTrusted"
    assert f"127.0.0.1:{ssh_server.port}" in err.message
    assert "never trusts a host key on first use" in err.message and "known_hosts" in err.message
    assert not any(m in err.message for m in _key_material(ssh_server.client_key))
    # The key never reached the server: ssh stopped at the host key.
    assert len(ssh_server.accepted_keys()) == logins and len(ssh_server.commands) == served
    assert _user_known_hosts() == before


def test_ssh_host_key_that_does_not_match_is_refused(
    ssh_server: SSHGitServer, ssh_url: str
) -> None:
    host_key = ssh_server.host_public_key.split()[1]
    impostor = ssh_server.known_hosts.replace(host_key, ssh_server.other_public_key.split()[1])
    creds = GitCredentials(ssh_key=ssh_server.client_key, known_hosts=impostor)
    logins = len(ssh_server.accepted_keys())
    with pytest.raises(InvalidInput) as caught, checkout(ssh_url, None, ".", credentials=creds):
        pass
    assert caught.value.reason == "GitHostKeyNotTrusted"
    assert "does not match known_hosts" in caught.value.message
    assert fingerprint(ssh_server.host_public_key) in caught.value.message  # what to check
    assert len(ssh_server.accepted_keys()) == logins


def test_ssh_server_listens_on_loopback_only(ssh_server: SSHGitServer) -> None:
    listening = [line for line in ssh_server.log().splitlines() if "Server listening" in line]
    assert listening == [f"Server listening on 127.0.0.1 port {ssh_server.port}."]
    pid = int((ssh_server.base / "sshd.pid").read_text())
    assert pid > 0


@pytest.mark.parametrize("strict", [True, False], ids=["CI", "local"])
def test_missing_sshd_fails_in_ci_and_skips_locally(
    monkeypatch: pytest.MonkeyPatch, strict: bool
) -> None:
    def missing() -> dict[str, Path]:
        raise gitserver.SSHUnavailableError("not installed: sshd (package openssh-server)")

    monkeypatch.setattr(gitserver, "ssh_programs", missing)
    monkeypatch.delenv("FERRY_STRICT", raising=False)
    monkeypatch.setenv("CI", "true" if strict else "false")
    expected = pytest.fail.Exception if strict else pytest.skip.Exception
    with pytest.raises(expected) as caught:
        next(gitserver.ssh_git_server_or_fail())
    assert "hack/ensure-system-packages.sh" in str(caught.value)
    assert "sshd" in str(caught.value)
