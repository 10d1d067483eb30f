"""Fetch a configuration snapshot committed to Git at a given revision (gitpython).

The revision is resolved to a commit, which the Migration records, so the status says
exactly which reviewed snapshot was applied.

Credentials never go into a URL, a file in the working tree, a log line or an error
message. An HTTPS token is sent as ``http.extraHeader`` through git's environment for
this one command (``GIT_CONFIG_COUNT``), scoped to the repository's host, as Basic
auth with a user name (``x-access-token`` unless the Secret names one: what GitHub,
GitLab, Gitea, Bitbucket and Azure DevOps accept) or, on request, as a Bearer token.
An SSH key (and the Secret's ``known_hosts``) is written to a private (0600) temporary
file for the duration of the clone and removed right after it. Host keys are checked
strictly and never trusted on first use: with ``known_hosts`` in the Secret, only those
keys are trusted; without it, only the controller image's ``/etc/ssh/ssh_known_hosts``
(usually empty), so the clone is refused with ``GitHostKeyNotTrusted`` and nothing is
remembered for the next one. Ferry applies what it fetches to databases, so a
man-in-the-middle on first contact must not be able to feed it a snapshot.
Whatever git prints is scrubbed of the token, the header and any ``user:password@``
in the URL before it reaches an error. Which remotes, revisions and paths are accepted
at all (HTTPS, SSH and local only; never plain ``http://``) is :mod:`.remote`'s job,
done before git runs; it also says how to trust a private certificate authority.
"""

from __future__ import annotations

import base64
import os
import re
import shlex
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import git

from controller.errors import InvalidInput, TemporaryError
from controller.gitsource.remote import ALLOWED_PROTOCOLS, check_path, check_remote, check_revision

DEFAULT_USERNAME = "x-access-token"
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/@\s]+@", re.IGNORECASE)
_DENIED = (
    "could not read username",
    "could not read password",
    "authentication failed",
    "permission denied",
    "error: 401",
    "error: 403",
    "returned error: 401",
    "returned error: 403",
)
_HOST_KEY = (
    "host key verification failed",
    "remote host identification has changed",
    "host key is known for",
)
_TLS = (
    "ssl certificate problem",
    "server certificate verification failed",
    "certificate verify failed",
    "no alternative certificate subject name matches",
    "ssl: certificate subject name",
)
_HOST_KEY_SENT = re.compile(
    r"fingerprint for the \S+ key sent by the remote host is\s*(SHA256:\S+?)\.?(?:\s|;|$)"
)
_NOT_FOUND = (
    "repository not found",
    "not found",
    "does not appear to be a git repository",
    "returned error: 404",
    "does not exist",
)


@dataclass(frozen=True)
class Checkout:
    directory: Path  # the snapshot directory inside the working tree
    commit: str


@dataclass(frozen=True)
class GitCredentials:
    """How to authenticate to a repository; ``repr`` never shows the secrets."""

    token: str | None = None
    username: str | None = None  # Basic auth user name (default ``x-access-token``)
    bearer: bool = False  # send ``Authorization: Bearer <token>`` instead of Basic
    ssh_key: str | None = None
    known_hosts: str | None = None  # with an SSH key: check the host strictly against these

    def __repr__(self) -> str:
        shown = [
            f"username={self.username!r}" if self.username else "",
            "token=***" if self.token else "",
            "bearer=True" if self.bearer else "",
            "ssh_key=***" if self.ssh_key else "",
            "known_hosts=…" if self.known_hosts else "",
        ]
        return f"GitCredentials({', '.join(s for s in shown if s)})"


def credentials_from_secret(data: Mapping[str, str]) -> GitCredentials:
    """Credentials from a Secret's data (values decoded).

    Keys: ``token`` or ``password`` (HTTPS), ``username`` (Basic auth user name),
    ``authScheme: Bearer`` (send the token as a Bearer token), ``ssh-privatekey``
    (the key of ``kubernetes.io/ssh-auth`` Secrets) or ``sshPrivateKey``, and
    ``known_hosts``.
    """
    token = data.get("token") or data.get("password") or None
    scheme = (data.get("authScheme") or "basic").strip().lower()
    if scheme not in ("basic", "bearer"):
        raise InvalidInput(f"git credentials: authScheme must be Basic or Bearer, not {scheme!r}")
    return GitCredentials(
        token=token,
        username=(data.get("username") or "").strip() or None,
        bearer=scheme == "bearer",
        ssh_key=data.get("ssh-privatekey") or data.get("sshPrivateKey") or None,
        known_hosts=data.get("known_hosts") or None,
    )


