"""The Environment flow's error branches, run for real against SQLite with a fake cluster.

Every branch of ``reconcile_environment``: a spec or a Secret that cannot work stalls
it (no retry: only a spec change helps); an unreachable server is retried with a
growing delay; any other failure is retried every 30 seconds; a reachable one reports
drift only when it is locked and its fingerprint moved. Nothing the flow could not
measure (fingerprint, drift, versions) reaches status on an error branch.
"""

from __future__ import annotations

import datetime as dt
import socket
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from controller.flows.environment import reconcile_environment
from controller.flows.outcome import Outcome
from tests.fixtures import nocobase_shape as shape
from tests.unit.fake_cluster import FakeCluster
from tests.unit.flow_support import conditions, events

NOW = dt.datetime(2026, 3, 28, 12, 0, tzinfo=dt.UTC)
KEY = "ab" * 32
MEASURED = ("fingerprint", "drift", "dialect", "serverVersion", "tables", "variables")


def environment(url: str | None = None, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"stage": "production", **spec}
    if url is not None:
        body["database"] = {"dialect": "sqlite", "url": url}
    return {
        "kind": "Environment",
        "metadata": {"name": "prod", "namespace": "ns", "generation": 3},
        "spec": body,
    }


def reconcile(cluster: FakeCluster, body: dict[str, Any], retry: int = 0) -> Outcome:
    """Reconcile as the handler does: the status patch lands on the object."""
    cluster.add(body)
    current = cluster.get("Environment", "ns", "prod")
    assert current is not None
    outcome = reconcile_environment(current, cluster, now=NOW, retry=retry)
    cluster.patch_status("Environment", "ns", "prod", outcome.status)
    return outcome


@pytest.fixture
def url(tmp_path: Path) -> str:
    db = f"sqlite:///{tmp_path}/prod.db"
    shape.build(db, app="prod", variables={"TICKET_WEBHOOK": ("plain", "u")})
    return db


def assert_stalled(outcome: Outcome, reason: str, fragment: str) -> None:
    cond = conditions(outcome)
    assert cond["Stalled"][:2] == ("True", reason) and fragment in cond["Stalled"][2], cond
    assert cond["Ready"][:2] == ("False", reason) and fragment in cond["Ready"][2]
    assert cond["Reconciling"][:2] == ("False", reason)
    assert outcome.status["reachable"] is False
    assert outcome.retry_after is None  # only a spec (or Secret) change helps
    assert not set(MEASURED) & set(outcome.status), outcome.status
    assert outcome.status["observedGeneration"] == 3


SECRET_REF = {"secretKeyRef": {"name": "db", "key": "url"}}


@pytest.mark.parametrize(
    ("spec", "secrets", "fragment"),
    [
        pytest.param(
            {"database": {"dialect": "sqlite", "urlFrom": SECRET_REF}},
            {},
            "Secret ns/db not found",
            id="url-secret-missing",
        ),
        pytest.param(
            {"database": {"dialect": "sqlite", "urlFrom": SECRET_REF}},
            {"db": {"URL": "sqlite:///x"}},
            "Secret ns/db has no key 'url'",
            id="url-secret-key-missing",
        ),
        pytest.param(
            {
                "database": {
                    "dialect": "postgresql",
                    "host": "db.example",
                    "name": "app",
                    "user": "app",
                    "passwordFrom": {"secretKeyRef": {"name": "pw", "key": "password"}},
                }
            },
            {},
            "Secret ns/pw not found",
            id="password-secret-missing",
        ),
    ],
)
def test_a_missing_secret_stalls_with_the_secret_named(
    spec: dict[str, Any], secrets: dict[str, dict[str, str]], fragment: str
) -> None:
    cluster = FakeCluster(secrets=secrets)
    outcome = reconcile(cluster, environment(**spec))
    assert_stalled(outcome, "InvalidSpec", fragment)
    assert [(e.type, e.reason, e.message) for e in outcome.events] == [
        ("Warning", "InvalidSpec", outcome.status["conditions"][0]["message"])
    ]


