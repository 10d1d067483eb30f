"""The CRDs against a real API server: valid resources in, typos and broken invariants out.

Each valid example here is also a file in ``manifests/examples/`` (checked below),
and what the API server stores (with its defaults applied) must parse with the
typed views of ``controller.api``: the CRDs and the views cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from controller.api.backup import parse_backup
from controller.api.conditions import READY, make_condition
from controller.api.environment import parse_environment
from controller.api.migration import parse_migration
from controller.api.restore import parse_restore
from controller.api.schedule import parse_backup_schedule
from tests.e2e.conftest import (
    EXAMPLES_DIR,
    Apply,
    Kubectl,
    WrongClusterError,
    crd_established,
    guard_cluster,
)
from tests.harness.cluster import ControlPlane

pytestmark = pytest.mark.e2e

ENVIRONMENTS = """\
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata:
  name: dev
spec:
  stage: development
  database:
    dialect: sqlite
    url: sqlite:////data/nocobase/dev.sqlite
---
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata:
  name: pre-release
spec:
  stage: pre-release
  database:
    dialect: postgresql
    urlFrom:
      secretKeyRef: {name: pre-release-db, key: url}
  promotion:
    acceptsFrom: [dev]
  # No application declared: promote while it runs (restart NocoBase afterwards).
  allowRunningApplication: true
  backups:
    store:
      path: /var/lib/ferry/backups
---
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata:
  name: production
spec:
  stage: production
  profile: nocobase
  configChanges: locked
  database:
    dialect: postgresql
    host: nocobase-db.production.svc
    port: 5432
    name: nocobase
    user: nocobase
    passwordFrom:
      secretKeyRef: {name: production-db, key: password}
  variables:
    - name: SUPPORT_EMAIL
      value: support@example.com
    - name: SMTP_PASSWORD
      type: secret
      valueFrom:
        secretKeyRef: {name: production-smtp, key: password}
  encryptionKeyFrom:
    secretKeyRef: {name: production-app, key: APP_KEY}
  promotion:
    acceptsFrom: [pre-release]
  # Scaled to zero while Ferry writes, resumed, then checked (docs/concepts.md).
  application:
    workload: {kind: Deployment, name: nocobase}
    quiesce: {strategy: ScaleToZero, timeoutSeconds: 300}
    health:
      url: http://nocobase.production.svc:13000/api/__health_check
      timeoutSeconds: 300
  backups:
    store:
      s3:
        bucket: ferry-backups
        prefix: production/
        endpoint: https://minio.example.com
        region: eu-central-1
        credentialsSecret: ferry-s3
"""

BACKUP = """\
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata:
  name: production-before-upgrade
spec:
  environment: production
  reason: manual
  exclude: [logs, "tmp_*"]
  deletionPolicy: Retain
"""

BACKUP_SCHEDULE = """\
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata:
  name: production-nightly
spec:
  environment: production
  schedule: "30 2 * * *"
  timeZone: Europe/Berlin
  immediate: true
  template:
    exclude: [logs]
    deletionPolicy: Delete
  retention:
    keepLast: 14
    maxAge: 30d
    minKeep: 3
"""

RESTORES = """\
apiVersion: ferry.dev/v1alpha1
kind: Restore
metadata:
  name: production-restore-menus
spec:
  backup: production-before-upgrade
  environment: production
  tables: [desktopRoutes, "uiSchema*"]
---
apiVersion: ferry.dev/v1alpha1
kind: Restore
metadata:
  name: undo-release-42
spec:
  migration: release-42
"""

MIGRATIONS = """\
apiVersion: ferry.dev/v1alpha1
kind: Migration
metadata:
  name: release-42
spec:
  source:
    environment: pre-release
  target: production
  rules:
    system: overwrite
    user: schema-only
    strict: true
    ignoreColumns: [createdAt, updatedAt]
    tables:
      - match: desktopRoutes
        rule: upsert
        key: [schemaUid]
        references: {parentId: desktopRoutes}
        ignore: [sort]
      - match: "workflow*"
        rule: skip
  approval:
    required: true
---
apiVersion: ferry.dev/v1alpha1
kind: Migration
metadata:
  name: release-43-from-git
spec:
  source:
    git:
      repository: https://git.example.com/team/nocobase-config.git
      revision: v43
      path: snapshots/app
      secretRef: {name: git-credentials}
  target: pre-release
  rules:
    system: upsert
  approval:
    required: true
    planDigest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
  backup:
    skip: false