# A Job's pod gets the Secret of ``spec.source.git.secretRef`` as a Secret volume: this
# names the directory that holds its keys, one file each (``credentials_from_directory``).
CREDENTIALS_DIR_ENV = "FERRY_GIT_CREDENTIALS_DIR"
SECRET_KEYS = (
    "token",
    "password",
    "username",
    "authScheme",
    "ssh-privatekey",
    "sshPrivateKey",
    "known_hosts",
)
MAX_KEY_FILE = 1 << 20  # a key, a token or a known_hosts file; never a data set


def credentials_from_directory(directory: Path) -> GitCredentials:
    """Credentials from a directory holding a Secret's keys as files (a Secret volume):
    the keys ``credentials_from_secret`` reads, each file read only if present. What a
    file holds never reaches an error message."""
    if not directory.is_dir():
        raise InvalidInput(f"git credentials: {str(directory)!r} is not a directory")
    data: dict[str, str] = {}
    for key in SECRET_KEYS:
        path = directory / key
        if not path.is_file():
            continue
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_KEY_FILE + 1)
            if len(raw) > MAX_KEY_FILE:
                raise InvalidInput(f"git credentials: {key} is larger than 1 MiB")
            data[key] = raw.decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            why = "is not UTF-8" if isinstance(err, UnicodeDecodeError) else "cannot be read"
            raise InvalidInput(f"git credentials: {key} in {directory} {why}") from None
    return credentials_from_secret(data)


def redact_url(url: str) -> str:
    """``url`` without any ``user:password@`` part."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}***@", url)


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, "***")
    return redact_url(text)


def _private_file(path: Path, text: str) -> Path:
    """``path`` created 0600 (before anything is written to it) holding ``text``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return path


