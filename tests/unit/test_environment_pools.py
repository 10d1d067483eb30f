"""Which connection pools the operator keeps: an Environment's resolved URL owns one;
a rotated Secret or a deleted Environment lets it go (no database is touched here:
binding happens when the URL is resolved, before any connection)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controller.commands.environments import resolve
from controller.db.engines import ENGINES
from controller.flows.environment import environment_deleted
from tests.unit.fake_cluster import FakeCluster

OLD = "postgresql+psycopg://ferry:old-s3cret@db.example:5432/pre"
NEW = "postgresql+psycopg://ferry:new-s3cret@db.example:5432/pre"


@pytest.fixture
def sharing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(ENGINES, "enabled", True)
    yield
    ENGINES.release("ns/pre")


def environment() -> dict[str, Any]:
    ref = {"secretKeyRef": {"name": "pre-db", "key": "url"}}
    return {
        "kind": "Environment",
        "metadata": {"name": "pre", "namespace": "ns"},
        "spec": {"stage": "pre-release", "database": {"dialect": "postgresql", "urlFrom": ref}},
    }


@pytest.mark.usefixtures("sharing")
def test_a_rotated_secret_and_a_deletion_release_the_pool() -> None:
    cluster = FakeCluster(secrets={"pre-db": {"url": OLD}})
    assert not ENGINES.shares(OLD)  # nobody resolved it yet
    resolve(environment(), cluster)
    assert ENGINES.shares(OLD)
    cluster.secrets["pre-db"] = {"url": NEW}
    resolve(environment(), cluster)
    assert ENGINES.shares(NEW) and not ENGINES.shares(OLD)
    environment_deleted(environment())
    assert not ENGINES.shares(NEW)


def test_the_cli_keeps_no_pool() -> None:
    cluster = FakeCluster(secrets={"pre-db": {"url": OLD}})
    resolve(environment(), cluster)
    try:
        assert not ENGINES.shares(OLD)
    finally:
        ENGINES.release("ns/pre")
    assert "s3cret" not in repr(ENGINES)