"""

EXAMPLES = {
    "environment.yaml": ENVIRONMENTS,
    "backup.yaml": BACKUP,
    "backupschedule.yaml": BACKUP_SCHEDULE,
    "restore.yaml": RESTORES,
    "migration.yaml": MIGRATIONS,
}

PARSERS: dict[str, Callable[[Mapping[str, Any]], object]] = {
    "Environment": parse_environment,
    "Backup": parse_backup,
    "BackupSchedule": parse_backup_schedule,
    "Restore": parse_restore,
    "Migration": parse_migration,
}

PLURALS = {
    "Environment": "environments",
    "Backup": "backups",
    "BackupSchedule": "backupschedules",
    "Restore": "restores",
    "Migration": "migrations",
}


BACKUP_NAME = "fbk/production-before-upgrade"


def _migration(name: str, spec: str) -> str:
    return f"apiVersion: ferry.dev/v1alpha1\nkind: Migration\nmetadata:\n  name: {name}\n{spec}"


INVALID: list[Any] = [
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata:
  name: typo
spec:
  stagee: production
  stage: production
  database: {dialect: sqlite, url: "sqlite:///x.db"}
""",
        ['unknown field "spec.stagee"'],
        id="typo-field",
    ),
    pytest.param(
        _migration(
            "bad-rule",
            """\
spec:
  source: {environment: dev}
  target: production
  rules:
    tables:
      - {match: roles, rule: merge}
""",
        ),
        ["spec.rules.tables[0].rule", 'Unsupported value: "merge"', "upsert"],
        id="unknown-rule",
    ),
    pytest.param(
        _migration(
            "bad-default-rule",
            """\
spec:
  source: {environment: dev}
  target: production
  rules: {system: overwrite-all}
""",
        ),
        ["spec.rules.system", 'Unsupported value: "overwrite-all"'],
        id="unknown-system-rule",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata:
  name: bad-cron
spec:
  environment: production
  schedule: "0 2 * *"
""",
        ["spec.schedule", "should match"],
        id="malformed-cron",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: BackupSchedule
metadata:
  name: bad-max-age
spec:
  environment: production
  schedule: "@daily"
  retention: {maxAge: 30 days}
""",
        ["spec.retention.maxAge", "should match"],
        id="malformed-duration",
    ),
    pytest.param(
        _migration(
            "bad-reference",
            """\
spec:
  source: {environment: dev}
  target: production
  rules:
    tables:
      - {match: flow_nodes, rule: upsert, references: {"workflow id": workflows}}
""",
        ),
        ["spec.rules.tables[0].references", "references' keys must be column names"],
        id="bad-reference-column",
    ),
    pytest.param(
        _migration("no-target", "spec:\n  source: {environment: dev}\n"),
        ["spec.target: Required value"],
        id="missing-required-field",
    ),
    pytest.param(
        _migration(
            "two-sources",
            """\
spec:
  source:
    environment: dev
    git: {repository: "https://git.example.com/config.git"}
  target: production
""",
        ),
        ["set exactly one of source.environment or source.git"],
        id="both-source-kinds",
    ),
    pytest.param(
        _migration(
            "to-itself", "spec:\n  source: {environment: production}\n  target: production\n"
        ),
        ["spec.target", "source.environment and target must differ"],
        id="source-equals-target",
    ),
    pytest.param(
        _migration(
            "bad-digest",
            """\
spec:
  source: {environment: dev}
  target: production
  approval: {required: true, planDigest: "sha256:abc"}
""",
        ),
        ["spec.approval.planDigest", "should match"],
        id="malformed-plan-digest",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: Restore
metadata:
  name: two-things
spec:
  backup: production-before-upgrade
  migration: release-42
""",
        ["set exactly one of backup", "or migration"],
        id="restore-backup-and-migration",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: Restore
metadata:
  name: nothing
spec:
  environment: production
""",
        ["set exactly one of backup"],
        id="restore-neither",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata:
  name: two-urls
spec:
  stage: development
  database:
    dialect: postgresql
    url: postgresql+psycopg://app@db/app
    urlFrom:
      secretKeyRef: {name: db, key: url}
""",
        ["spec.database", "set exactly one of url, urlFrom, or the discrete fields"],
        id="environment-two-connections",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata:
  name: two-scratches
spec:
  stage: production
  database: {dialect: sqlite, url: "sqlite:///x.db"}
  rehearsal:
    scratch:
      directory: /scratch
      urlFrom: {secretKeyRef: {name: scratch, key: url}}
""",
        ["spec.rehearsal.scratch", "set exactly one of url, urlFrom or directory"],
        id="environment-two-rehearsal-scratches",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: Migration
metadata:
  name: rehearse-maybe
spec:
  source: {environment: dev}
  target: pre
  rehearsal: Sometimes
""",
        ["spec.rehearsal", 'Unsupported value: "Sometimes"'],
        id="migration-unknown-rehearsal",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata:
  name: bad-stage
spec:
  stage: staging
  database: {dialect: sqlite, url: "sqlite:///x.db"}
""",
        ["spec.stage", 'Unsupported value: "staging"'],
        id="environment-unknown-stage",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata:
  name: inline-secret
spec:
  stage: production
  database: {dialect: sqlite, url: "sqlite:///x.db"}
  encryptionKeyFrom:
    secretKeyRef: {name: app, key: APP_KEY}
  variables:
    - {name: SMTP_PASSWORD, type: secret, value: hunter2}
""",
        ["spec.variables[0]", "a secret variable must come from a Secret"],
        id="environment-inline-secret",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata:
  name: both-app-and-running
spec:
  stage: production
  database: {dialect: sqlite, url: "sqlite:///x.db"}
  allowRunningApplication: true
  application:
    workload: {kind: Deployment, name: web}
""",
        ["allowRunningApplication is for an Environment without application"],
        id="environment-application-and-allow-running",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata:
  name: app-pod
spec:
  stage: production
  database: {dialect: sqlite, url: "sqlite:///x.db"}
  application:
    workload: {kind: Pod, name: web}
    health: {url: "http://user:pw@web/health"}
""",
        [
            "spec.application.workload.kind",
            'Unsupported value: "Pod"',
            "spec.application.health.url",
        ],
        id="environment-application-bad-workload-and-url",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata:
  name: include-and-exclude
spec:
  environment: production
  tables: [roles]
  exclude: [logs]
""",
        ["set tables or exclude, not both"],
        id="backup-include-and-exclude",
    ),
    pytest.param(
        """\
apiVersion: ferry.dev/v1alpha1
kind: Backup
metadata:
  name: bad-policy
spec:
  environment: production
  deletionPolicy: delete
""",
        ["spec.deletionPolicy", 'Unsupported value: "delete"'],
        id="backup-deletion-policy-case",
    ),
]


