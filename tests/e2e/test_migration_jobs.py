"""A Migration in Job mode deleted while its Job waits, against the real API server and
Kopf (the operator as a local process; without a kubelet the Job's pod stays Pending).

The handler returns, and is retried, while the Job holds the application at zero: the
object must keep Kopf's finalizer across those retries, so that deleting it stops the
Job and resumes the application instead of leaving it at zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import Kubectl
from tests.e2e.operator import Operator
from tests.e2e.test_application_lifecycle import (
    REPLICAS,
    HealthServer,
    declare,
    quiesced_now,
    replicas,
    serve_health,
)
from tests.e2e.test_operator import apply_ok, migration, status
from tests.harness.cluster import ControlPlane, wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def health() -> Iterator[HealthServer]:
    yield from serve_health()


def test_a_migration_deleted_while_its_job_waits_resumes_the_application(
    kubectl: Kubectl,
    namespace: str,
    control_plane: ControlPlane,
    ferry_crds: list[str],
    sqlite_envs: dict[str, str],
    tmp_path: Path,
    health: HealthServer,
) -> None:
    env = {"FERRY_JOB_IMAGE": "ferry:test"}
    op = Operator(control_plane, namespace, tmp_path / "op.log", env=env).start()
    try:
        declare(kubectl, namespace, sqlite_envs, tmp_path / "backups", health.url)
        job_mode = {"spec": {"execution": {"mode": "Job", "storeVolumeClaim": "backups"}}}
        kubectl.merge_patch("environment/pre", namespace, job_mode, check=True)
        apply_ok(kubectl, namespace, migration("release", "dev", "pre"))

        def held() -> bool:
            got = status(kubectl, "migration", namespace, "release")
            return bool(got.get("job")) and quiesced_now(kubectl, namespace, "release")

        # Deleted as soon as the Job exists: the handler is about to return and be
        # retried, the moment Kopf decides on its finalizer from the cycle's body.
        wait_for(held, timeout=90, description="the Job created, pre quiesced")
        job = status(kubectl, "migration", namespace, "release")["job"]["name"]
        meta = kubectl.json("get", "migration", "release", "-n", namespace)["metadata"]
        assert "ferry.dev/finalizer" in meta["finalizers"]
        kubectl("delete", "migration", "release", "-n", namespace, "--wait=false")
        wait_for(
            lambda: kubectl("get", "migration", "release", "-n", namespace, check=False).returncode,
            timeout=60,
            description="the Migration gone",
        )
        assert replicas(kubectl, namespace) == REPLICAS
        assert kubectl("get", "job", job, "-n", namespace, check=False).returncode != 0
        assert "resumed Deployment/web back at 3 replicas" in op.tail(200)
    finally:
        op.stop()
