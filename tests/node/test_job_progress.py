"""A Job's progress reaches its object's status while the Job runs, on the real node.

The Job's pod holds only a projected token of its own account, whose Role may patch its
Backup's status and nothing else (``controller/k8s/job_access.py``). With a table the
backup must read held under a lock, the pod waits mid-run: ``status.progress`` already
shows the phase and the tables while the Job still runs, and once the lock goes the
Backup completes with the final progress. No token appears in the pod's log, the
operator's log, the Backup's status or the events.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e import main_flows
from tests.e2e.test_backups_operator import wait_phase
from tests.e2e.test_operator import status
from tests.harness.cluster import wait_for
from tests.node.conftest import OperatorPod
from tests.node.test_jobs import backup, job_pods, prepared, table_locked
from tests.node.test_restore_jobs import prepared as restore_prepared
from tests.node.test_restore_jobs import restore_started, roles_locked, still_running

pytestmark = pytest.mark.node
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.")  # any service account token


def test_a_job_backups_progress_shows_in_status_before_the_job_ends(
    site: main_flows.Site, operator: OperatorPod
) -> None:
    prepared(site, operator)
    kubectl, namespace = site.kubectl, site.namespace
    seen: dict[str, object] = {}
    with table_locked(site.host_urls["prod"]):
        backup(kubectl, namespace, "watched")

        def reported() -> bool:
            got = status(kubectl, "backup", namespace, "watched")
            job = got.get("job", {}).get("name")
            pods = job_pods(kubectl, namespace, job) if job else []
            running = bool(pods) and pods[0]["status"].get("phase") == "Running"
            if running and got.get("progress") and got.get("phase") == "Running":
                seen.update(got["progress"], job=job, pod=pods[0]["metadata"]["name"])
                return True
            return False

        wait_for(reported, timeout=180, interval=0.5, description="progress while running")
        # Still held at the locked table: the pod runs and the Job has not ended, so the
        # progress is the pod's (the operator writes it only once the Job has ended).
        job = kubectl.json("get", "job", str(seen["job"]), "-n", namespace)
        assert not job["status"].get("conditions"), job["status"]
        (pod,) = job_pods(kubectl, namespace, str(seen["job"]))
        assert "running" in pod["status"]["containerStatuses"][0]["state"], pod["status"]
    assert seen["phase"] == "BackingUp", seen
    done_tables, total = str(seen["tables"]).split("/")
    assert int(total) > 5 and int(done_tables) < int(total), seen
    spec = pod["spec"]
    assert (
        spec["serviceAccountName"] == seen["job"] and spec["automountServiceAccountToken"] is False
    )

    done = wait_phase(kubectl, "backup", namespace, "watched", {"Completed", "Failed"}, 240)
    assert done["phase"] == "Completed", done
    assert done["progress"]["tables"] == f"{done['tables']}/{done['tables']}", done["progress"]
    logs = kubectl("logs", str(seen["pod"]), "-n", namespace, check=False).stdout
    shown = logs + json.dumps(done) + site.operator_log(400)
    shown += kubectl("get", "events", "-n", namespace, "-o", "yaml").stdout
    assert not JWT.search(shown), "a token was shown"


def test_a_job_restores_progress_shows_in_status_before_the_job_ends(
    site: main_flows.Site, operator: OperatorPod
) -> None:
    """The same for a Restore: its own account may patch the Restore's status. Held at
    the lock its safety backup meets first, the pod has already said where it is."""
    _, backup_name = restore_prepared(site, operator, "pre")
    kubectl, namespace = site.kubectl, site.namespace
    with roles_locked(site.host_urls["pre"]):
        pod = restore_started(site, "back", backup_name)
        wait_for(
            lambda: status(kubectl, "restore", namespace, "back").get("progress"),
            timeout=120,
            description="the Restore's progress while its pod runs",
        )
        seen = status(kubectl, "restore", namespace, "back")
        assert still_running(site, pod)  # the Job has not ended: the progress is the pod's
    assert seen["phase"] == "Restoring" and seen["progress"]["phase"] == "BackingUp", seen
    assert pod["spec"]["serviceAccountName"] == seen["job"]["name"]
    done = wait_phase(kubectl, "restore", namespace, "back", {"Completed", "Failed"}, 240)
    assert done["phase"] == "Completed", done
    assert done["progress"]["phase"] == "Restoring", done["progress"]