def test_guard_refuses_a_kubeconfig_the_session_did_not_create(
    control_plane: ControlPlane, kubectl: Kubectl, tmp_path: Path
) -> None:
    guard_cluster(control_plane, control_plane.directory, kubectl)
    with pytest.raises(WrongClusterError, match="is not inside"):
        guard_cluster(control_plane, tmp_path, kubectl)


def test_crds_are_established_with_names_and_category(
    ferry_crds: list[str], kubectl: Kubectl
) -> None:
    assert len(ferry_crds) == 5
    assert all(crd_established(kubectl, name) for name in ferry_crds)
    listing = kubectl("api-resources", "--categories=ferry", "--no-headers").stdout
    rows = {line.split()[0]: line.split()[1] for line in listing.splitlines() if line.strip()}
    assert rows == {
        "environments": "fenv",
        "backups": "fbk",
        "backupschedules": "fbks",
        "restores": "frs",
        "migrations": "fmig",
    }


def test_examples_are_the_files_in_manifests() -> None:
    assert sorted(p.name for p in EXAMPLES_DIR.glob("*.yaml")) == sorted(EXAMPLES)
    for name, text in EXAMPLES.items():
        assert (EXAMPLES_DIR / name).read_text() == text, name


def _kept(sent: object, stored: object) -> bool:
    """Everything ``sent`` is in ``stored``, which may add defaulted fields."""
    if isinstance(sent, dict):
        return isinstance(stored, dict) and all(
            k in stored and _kept(v, stored[k]) for k, v in sent.items()
        )
    if isinstance(sent, list):
        return (
            isinstance(stored, list)
            and len(sent) == len(stored)
            and all(_kept(a, b) for a, b in zip(sent, stored, strict=True))
        )
    return sent == stored


