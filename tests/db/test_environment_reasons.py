"""An Environment whose database refuses it stalls with that refusal's own reason, in
its conditions and its event alike (a real PostgreSQL server, a fake cluster)."""

from __future__ import annotations

from collections.abc import Callable

from controller.flows.environment import reconcile_environment
from tests.unit.fake_cluster import FakeCluster
from tests.unit.flow_support import conditions, events
from tests.unit.test_flows_environment import NOW

MakeDb = Callable[..., str]


def test_a_missing_database_is_named_in_the_condition_and_the_event(
    make_database: MakeDb,
) -> None:
    url = make_database("postgresql", "exists")
    missing = url.rsplit("/", 1)[0] + "/ferry_no_such_database"
    body = {
        "kind": "Environment",
        "metadata": {"name": "prod", "namespace": "ns", "generation": 1},
        "spec": {"stage": "production", "database": {"dialect": "postgresql", "url": missing}},
    }
    cluster = FakeCluster()
    cluster.add(body)
    outcome = reconcile_environment(body, cluster, now=NOW, retry=0)
    assert conditions(outcome)["Stalled"][:2] == ("True", "DatabaseNotFound")
    assert events(outcome) == [("Warning", "DatabaseNotFound")]
