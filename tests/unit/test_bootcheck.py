"""The boot check: ``spec.application.bootCheck`` parsed, the boot pod built from the
workload's template, and one run of it against an in-memory API (``FakeBootPods``)
whose clock moves only when the check sleeps."""

from __future__ import annotations

from typing import Any

import pytest

from controller.api.bootcheck import BootCheckSpec, parse_boot_check
from controller.api.environment_application import FIELDS_READ, ApplicationSpec, WorkloadKind
from controller.api.resources import Node, schema_paths
from controller.errors import InvalidInput
from controller.flows.bootcheck import LABEL, BootCheck, BootOwner, boot_pod
from controller.k8s.bootcheck import BootPods, PodState
from controller.k8s.workloads import Health
from tests.unit.fake_workloads import Clock, FakeWorkloads

COPY = "postgresql+psycopg://ferry:pw@pg.db.svc:5432/ferry_rehearsal_ab12"
NOCOBASE = {"DB_DATABASE": "{database}", "DB_HOST": "{host}", "DB_PORT": "{port}"}
TEMPLATE: dict[str, Any] = {
    "metadata": {"labels": {"app": "nocobase"}, "annotations": {"a": "b"}},
    "spec": {
        "restartPolicy": "Always",
        "containers": [
            {
                "name": "app",
                "image": "nocobase:2",
                "env": [
                    {"name": "DB_DATABASE", "value": "pre"},
                    {
                        "name": "DB_PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": "s", "key": "p"}},
                    },
                    {
                        "name": "DB_HOST",
                        "valueFrom": {"configMapKeyRef": {"name": "c", "key": "h"}},
                    },
                ],
                "volumeMounts": [{"name": "storage", "mountPath": "/storage"}],
            }
        ],
        "volumes": [{"name": "storage", "persistentVolumeClaim": {"claimName": "nb"}}],
    },
}
OWNER = BootOwner("Migration", "release", "uid-1")


def parse(boot: Any) -> BootCheckSpec | None:
    app = {"workload": {"kind": "Deployment", "name": "nocobase"}, "bootCheck": boot}
    spec = Node({"application": app}, "spec", "spec", schema_paths(FIELDS_READ))
    node = spec.child("application")
    assert node is not None
    return parse_boot_check(node)


def app(**boot: Any) -> ApplicationSpec:
    spec = parse({"env": NOCOBASE, "port": 13000, "path": "/api/__health_check", **boot})
    return ApplicationSpec(WorkloadKind.DEPLOYMENT, "nocobase", boot_check=spec)


def test_a_boot_check_parses_with_its_defaults() -> None:
    spec = parse({"env": NOCOBASE, "port": 13000, "path": "/api/__health_check"})
    assert spec is not None and spec.timeout_seconds == 300 and spec.port == 13000
    assert spec.rendered({"database": "d", "host": "h", "port": "5", "user": "u"}) == {
        "DB_DATABASE": "d", "DB_HOST": "h", "DB_PORT": "5",
    }  # fmt: skip