@pytest.mark.parametrize("example", sorted(EXAMPLES))
def test_valid_examples_are_accepted_and_parse_as_stored(
    ferry_crds: list[str], kubectl: Kubectl, apply: Apply, namespace: str, example: str
) -> None:
    text = EXAMPLES[example]
    proc = apply(text, namespace)
    assert proc.returncode == 0, proc.stderr
    for doc in yaml.safe_load_all(text):
        kind, name = doc["kind"], doc["metadata"]["name"]
        stored = kubectl.json("get", f"{PLURALS[kind]}.ferry.dev", name, "-n", namespace)
        # What the API server keeps (defaults applied, nothing pruned) is what was sent ...
        assert _kept(doc["spec"], stored["spec"]), (doc["spec"], stored["spec"])
        # ... and the operator's typed view accepts it.
        PARSERS[kind](stored)


@pytest.mark.parametrize(("manifest", "needles"), INVALID)
def test_invalid_resources_are_rejected_with_a_readable_message(
    ferry_crds: list[str], apply: Apply, namespace: str, manifest: str, needles: list[str]
) -> None:
    proc = apply(manifest, namespace)
    assert proc.returncode != 0, f"accepted:\n{manifest}\n{proc.stdout}"
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def test_migration_source_and_target_cannot_change_but_approval_can(
    ferry_crds: list[str], kubectl: Kubectl, apply: Apply, namespace: str
) -> None:
    assert apply(MIGRATIONS, namespace).returncode == 0

    def patch(spec: dict[str, Any]) -> Any:
        return kubectl.merge_patch("fmig/release-42", namespace, {"spec": spec})

    changed_target = patch({"target": "dev"})
    assert changed_target.returncode != 0
    assert "spec.target" in changed_target.stderr
    assert "target cannot change; create a new Migration" in changed_target.stderr
    changed_source = patch({"source": {"environment": "dev"}})
    assert changed_source.returncode != 0
    assert "source cannot change" in changed_source.stderr
    # Re-applying the same manifest is not a change (GitOps syncs do exactly this).
    assert apply(MIGRATIONS, namespace).returncode == 0
    digest = "sha256:" + "ab" * 32
    approved = patch({"approval": {"required": True, "planDigest": digest}})
    assert approved.returncode == 0, approved.stderr
    stored = kubectl.json("get", "fmig", "release-42", "-n", namespace)
    assert stored["spec"]["approval"]["planDigest"] == digest


def test_one_shot_specs_cannot_change(
    ferry_crds: list[str], kubectl: Kubectl, apply: Apply, namespace: str
) -> None:
    assert apply(RESTORES, namespace).returncode == 0
    assert apply(BACKUP, namespace).returncode == 0
    restore = kubectl.merge_patch("frs/undo-release-42", namespace, {"spec": {"force": True}})
    assert restore.returncode != 0
    assert "a Restore cannot change" in restore.stderr
    backup = kubectl.merge_patch(BACKUP_NAME, namespace, {"spec": {"environment": "dev"}})
    assert backup.returncode != 0
    assert "environment cannot change" in backup.stderr
    # The artifact's fate may still be decided after the fact.
    policy = kubectl.merge_patch(BACKUP_NAME, namespace, {"spec": {"deletionPolicy": "Delete"}})
    assert policy.returncode == 0, policy.stderr


PLAN_DIGEST = "sha256:" + "0f" * 32
PLAN: dict[str, Any] = {
    "digest": PLAN_DIGEST,
    "tables": [
        {
            "name": "desktopRoutes",
            "rule": "upsert",
            "rows": {"insert": 3, "update": 1, "delete": 0, "unchanged": 40},
            "schema": [{"op": "add_column", "column": "hidden", "type": {"kind": "boolean"}}],
        }
    ],
    "totals": {"insert": 3, "update": 1, "delete": 0},
    "warnings": ["table ferry_custom has no rule; treated as schema-only"],
    # No nulls: a merge patch (what Kopf sends) deletes keys whose value is null.
    "future": {"nested": {"deeper": [1, "two", {"three": 3.5}]}},
}