@pytest.mark.parametrize(
    ("spec", "secrets", "fragment"),
    [
        pytest.param(
            {
                "variables": [
                    {"name": "HOOK", "valueFrom": {"secretKeyRef": {"name": "v", "key": "k"}}}
                ]
            },
            {},
            "Secret ns/v not found",
            id="variable-secret-missing",
        ),
        pytest.param(
            {
                "variables": [
                    {
                        "name": "HOOK",
                        "type": "secret",
                        "valueFrom": {"secretKeyRef": {"name": "v", "key": "k"}},
                    }
                ],
                "encryptionKeyFrom": {"secretKeyRef": {"name": "app", "key": "APP_KEY"}},
            },
            {"v": {"k": "t"}},
            "Secret ns/app not found",
            id="encryption-key-secret-missing",
        ),
        pytest.param(
            {
                "variables": [
                    {
                        "name": "HOOK",
                        "type": "secret",
                        "valueFrom": {"secretKeyRef": {"name": "v", "key": "k"}},
                    }
                ],
                "encryptionKeyFrom": {"secretKeyRef": {"name": "app", "key": "APP_KEY"}},
            },
            {"v": {"k": "t"}, "app": {"APP_KEY": "not-hex"}},
            "encryption key must be 64 hex digits",
            id="encryption-key-malformed",
        ),
        pytest.param(
            {
                "backups": {
                    "store": {
                        "path": "/tmp/ferry-unused",
                        "keyFrom": {"secretKeyRef": {"name": "store", "key": "key"}},
                    }
                }
            },
            {},
            "Secret ns/store not found",
            id="store-key-secret-missing",
        ),
    ],
)
def test_a_missing_or_bad_secret_of_a_reachable_database_stalls(
    url: str, spec: dict[str, Any], secrets: dict[str, dict[str, str]], fragment: str
) -> None:
    before = shape.row_counts(url)
    outcome = reconcile(FakeCluster(secrets=secrets), environment(url, **spec))
    assert_stalled(outcome, "InvalidSpec", fragment)
    assert events(outcome) == [("Warning", "InvalidSpec")]
    assert shape.row_counts(url) == before  # no variable was written


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        pytest.param({}, "spec.database", id="no-database"),
        pytest.param(
            {"database": {"dialect": "sqlite", "url": "sqlite:///x", "urlFrom": SECRET_REF}},
            "set exactly one of url, urlFrom",
            id="url-and-url-from",
        ),
        pytest.param(
            {"database": {"dialect": "oracle", "url": "oracle://x"}},
            "spec.database.dialect",
            id="unknown-dialect",
        ),
        pytest.param(
            {
                "database": {"dialect": "sqlite", "url": "sqlite:///x"},
                "backups": {"store": {"path": "relative/dir"}},
            },
            "expected an absolute path",
            id="relative-store-path",
        ),
        pytest.param(
            {
                "database": {"dialect": "sqlite", "url": "sqlite:///x"},
                "variables": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}],
            },
            "duplicate name(s) A",
            id="duplicate-variables",
        ),
        pytest.param(
            {
                "database": {"dialect": "sqlite", "url": "sqlite:///x"},
                "variables": [
                    {
                        "name": "A",
                        "type": "secret",
                        "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                    }
                ],
            },
            "spec.encryptionKeyFrom is required",
            id="secret-variable-without-key",
        ),
    ],
)
def test_an_invalid_spec_stalls_without_retry(spec: dict[str, Any], fragment: str) -> None:
    cluster = FakeCluster()
    outcome = reconcile(cluster, environment(**spec))
    assert_stalled(outcome, "InvalidSpec", fragment)
    assert events(outcome) == [("Warning", "InvalidSpec")]


def test_a_database_that_is_not_there_or_not_sqlite_stalls(tmp_path: Path) -> None:
    missing = reconcile(FakeCluster(), environment(f"sqlite:///{tmp_path}/none.db"))
    assert_stalled(missing, "InvalidSpec", "Ferry never creates one")
    assert not (tmp_path / "none.db").exists()
    (tmp_path / "junk.db").write_bytes(b"x" * 4096)
    junk = reconcile(FakeCluster(), environment(f"sqlite:///{tmp_path}/junk.db"))
    assert_stalled(junk, "NotADatabase", "file is not a database")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_database_is_retried_with_growing_backoff_and_no_password() -> None:
    body = environment()
    body["spec"]["database"] = {
        "dialect": "postgresql",
        "url": f"postgresql+psycopg://app:hunter2@127.0.0.1:{closed_port()}/app",
    }
    cluster = FakeCluster()
    delays = []
    for retry in (0, 1, 3, 6, 12):
        outcome = reconcile(cluster, body, retry=retry)
        cond = conditions(outcome)
        assert cond["Reconciling"][:2] == ("True", "Unreachable")
        assert cond["Ready"][:2] == ("False", "Unreachable")
        assert cond["Stalled"][:2] == ("False", "Unreachable")
        assert "database unreachable" in cond["Ready"][2]
        assert "hunter2" not in repr(outcome)
        assert events(outcome) == [("Warning", "Unreachable")]
        assert outcome.status["reachable"] is False
        assert not set(MEASURED) & set(outcome.status)
        assert outcome.retry_after is not None
        delays.append(outcome.retry_after)
    assert delays == [5.0, 10.0, 40.0, 300.0, 300.0]