@pytest.mark.parametrize(
    "boot",
    [
        {"env": {"DB_PASSWORD": "{password}"}, "port": 1, "path": "/"},  # never a password
        {"env": {"DB": "{database.__class__}"}, "port": 1, "path": "/"},
        {"env": {"DB": "{database!r}"}, "port": 1, "path": "/"},
        {"env": {"DB": "{0}"}, "port": 1, "path": "/"},
        {"env": {"DB": "{database"}, "port": 1, "path": "/"},
        {"env": {"DB": 5}, "port": 1, "path": "/"},
        {"env": {"A B": "x"}, "port": 1, "path": "/"},
        {"env": {}, "port": 1, "path": "/"},
        {"env": ["DB_DATABASE"], "port": 1, "path": "/"},
        {"env": {"DB": "{database}"}, "path": "/"},
        {"env": {"DB": "{database}"}, "port": 70000, "path": "/"},
        {"env": {"DB": "{database}"}, "port": 1, "path": "health"},
        {"env": {"DB": "{database}"}, "port": 1, "path": "/x?y=1"},
        {"env": {"DB": "{database}"}, "port": 1, "path": "/", "timeoutSeconds": 3601},
        {"env": {"DB": "{database}"}, "port": 1, "path": "/", "extra": 1},
        {"env": {"DB": "{database}"}, "port": 1, "path": "/", "emptyDirVolumes": ["Up_loads"]},
        {"env": {"DB": "{database}"}, "port": 1, "path": "/", "emptyDirVolumes": ["a", "a"]},
    ],
)
def test_a_boot_check_that_does_not_fit_is_refused(boot: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        parse(boot)


def test_the_boot_pod_is_the_template_pointed_at_the_copy_and_selected_by_nothing() -> None:
    pod = boot_pod(TEMPLATE, app().boot_check, COPY, app(), OWNER)  # type: ignore[arg-type]
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["labels"] == {LABEL: "nocobase", "ferry.dev/boot-check-owner": "release"}
    assert "app" not in meta["labels"]  # neither the Service nor the ReplicaSet selects it
    assert meta["ownerReferences"] == [{"apiVersion": "ferry.dev/v1alpha1", "kind": "Migration",
                                        "name": "release", "uid": "uid-1"}]  # fmt: skip
    assert spec["restartPolicy"] == "Never"
    env = {e["name"]: e for e in spec["containers"][0]["env"]}
    assert env["DB_DATABASE"] == {"name": "DB_DATABASE", "value": "ferry_rehearsal_ab12"}
    assert env["DB_HOST"] == {"name": "DB_HOST", "value": "pg.db.svc"}  # not the ConfigMap's
    assert env["DB_PORT"] == {"name": "DB_PORT", "value": "5432"}
    assert "valueFrom" in env["DB_PASSWORD"]  # its own credentials, never from the URL
    assert "pw" not in str(pod)
    assert spec["volumes"] == TEMPLATE["spec"]["volumes"]
    assert TEMPLATE["spec"]["containers"][0]["env"][0]["value"] == "pre"  # not modified


class FakeBootPods(FakeWorkloads):
    """Pods in memory; each look at the boot pod pops the next scripted state."""

    def __init__(self, states: list[PodState], health: list[Health] | None = None) -> None:
        super().__init__({"Deployment/nocobase": 1}, health=health)
        self.states = states
        self.template: dict[str, Any] | None = TEMPLATE
        self.live: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.refusal: str | None = None  # what the API server says to the pod

    def pod_template(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self._record("pod_template", f"{kind}/{name}")
        return self.template

    def create_pod(self, namespace: str, body: dict[str, Any]) -> str | None:
        self._record("create_pod", body["metadata"]["name"])
        self.created.append(body)
        if self.refusal is not None:
            return self.refusal
        self.live[body["metadata"]["name"]] = body
        return None

    def pod_state(self, namespace: str, name: str) -> PodState | None:
        self._record("pod_state", name)
        if name not in self.live:
            return None
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]

    def delete_pods(self, namespace: str, selector: str) -> list[str]:
        key, value = selector.split("=")
        gone = [n for n, b in self.live.items() if b["metadata"]["labels"].get(key) == value]
        for name in gone:
            del self.live[name]
        self._record("delete_pods", selector, tuple(gone))
        return gone


RUNNING = PodState("Running", "10.0.0.7", None)


def check(pods: FakeBootPods, clock: Clock, **boot: Any) -> Any:
    return BootCheck(pods, app(**boot), "ns", OWNER, sleep=clock.sleep, clock=clock)(COPY)


def test_a_healthy_boot_passes_and_leaves_no_pod() -> None:
    answers = [Health(False, "connection refused"), Health(True, "HTTP 200")]
    pods, clock = FakeBootPods([PodState("Pending", None, None), RUNNING], answers), Clock()
    leftover = {"metadata": {"name": "old", "labels": {LABEL: "nocobase"}}}
    other = {"metadata": {"name": "nocobase-7d9", "labels": {"app": "nocobase"}}}
    pods.live.update(old=leftover, **{"nocobase-7d9": other})
    assert isinstance(pods, BootPods)
    result = check(pods, clock)
    assert result.healthy and result.message == "HTTP 200 after 2.0s", result
    assert ("health", "http://10.0.0.7:13000/api/__health_check") in pods.calls
    names = [c[0] for c in pods.calls]
    assert names.index("delete_pods") < names.index("create_pod")  # the leftover first
    assert list(pods.live) == ["nocobase-7d9"]  # the application's own pod is untouched
    assert pods.calls[0] == ("delete_pods", f"{LABEL}=nocobase", ("old",))
    assert not [c for c in pods.calls if c[0] == "set_replicas"]
    assert result.to_status()["outcome"] == "Passed" and result.pod.startswith("nocobase-boot-")


def test_an_application_that_stops_fails_at_once() -> None:
    stopped = PodState("Running", "10.0.0.7", "container app ended: Error 1")
    pods, clock = FakeBootPods([RUNNING, stopped], [Health(False, "HTTP 503")]), Clock()
    result = check(pods, clock)
    assert not result.healthy
    assert result.message == "the application stopped: container app ended: Error 1"
    assert clock.now == 1.0 and pods.live == {}


def test_an_application_that_never_answers_fails_at_its_timeout() -> None:
    pods, clock = FakeBootPods([RUNNING], [Health(False, "HTTP 503")]), Clock()
    result = check(pods, clock, timeoutSeconds=30)
    assert not result.healthy
    assert result.message == "not healthy within 30s (last: HTTP 503)"
    assert 30 <= clock.now <= 31 and pods.live == {}


def test_a_pod_that_never_starts_fails_at_its_timeout_saying_so() -> None:
    pods, clock = FakeBootPods([PodState("Pending", None, None)]), Clock()
    result = check(pods, clock, timeoutSeconds=5)
    assert result.message == "not healthy within 5s (last: pod Pending)"
    assert not [c for c in pods.calls if c[0] == "health"] and pods.live == {}


def test_the_pod_is_deleted_when_the_api_stops_answering() -> None:
    from controller.errors import TemporaryError

    pods, clock = FakeBootPods([RUNNING]), Clock()
    pods.refuse.add("health")
    with pytest.raises(TemporaryError):
        check(pods, clock)
    assert pods.created and pods.live == {}


def test_a_missing_workload_fails_without_a_pod() -> None:
    pods, clock = FakeBootPods([RUNNING]), Clock()
    pods.template = None
    result = check(pods, clock)
    assert not result.healthy and result.message == "Deployment nocobase not found"
    assert not pods.created


def test_a_pod_that_finished_without_a_container_status_is_an_answer() -> None:
    pods, clock = FakeBootPods([PodState("Failed", None, None)]), Clock()
    result = check(pods, clock)
    assert result.message == "the application stopped: the pod Failed" and clock.now == 0


def test_declared_volumes_are_empty_in_the_boot_pod() -> None:
    spec = app(emptyDirVolumes=["storage"])
    pod = boot_pod(TEMPLATE, spec.boot_check, COPY, spec, OWNER)  # type: ignore[arg-type]
    assert pod["spec"]["volumes"] == [{"name": "storage", "emptyDir": {}}]
    assert TEMPLATE["spec"]["volumes"][0]["persistentVolumeClaim"] == {"claimName": "nb"}


def test_a_volume_the_template_lacks_fails_the_check_without_a_pod() -> None:
    pods, clock = FakeBootPods([RUNNING]), Clock()
    result = check(pods, clock, emptyDirVolumes=["uploads"])
    assert not result.healthy and not pods.created
    assert result.message == (
        "spec.application.bootCheck.emptyDirVolumes: the pod template of "
        "Deployment/nocobase has no volume uploads"
    )


def test_a_statefulsets_claim_template_mounted_by_name_can_be_made_empty() -> None:
    spec = app(emptyDirVolumes=["data"])
    template = {"spec": {"containers": [{"name": "app", "volumeMounts": [{"name": "data",
                "mountPath": "/data"}]}]}}  # fmt: skip
    pod = boot_pod(template, spec.boot_check, COPY, spec, OWNER)  # type: ignore[arg-type]
    assert pod["spec"]["volumes"] == [{"name": "data", "emptyDir": {}}]


def test_a_pod_the_api_server_refuses_is_an_answer_not_a_retry() -> None:
    pods, clock = FakeBootPods([RUNNING]), Clock()
    pods.refusal = '422 Unprocessable Entity: Pod "x" is invalid: spec.volumes[0]'
    result = check(pods, clock)
    assert not result.healthy and result.message.startswith("the boot pod was refused: 422")
    assert not [c for c in pods.calls if c[0] in ("pod_state", "health")]