def test_status_keeps_the_plan_and_serves_printer_columns_and_wait(
    ferry_crds: list[str], kubectl: Kubectl, apply: Apply, namespace: str
) -> None:
    assert apply(MIGRATIONS, namespace).returncode == 0
    status = {
        "observedGeneration": 1,
        "phase": "AwaitingApproval",
        "plan": PLAN,
        "backup": {"name": "release-42-pre", "id": "bk-20260101-0001"},
        "source": {"revision": "fp:1234abcd"},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "PlanReady",
                "message": "plan ready for review",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 1,
            }
        ],
        "somethingNew": {"kept": True},
    }
    kubectl.merge_patch(
        "fmig/release-42", namespace, {"status": status}, subresource="status", check=True
    )
    stored = kubectl.json("get", "fmig", "release-42", "-n", namespace)["status"]
    assert isinstance(stored, dict)
    assert stored["plan"] == PLAN
    assert stored["somethingNew"] == {"kept": True}
    assert stored["backup"]["id"] == "bk-20260101-0001"

    kubectl("wait", "--for=condition=Ready", "fmig/release-42", "-n", namespace, "--timeout=30s")
    table = kubectl("get", "fmig", "-n", namespace).stdout.splitlines()
    assert table[0].split() == ["NAME", "SOURCE", "TARGET", "PHASE", "BACKUP", "AGE"]
    row = next(line.split() for line in table[1:] if line.startswith("release-42 "))
    assert row[:5] == [
        "release-42",
        "pre-release",
        "production",
        "AwaitingApproval",
        "bk-20260101-0001",
    ]
    wide = kubectl("get", "fmig", "release-42", "-n", namespace, "-o", "wide").stdout
    assert "REVISION" in wide and "fp:1234abcd" in wide and PLAN_DIGEST in wide


def test_status_is_typed_where_the_operator_relies_on_it(
    ferry_crds: list[str], kubectl: Kubectl, apply: Apply, namespace: str
) -> None:
    assert apply(BACKUP, namespace).returncode == 0
    bad = kubectl.merge_patch(
        BACKUP_NAME, namespace, {"status": {"phase": "Done"}}, subresource="status"
    )
    assert bad.returncode != 0
    assert 'status.phase: Unsupported value: "Done"' in bad.stderr
    condition = {"type": "Ready", "status": "yes", "reason": "x y"}
    bad_condition = kubectl.merge_patch(
        BACKUP_NAME, namespace, {"status": {"conditions": [condition]}}, subresource="status"
    )
    assert bad_condition.returncode != 0
    assert "status.conditions[0].status" in bad_condition.stderr


@pytest.mark.parametrize(
    ("short", "header"),
    [
        ("fenv", ["NAME", "STAGE", "DIALECT", "READY", "DRIFT", "AGE"]),
        ("fbk", ["NAME", "ENVIRONMENT", "PHASE", "ID", "SIZE", "AGE"]),
        ("fbks", ["NAME", "SCHEDULE", "SUSPENDED", "LAST", "BACKUP", "NEXT", "AGE"]),
        ("frs", ["NAME", "BACKUP", "ENVIRONMENT", "PHASE", "AGE"]),
        ("fmig", ["NAME", "SOURCE", "TARGET", "PHASE", "BACKUP", "AGE"]),
    ],
)
def test_printer_columns(
    ferry_crds: list[str],
    kubectl: Kubectl,
    apply: Apply,
    namespace: str,
    short: str,
    header: list[str],
) -> None:
    for text in EXAMPLES.values():
        assert apply(text, namespace).returncode == 0
    lines = kubectl("get", short, "-n", namespace).stdout.splitlines()
    assert lines[0].split() == header
    assert len(lines) > 1


def test_environment_ready_and_drift_columns_follow_conditions(
    ferry_crds: list[str], kubectl: Kubectl, apply: Apply, namespace: str
) -> None:
    assert apply(ENVIRONMENTS, namespace).returncode == 0
    # Status sent with the main resource is ignored: only the operator writes status.
    ignored = kubectl.merge_patch("fenv/production", namespace, {"status": {"dialect": "x"}})
    assert ignored.returncode == 0, ignored.stderr
    assert "status" not in kubectl.json("get", "fenv/production", "-n", namespace)
    now = datetime.now(UTC)
    conditions = [
        make_condition(READY, True, "Reachable", "", now=now).to_dict(),
        make_condition("Drifted", True, "ConfigurationChanged", "roles", now=now).to_dict(),
    ]
    kubectl.merge_patch(
        "fenv/production",
        namespace,
        {"status": {"conditions": conditions, "drift": {"detected": True, "tables": ["roles"]}}},
        subresource="status",
        check=True,
    )
    kubectl("wait", "--for=condition=Drifted", "fenv/production", "-n", namespace, "--timeout=30s")
    rows = kubectl("get", "fenv", "production", "-n", namespace, "--no-headers").stdout.split()
    assert rows[:5] == ["production", "production", "postgresql", "True", "True"]