def freeze_variables(url: str) -> None:
    """A trigger refuses every write to environmentVariables: the sync fails mid-write."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute(
            'CREATE TRIGGER frozen BEFORE INSERT ON "environmentVariables" '
            "BEGIN SELECT RAISE(ABORT, 'variables are frozen'); END"
        )


def test_a_failed_variable_sync_is_retried_and_measures_nothing(url: str) -> None:
    freeze_variables(url)
    before = shape.row_counts(url)
    outcome = reconcile(
        FakeCluster(), environment(url, variables=[{"name": "NEW_ONE", "value": "v"}])
    )
    cond = conditions(outcome)
    assert cond["Reconciling"][:2] == ("True", "Error")
    assert "writing environment variables" in cond["Ready"][2]
    assert "variables are frozen" in cond["Ready"][2]
    assert cond["Stalled"][:2] == ("False", "Error")
    assert events(outcome) == [("Warning", "Error")]
    assert outcome.retry_after == 30.0
    assert outcome.status["reachable"] is False
    assert not set(MEASURED) & set(outcome.status)
    assert shape.row_counts(url) == before


def test_a_database_without_the_variables_table_stalls(url: str) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute('DROP TABLE "environmentVariables"')
    outcome = reconcile(FakeCluster(), environment(url, variables=[{"name": "A", "value": "v"}]))
    assert_stalled(outcome, "InvalidSpec", "no environmentVariables table")


def hand_edit(url: str) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.execute("UPDATE collections SET title = title || ' (by hand)'")


def drifted(outcome: Outcome) -> tuple[str, str, str]:
    return conditions(outcome)["Drifted"]


def test_a_locked_environment_reports_drift_once_and_keeps_its_start(url: str) -> None:
    cluster = FakeCluster()
    first = reconcile(cluster, environment(url))
    assert drifted(first) == ("False", "NoDrift", "")
    assert first.status["drift"]["detected"] is False
    baseline = first.status["drift"]["baseline"]
    assert baseline == first.status["fingerprint"]
    assert events(first) == [("Normal", "Connected")]
    assert conditions(first)["Ready"][:2] == ("True", "Connected")

    same = reconcile(cluster, cluster.get("Environment", "ns", "prod") or {})
    assert drifted(same) == ("False", "NoDrift", "") and same.events == ()

    hand_edit(url)
    moved = reconcile(cluster, cluster.get("Environment", "ns", "prod") or {})
    status, reason, message = drifted(moved)
    assert (status, reason) == ("True", "ConfigurationChanged")
    assert "changed outside Ferry" in message and baseline[:19] in message
    assert moved.status["drift"] == {
        "detected": True,
        "baseline": baseline,
        "lastCheckTime": "2026-03-28T12:00:00Z",
        "since": "2026-03-28T12:00:00Z",
    }
    assert moved.status["fingerprint"] != baseline
    assert [(e.type, e.reason) for e in moved.events] == [("Warning", "DriftDetected")]
    assert conditions(moved)["Ready"][:2] == ("True", "Connected")  # drift is not an outage

    later = cluster.get("Environment", "ns", "prod") or {}
    again = reconcile_environment(later, cluster, now=NOW + dt.timedelta(hours=1))
    assert drifted(again)[:2] == ("True", "ConfigurationChanged")
    assert again.status["drift"]["since"] == "2026-03-28T12:00:00Z"  # when it began
    assert again.status["drift"]["lastCheckTime"] == "2026-03-28T13:00:00Z"
    assert again.events == ()  # one event per drift, not per check


def test_a_development_environment_allows_changes(url: str) -> None:
    cluster = FakeCluster()
    reconcile(cluster, environment(url, stage="development"))
    hand_edit(url)
    outcome = reconcile(cluster, cluster.get("Environment", "ns", "prod") or {})
    assert drifted(outcome) == ("False", "ChangesAllowed", "")
    assert outcome.status["drift"]["detected"] is False
    assert outcome.events == ()
    locked = environment(url, stage="development", configChanges="locked")
    assert drifted(reconcile(FakeCluster(), locked))[:2] == ("False", "NoDrift")


def test_variables_are_written_and_reported(url: str) -> None:
    spec = {
        "variables": [
            {"name": "TICKET_WEBHOOK", "value": "u"},
            {"name": "NEW_ONE", "valueFrom": {"secretKeyRef": {"name": "v", "key": "k"}}},
        ]
    }
    cluster = FakeCluster(secrets={"v": {"k": "plain-value"}})
    outcome = reconcile(cluster, environment(url, **spec))
    # The fixture stores TICKET_WEBHOOK with type "plain", not NocoBase's own type name.
    assert outcome.status["variables"] == {
        "created": ["NEW_ONE"],
        "updated": ["TICKET_WEBHOOK"],
        "unchanged": 0,
    }
    again = reconcile(cluster, cluster.get("Environment", "ns", "prod") or {})
    assert again.status["variables"] == {"created": [], "updated": [], "unchanged": 2}