def _auth_env(
    repository: str, credentials: GitCredentials, tmp: Path
) -> tuple[dict[str, str], list[str]]:
    # No credential helper of the machine's git config answers for this clone.
    config = [("credential.helper", "")]
    env: dict[str, str] = {}
    secrets: list[str] = []
    parts = urlsplit(repository)
    if credentials.token and parts.scheme == "https":  # plain http is refused earlier
        token = credentials.token
        if credentials.bearer:
            header = f"Authorization: Bearer {token}"
        else:
            user = credentials.username or DEFAULT_USERNAME
            encoded = base64.b64encode(f"{user}:{token}".encode()).decode()
            header = f"Authorization: Basic {encoded}"
            secrets.append(encoded)
        secrets += [token, header]
        host = parts.hostname or ""
        origin = f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "") + "/"
        config.append((f"http.{origin}.extraHeader", header))
    if credentials.ssh_key or credentials.known_hosts:
        # Never prompt, never trust a host key on first use, never write a known_hosts
        # file that outlives this clone (see the module doc).
        options = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"]
        options += ["-o", "UpdateHostKeys=no", "-o", "ConnectTimeout=30"]
        if credentials.ssh_key:
            key = credentials.ssh_key.replace("\r\n", "\n").strip() + "\n"
            secrets += [credentials.ssh_key.strip(), key.strip()]
            secrets += [line.strip() for line in key.splitlines() if len(line.strip()) >= 16]
            key_file = _private_file(tmp / "ssh-key", key)
            options += ["-i", str(key_file), "-o", "IdentitiesOnly=yes"]
            options += ["-o", "IdentityAgent=none"]
        if credentials.known_hosts:
            hosts = _private_file(tmp / "known_hosts", credentials.known_hosts.strip() + "\n")
            # The Secret's keys are the whole truth for this repository.
            options += ["-o", f"UserKnownHostsFile={hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        else:
            options += ["-o", "UserKnownHostsFile=/dev/null"]
        env["GIT_SSH_COMMAND"] = shlex.join(["ssh", *options])
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for i, (key, value) in enumerate(config):
        env |= {f"GIT_CONFIG_KEY_{i}": key, f"GIT_CONFIG_VALUE_{i}": value}
    return env, secrets


def _git_said(stderr: str) -> str:
    """What git's error output means, without progress lines or a prompt hint."""
    lines = [
        line.strip().removeprefix("stderr: ").strip("'").strip()
        for line in stderr.splitlines()
        if line.strip() and not line.strip().startswith(("Cloning into", "stderr: 'Cloning into"))
    ]
    said = "; ".join(line for line in lines if line)
    if "could not read username" in said.lower():
        return "HTTP 401: the server accepted no credentials"
    return said or "git failed"


def _classify(repository: str, said: str, message: str) -> Exception:
    lowered = said.lower()
    shown = redact_url(repository)
    if any(s in lowered for s in _HOST_KEY):
        sent = _HOST_KEY_SENT.search(said)
        host = _host(repository)
        if "remote host identification has changed" in lowered:
            problem = (
                f"the SSH host key of {host} does not match known_hosts (the server's key "
                "changed, or someone is intercepting the connection)"
            )
        else:
            problem = (
                f"the SSH host key of {host} is not trusted: known_hosts has no entry for it "
                "and Ferry never trusts a host key on first use"
            )
        return InvalidInput(
            f"git: {problem}; put the server's public host key in known_hosts of the "
            "Secret" + (f" (the server sent {sent.group(1)})" if sent else ""),
            reason="GitHostKeyNotTrusted",
        )
    if any(s in lowered for s in _TLS):
        return InvalidInput(
            f"git: the TLS certificate of {_host(repository)} is not trusted ({message}); for a "
            "private certificate authority set GIT_SSL_CAINFO to its PEM file",
            reason="GitCertificateNotTrusted",
        )
    if any(s in lowered for s in _DENIED):
        return InvalidInput(
            f"git: access to {shown} was denied: the credentials are missing, wrong or "
            f"lack read access ({message})",
            reason="GitAccessDenied",
        )
    if any(s in lowered for s in _NOT_FOUND):
        return InvalidInput(
            f"git: repository {shown} not found ({message})", reason="GitRepositoryNotFound"
        )
    return TemporaryError(f"git: cannot clone {shown}: {message}", reason="GitUnavailable")


def _host(repository: str) -> str:
    """The ``host`` or ``host:port`` of an ``ssh://`` or ``user@host:path`` repository."""
    parts = urlsplit(repository)
    if parts.scheme:
        host = parts.hostname or "?"
        return f"{host}:{parts.port}" if parts.port else host
    return repository.partition("@")[2].partition(":")[0] or "?"


def _resolve(repo: git.Repo, revision: str | None, shown: str) -> str:
    """The commit ``revision`` names: a commit, a tag, a remote branch (default HEAD)."""
    if revision is None:
        candidates = ["HEAD"]
    else:
        candidates = [revision, f"refs/remotes/origin/{revision}", f"refs/tags/{revision}"]
    for candidate in candidates:
        try:
            sha: str = repo.git.rev_parse("--verify", "--quiet", f"{candidate}^{{commit}}")
        except git.GitCommandError:
            continue
        if sha:
            return sha.strip()
    raise InvalidInput(
        f"git: revision {revision or 'HEAD'!r} does not exist in {shown} "
        "(not a branch, tag or commit there)",
        reason="GitRevisionNotFound",
    )


@contextmanager
def checkout(
    repository: str,
    revision: str | None,
    path: str = ".",
    token: str | None = None,
    ssh_key: str | None = None,
    *,
    credentials: GitCredentials | None = None,
) -> Iterator[Checkout]:
    """A temporary checkout of ``repository`` at ``revision`` (default: its HEAD).

    ``credentials`` (or the shorthands ``token`` / ``ssh_key``) authenticate the clone.
    """
    if credentials is None:
        credentials = GitCredentials(token=token, ssh_key=ssh_key)
    shown = redact_url(repository)
    check_remote(repository, shown)
    check_revision(revision)
    check_path(path)
    with tempfile.TemporaryDirectory(prefix="ferry-git-") as tmp:
        auth, secrets = _auth_env(repository, credentials, Path(tmp))
        env = {
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "",
            "SSH_ASKPASS": "",
            "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
            **auth,
        }
        work = Path(tmp) / "repo"
        try:
            repo = git.Repo.clone_from(repository, work, env=env, no_checkout=True)
        except git.GitCommandError as err:
            said = _scrub(str(err.stderr or ""), secrets)
            raise _classify(repository, said, _git_said(said)) from None
        finally:
            for name in ("ssh-key", "known_hosts"):
                (Path(tmp) / name).unlink(missing_ok=True)
        commit = _resolve(repo, revision, shown)
        try:
            repo.git.checkout("--quiet", commit)
        except git.GitCommandError:
            raise InvalidInput(f"git: cannot check out {commit[:12]} of {shown}") from None
        directory = (work / path).resolve()
        if work.resolve() not in [directory, *directory.parents]:
            raise InvalidInput(f"git: path {path!r} leaves the repository")
        if not directory.is_dir():
            raise InvalidInput(
                f"git: path {path!r} does not exist at {commit[:12]}", reason="GitPathNotFound"
            )
        yield Checkout(directory, commit)


__all__ = [
    "CREDENTIALS_DIR_ENV",
    "Checkout",
    "GitCredentials",
    "checkout",
    "credentials_from_directory",
    "credentials_from_secret",
    "redact_url",
]
