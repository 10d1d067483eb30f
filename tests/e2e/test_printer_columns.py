"""What ``kubectl get`` prints for every kind, driven through the operator.

The columns are the first thing a user reads: each kind is listed with and without
``-o wide`` against objects the operator took through their phases, and every cell is
checked, not only that the command succeeds. The long phases' progress is checked as
recorded once the object is finished ("17/17"), which is deterministic, rather than by
racing a running phase.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import CRDS_DIR, Kubectl
from tests.e2e.test_operator import apply_ok, environment, migration, status
from tests.harness.cluster import wait_for

pytestmark = pytest.mark.e2e
AGE = re.compile(r"^\d+[smhd](\d+[smh])?$")
NEVER = ""  # how kubectl prints a column whose field is absent
PAST_TIMES = {"creationTimestamp", "startTime", "completionTime", "lastScheduleTime"}


def table(kubectl: Kubectl, resource: str, namespace: str, *wide: str) -> list[dict[str, str]]:
    """``kubectl get RESOURCE`` as rows of {HEADER: cell}, cut at the header's columns."""
    out = kubectl("get", resource, "-n", namespace, *wide).stdout.rstrip("\n").split("\n")
    header = out[0]
    starts = [m.start() for m in re.finditer(r"(?:(?<=\s\s)|^)\S", header)]
    names = [header[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
    rows = []
    for line in out[1:]:
        cells = [line[a:b].strip() for a, b in zip(starts, [*starts[1:], None], strict=True)]
        rows.append(dict(zip(names, cells, strict=True)))
    return rows


def one(rows: list[dict[str, str]], name: str) -> dict[str, str]:
    found = [r for r in rows if r["NAME"] == name]
    assert len(found) == 1, rows
    return found[0]


def finished(kubectl: Kubectl, kind: str, namespace: str, name: str) -> dict[str, Any]:
    wait_for(
        lambda: (
            status(kubectl, kind, namespace, name).get("phase")
            in {"Completed", "Failed", "Succeeded", "RolledBack"}
        ),
        timeout=120,
        description=f"{kind} {name} finished",
    )
    done = status(kubectl, kind, namespace, name)
    assert done["phase"] in {"Completed", "Succeeded"}, done
    return done


@pytest.fixture
def tidy(kubectl: Kubectl, namespace: str, operator: Any) -> Iterator[None]:
    """Backups carry a finalizer: delete them while the operator still runs."""
    yield
    kubectl(
        "delete", "backupschedules,backups", "--all", "-n", namespace, "--timeout=60s", check=False
    )


def test_every_kind_reads_well_in_kubectl_get(
    kubectl: Kubectl, namespace: str, tidy: None, sqlite_envs: dict[str, str], tmp_path: Path
) -> None:
    store = tmp_path / "backups"
    apply_ok(
        kubectl,
        namespace,
        environment("dev", "development", sqlite_envs["dev"])
        + "---"
        + environment("pre", "pre-release", sqlite_envs["pre"], accepts="dev", store=str(store)),
    )
    for env in ("dev", "pre"):
        kubectl("wait", "--for=condition=Ready", f"environment/{env}", "-n", namespace)
    _environments(kubectl, namespace)
    _backups(kubectl, namespace)
    migrated = _migrations(kubectl, namespace)
    _rollback_restores(kubectl, namespace, migrated)
    _schedules(kubectl, namespace)


def _environments(kubectl: Kubectl, namespace: str) -> None:
    rows = table(kubectl, "environments", namespace)
    assert list(rows[0]) == ["NAME", "STAGE", "DIALECT", "READY", "DRIFT", "AGE"]
    pre = one(rows, "pre")
    assert {k: pre[k] for k in ("STAGE", "DIALECT", "READY")} == {
        "STAGE": "pre-release",
        "DIALECT": "sqlite",
        "READY": "True",
    }
    assert pre["DRIFT"] in {"False", NEVER} and AGE.match(pre["AGE"]), pre


def _backups(kubectl: Kubectl, namespace: str) -> None:
    apply_ok(
        kubectl,
        namespace,
        "apiVersion: ferry.dev/v1alpha1\nkind: Backup\nmetadata: {name: b1}\n"
        "spec: {environment: pre}\n",
    )
    done = finished(kubectl, "backup", namespace, "b1")
    short = one(table(kubectl, "backups", namespace), "b1")
    assert list(short) == ["NAME", "ENVIRONMENT", "PHASE", "ID", "SIZE", "AGE"]
    assert (short["ENVIRONMENT"], short["PHASE"], short["ID"], short["SIZE"]) == (
        "pre",
        "Completed",
        done["id"],
        done["size"],
    )
    wide = one(table(kubectl, "backups", namespace, "-o", "wide"), "b1")
    assert list(wide)[6:] == ["REASON", "PROGRESS", "ROWS"]
    assert wide["REASON"] == "manual"
    assert wide["PROGRESS"] == f"{done['tables']}/{done['tables']}" and done["tables"] > 10
    assert wide["ROWS"] == str(done["rows"])
    assert done["progress"]["phase"] == "BackingUp"
    assert done["progress"]["bytes"] == done["sizeBytes"]


def _migrations(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    apply_ok(kubectl, namespace, migration("to-pre", "dev", "pre"))
    done = finished(kubectl, "migration", namespace, "to-pre")
    short = one(table(kubectl, "migrations", namespace), "to-pre")
    assert list(short) == ["NAME", "SOURCE", "TARGET", "PHASE", "BACKUP", "AGE"]
    assert (short["SOURCE"], short["TARGET"], short["PHASE"], short["BACKUP"]) == (
        "dev",
        "pre",
        "Succeeded",
        done["backup"]["id"],
    )
    wide = one(table(kubectl, "migrations", namespace, "-o", "wide"), "to-pre")
    assert list(wide)[6:] == ["REVISION", "DIGEST", "PROGRESS", "ROWS"]
    assert wide["REVISION"] == NEVER  # promoted from an environment, not from Git
    assert wide["DIGEST"] == done["plan"]["digest"]
    changed = done["plan"]["tables"]  # the plan in status lists the tables it changes
    rows = sum(t["insert"] + t["update"] + t["delete"] for t in changed)
    assert wide["PROGRESS"] == f"{len(changed)}/{len(changed)}" and len(changed) > 1
    assert wide["ROWS"] == str(rows) and rows > 0
    assert done["progress"]["phase"] == "Applying"
    return done


def _rollback_restores(kubectl: Kubectl, namespace: str, migrated: dict[str, Any]) -> None:
    apply_ok(
        kubectl,
        namespace,
        "apiVersion: ferry.dev/v1alpha1\nkind: Restore\nmetadata: {name: undo}\n"
        "spec: {migration: to-pre}\n",
    )
    done = finished(kubectl, "restore", namespace, "undo")
    short = one(table(kubectl, "restores", namespace), "undo")
    assert list(short) == ["NAME", "BACKUP", "ENVIRONMENT", "PHASE", "AGE"]
    assert (short["BACKUP"], short["ENVIRONMENT"], short["PHASE"]) == (
        migrated["backup"]["id"],
        "pre",
        "Completed",
    )
    wide = one(table(kubectl, "restores", namespace, "-o", "wide"), "undo")
    assert list(wide)[5:] == ["MIGRATION", "SAFETY BACKUP", "PROGRESS", "ROWS"]
    assert wide["MIGRATION"] == "to-pre"
    assert wide["SAFETY BACKUP"] == done["safetyBackup"]["id"]
    touched = len(done["tables"]) + len(done["dropped"])
    assert wide["PROGRESS"] == f"{touched}/{touched}" and touched == len(migrated["plan"]["tables"])
    assert done["progress"]["phase"] == "Restoring"


def _schedules(kubectl: Kubectl, namespace: str) -> None:
    apply_ok(
        kubectl,
        namespace,
        "apiVersion: ferry.dev/v1alpha1\nkind: BackupSchedule\nmetadata: {name: nightly}\n"
        'spec: {environment: pre, schedule: "0 0 1 1 *"}\n',
    )
    kubectl("wait", "--for=condition=Ready", "backupschedule/nightly", "-n", namespace)
    due = status(kubectl, "backupschedule", namespace, "nightly")["nextScheduleTime"]
    short = one(table(kubectl, "backupschedules", namespace), "nightly")
    assert list(short) == ["NAME", "SCHEDULE", "SUSPENDED", "LAST BACKUP", "NEXT", "AGE"]
    assert (short["SCHEDULE"], short["SUSPENDED"], short["LAST BACKUP"]) == (
        "0 0 1 1 *",
        "false",
        NEVER,
    )
    assert short["NEXT"] == due and re.fullmatch(r"\d{4}-01-01T00:00:00Z", due), short
    wide = one(table(kubectl, "backupschedules", namespace, "-o", "wide"), "nightly")
    assert wide["ENVIRONMENT"] == "pre" and "<invalid>" not in wide.values()


def test_date_columns_only_show_times_in_the_past() -> None:
    """kubectl prints a ``date`` column as an age: a future time reads ``<invalid>``."""
    for path in sorted(CRDS_DIR.glob("*.yaml")):
        for version in yaml.safe_load(path.read_text())["spec"]["versions"]:
            for column in version["additionalPrinterColumns"]:
                if column["type"] == "date":
                    leaf = column["jsonPath"].rsplit(".", 1)[-1]
                    assert leaf in PAST_TIMES, (path.name, column)
