"""Typed views of the custom resources: valid bodies parse, invalid ones are named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controller.api import conditions as cond
from controller.api.backup import DeletionPolicy, Reason, parse_backup
from controller.api.environment import (
    ConfigChanges,
    Dialect,
    Profile,
    Stage,
    VariableType,
    parse_environment,
)
from controller.api.migration import Approval, parse_migration
from controller.api.resources import Node, SecretKeyRef, parse_object_ref
from controller.api.restore import parse_restore
from controller.api.rules import Rule
from controller.api.schedule import parse_backup_schedule, parse_duration
from controller.errors import InvalidInput


def body(kind: str, spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "ferry.dev/v1alpha1",
        "kind": kind,
        "metadata": {"name": "x", "namespace": "ns", "uid": "u-1", "generation": 3},
        "spec": spec,
    }


def env(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"stage": "development", "database": {"dialect": "sqlite", "url": "x"}}
    base.update(spec)
    return body("Environment", base)


def mig(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"source": {"environment": "dev"}, "target": "production"}
    base.update(spec)
    return body("Migration", base)


# -- Environment --------------------------------------------------------------


def test_environment_full() -> None:
    spec = parse_environment(
        env(
            stage="production",
            database={
                "dialect": "postgresql",
                "host": "db.prod.svc",
                "port": 5432,
                "name": "app",
                "user": "app",
                "passwordFrom": {"secretKeyRef": {"name": "db", "key": "password"}},
            },
            variables=[
                {"name": "MAIL", "value": ""},
                {
                    "name": "SMTP_PASSWORD",
                    "type": "secret",
                    "valueFrom": {"secretKeyRef": {"name": "smtp", "key": "pw"}},
                },
            ],
            encryptionKeyFrom={"secretKeyRef": {"name": "app", "key": "APP_KEY"}},
            promotion={"acceptsFrom": ["pre-release"]},
            backups={"store": {"s3": {"bucket": "b", "prefix": "p/", "credentialsSecret": "s3"}}},
        )
    )
    assert spec.stage is Stage.PRODUCTION
    assert spec.profile is Profile.NOCOBASE
    assert spec.config_changes is ConfigChanges.LOCKED  # default outside development
    assert spec.locked
    db = spec.database
    assert (db.dialect, db.host, db.port, db.name, db.user) == (
        Dialect.POSTGRESQL,
        "db.prod.svc",
        5432,
        "app",
        "app",
    )
    assert db.password_from == SecretKeyRef("db", "password")
    assert [(v.name, v.type, v.value) for v in spec.variables] == [
        ("MAIL", VariableType.PLAIN, ""),
        ("SMTP_PASSWORD", VariableType.SECRET, None),
    ]
    assert spec.variables[1].value_from == SecretKeyRef("smtp", "pw")
    assert spec.accepts("pre-release") and not spec.accepts("dev")
    assert spec.backup_store is not None and spec.backup_store.s3 is not None
    assert spec.backup_store.s3.credentials_secret == "s3"


def test_environment_defaults_and_url_forms() -> None:
    dev = parse_environment(env())
    assert dev.config_changes is ConfigChanges.ALLOWED
    assert dev.variables == () and dev.backup_store is None
    from_secret = parse_environment(
        env(database={"dialect": "mysql", "urlFrom": {"secretKeyRef": {"name": "d", "key": "u"}}})
    )
    assert from_secret.database.url_from == SecretKeyRef("d", "u")
    sqlite_file = parse_environment(env(database={"dialect": "sqlite", "name": "/data/app.db"}))
    assert sqlite_file.database.name == "/data/app.db"
    path_store = parse_environment(env(backups={"store": {"path": "/backups"}}))
    assert path_store.backup_store is not None and path_store.backup_store.path == "/backups"


def test_database_repr_never_shows_a_literal_url() -> None:
    spec = parse_environment(
        env(database={"dialect": "postgresql", "url": "postgresql://u:hunter2@db/app"})
    )
    assert "hunter2" not in repr(spec.database)
    assert "hunter2" not in repr(spec)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"stagee": "production"}, "unknown field(s) stagee"),
        ({"stage": "staging"}, "'staging' (allowed: development, pre-release, production)"),
        ({"profile": "odoo"}, "spec.profile"),
        ({"configChanges": "frozen"}, "spec.configChanges"),
        ({"database": {"dialect": "oracle", "url": "x"}}, "spec.database.dialect"),
        ({"database": {"dialect": "sqlite"}}, "got none"),
        (
            {
                "database": {
                    "dialect": "sqlite",
                    "url": "x",
                    "urlFrom": {"secretKeyRef": {"name": "a", "key": "b"}},
                }
            },
            "got url, urlFrom",
        ),
        ({"database": {"dialect": "sqlite", "url": "x", "host": "h"}}, "got url, discrete"),
        ({"database": {"dialect": "postgresql", "host": "h"}}, "spec.database.name is required"),
        ({"database": {"dialect": "postgresql", "name": "app"}}, "host is required"),
        ({"database": {"dialect": "mysql", "host": "h", "name": "a", "port": 0}}, "port"),
        ({"database": {"dialect": "sqlite", "urlFrom": {"secretKeyRef": {"name": "a"}}}}, "key"),
        ({"database": {"dialect": "sqlite", "url": "x", "password": "pw"}}, "password"),
        ({"variables": [{"name": "A"}]}, "spec.variables[0]: set exactly one of value"),
        ({"variables": [{"name": "1A", "value": "x"}]}, "'1A'"),
        ({"variables": [{"name": "A", "value": 1}]}, "expected a string"),
        ({"variables": [{"name": "A", "value": "x"}, {"name": "A", "value": "y"}]}, "duplicate"),
        (
            {"variables": [{"name": "PW", "type": "secret", "value": "hunter2"}]},
            "must come from a Secret",
        ),
        (
            {
                "variables": [
                    {
                        "name": "PW",
                        "type": "secret",
                        "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                    }
                ]
            },
            "spec.encryptionKeyFrom is required",
        ),
        ({"promotion": {"acceptsFrom": ["Dev"]}}, "'Dev'"),
        ({"backups": {"store": {"path": "relative"}}}, "absolute path"),
        ({"backups": {"store": {"path": "/a", "s3": {"bucket": "b"}}}}, "exactly one of path, s3"),
        ({"backups": {"store": {"s3": {"bucket": "b", "secret": "x"}}}}, "unknown field(s) secret"),
    ],
)
def test_environment_invalid(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_environment(env(**spec))
    assert needle in str(err.value)


def test_generic_profile_needs_no_encryption_key() -> None:
    spec = parse_environment(
        env(
            profile="generic",
            systemTables=["app_*", "settings"],
            variables=[
                {
                    "name": "PW",
                    "type": "secret",
                    "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}},
                }
            ],
        )
    )
    assert spec.profile is Profile.GENERIC
    assert spec.system_tables == ("app_*", "settings")


def test_body_without_spec_is_invalid() -> None:
    with pytest.raises(InvalidInput, match="spec is missing"):
        parse_environment({"kind": "Environment", "metadata": {"name": "x"}})


# -- Backup and BackupSchedule --------------------------------------------------


def test_backup() -> None:
    spec = parse_backup(body("Backup", {"environment": "prod", "exclude": ["logs", "tmp_*"]}))
    assert spec.environment == "prod"
    assert spec.selection.exclude == ("logs", "tmp_*") and spec.selection.include == ()
    assert spec.reason is Reason.MANUAL
    assert spec.deletion_policy is DeletionPolicy.RETAIN


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({}, "spec.environment is required"),
        ({"environment": "Prod"}, "not a valid object name"),
        ({"environment": "p", "tables": ["a"], "exclude": ["b"]}, "not both"),
        ({"environment": "p", "tables": ["a b"]}, "spec.tables[0]"),
        ({"environment": "p", "tables": ["a", "a"]}, "twice"),
        ({"environment": "p", "reason": "nightly"}, "spec.reason"),
        ({"environment": "p", "deletionPolicy": "delete"}, "(allowed: Retain, Delete)"),
    ],
)
def test_backup_invalid(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_backup(body("Backup", spec))
    assert needle in str(err.value)


def test_backup_schedule() -> None:
    spec = parse_backup_schedule(
        body(
            "BackupSchedule",
            {
                "environment": "prod",
                "schedule": "30 2 * * mon-fri",
                "timeZone": "Europe/Berlin",
                "immediate": True,
                "template": {"tables": ["roles"]},
                "retention": {"keepLast": 7, "maxAge": "1d12h", "minKeep": 2},
            },
        )
    )
    assert spec.schedule == "30 2 * * mon-fri" and spec.time_zone == "Europe/Berlin"
    assert spec.immediate and not spec.suspend
    assert spec.template.selection.include == ("roles",)
    assert spec.template.deletion_policy is DeletionPolicy.DELETE
    assert spec.retention.keep_last == 7 and spec.retention.min_keep == 2
    assert spec.retention.max_age == timedelta(days=1, hours=12)
    macro = parse_backup_schedule(
        body("BackupSchedule", {"environment": "p", "schedule": "@daily"})
    )
    assert macro.retention.min_keep == 1 and macro.retention.keep_last is None


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"environment": "p"}, "spec.schedule is required"),
        ({"environment": "p", "schedule": "every day"}, "malformed cron"),
        ({"environment": "p", "schedule": "0 2 * *"}, "malformed cron"),
        ({"environment": "p", "schedule": "61 * * * *"}, "malformed cron"),
        ({"environment": "p", "schedule": "@often"}, "malformed cron"),
        ({"environment": "p", "schedule": "@daily", "timeZone": "Europe Berlin"}, "timeZone"),
        ({"environment": "p", "schedule": "@daily", "suspend": "yes"}, "true or false"),
        ({"environment": "p", "schedule": "@daily", "retention": {"maxAge": "30 days"}}, "30 days"),
        ({"environment": "p", "schedule": "@daily", "retention": {"maxAge": "0d"}}, "positive"),
        ({"environment": "p", "schedule": "@daily", "retention": {"keepLast": 0}}, ">= 1"),
        (
            {"environment": "p", "schedule": "@daily", "retention": {"keepLast": 2, "minKeep": 3}},
            "minKeep (3) exceeds keepLast (2)",
        ),
        ({"environment": "p", "schedule": "@daily", "template": {"environment": "q"}}, "unknown"),
    ],
)
def test_backup_schedule_invalid(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_backup_schedule(body("BackupSchedule", spec))
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12h", timedelta(hours=12)),
        ("2w", timedelta(weeks=2)),
        ("90m", timedelta(minutes=90)),
        ("1d12h", timedelta(days=1, hours=12)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text, "x") == expected


# -- Restore ------------------------------------------------------------------


def test_restore_forms() -> None:
    from_backup = parse_restore(
        body("Restore", {"backup": "bk-20260101T0200Z", "tables": ["roles"], "force": True})
    )
    assert from_backup.backup == "bk-20260101T0200Z" and from_backup.tables == ("roles",)
    assert from_backup.force and not from_backup.is_rollback and from_backup.environment is None
    rollback = parse_restore(body("Restore", {"migration": "release-42", "environment": "prod"}))
    assert rollback.is_rollback and rollback.migration == "release-42"
    assert rollback.environment == "prod"


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({}, "set exactly one of backup, migration (got none)"),
        ({"backup": "b", "migration": "m"}, "(got backup, migration)"),
        ({"migration": "m", "tables": ["roles"]}, "a migration rollback restores exactly"),
        ({"backup": "b", "tables": "roles"}, "expected a list"),
        ({"backup": "b c"}, "malformed value 'b c'"),
        ({"backup": "b", "force": 1}, "true or false"),
    ],
)
def test_restore_invalid(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_restore(body("Restore", spec))
    assert needle in str(err.value)


# -- Migration ----------------------------------------------------------------


def test_migration_from_environment_reuses_rules() -> None:
    spec = parse_migration(
        mig(
            rules={
                "system": "upsert",
                "tables": [{"match": "desktopRoutes", "rule": "upsert", "key": ["schemaUid"]}],
            },
            approval={"required": True},
            backup={"skip": True},
        )
    )
    assert spec.source.environment == "dev" and spec.source.git is None
    assert spec.target == "production"
    assert spec.rules.system is Rule.UPSERT and spec.rules.tables[0].key == ("schemaUid",)
    assert spec.approval.required and spec.skip_backup


def test_migration_from_git_defaults() -> None:
    spec = parse_migration(
        mig(source={"git": {"repository": "git@github.com:team/config.git"}}, target="dev")
    )
    assert spec.source.git is not None
    assert spec.source.git.path == "." and spec.source.git.revision is None
    assert spec.source.git.secret_name is None
    assert spec.rules.user is Rule.SCHEMA_ONLY and not spec.approval.required
    assert not spec.skip_backup


def test_approval_matches_the_digest() -> None:
    digest = "sha256:" + "a" * 64
    assert Approval().approves(digest)
    assert not Approval(required=True).approves(digest)
    assert Approval(required=True, plan_digest=digest).approves(digest)
    assert not Approval(required=True, plan_digest=digest).approves("sha256:" + "b" * 64)


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ({"source": {}}, "set exactly one of environment, git (got none)"),
        (
            {"source": {"environment": "dev", "git": {"repository": "https://x/y.git"}}},
            "(got environment, git)",
        ),
        ({"target": "dev"}, "spec.source.environment and spec.target are both 'dev'"),
        ({"target": None}, "spec.target is required"),
        ({"source": {"git": {"repository": "not a url"}}}, "spec.source.git.repository"),
        ({"source": {"git": {"repository": "https://x/y", "branch": "main"}}}, "branch"),
        ({"source": {"git": {"repository": "https://x/y", "path": "/abs"}}}, "'/abs'"),
        ({"source": {"git": {"repository": "https://x/y", "secretRef": {}}}}, "secretRef.name"),
        ({"rules": {"system": "overwrite-all"}}, "overwrite-all"),
        ({"rules": {"tables": [{"match": "x", "rule": "merge"}]}}, "rules.tables[0].rule"),
        ({"approval": {"planDigest": "sha256:abc"}}, "spec.approval.planDigest"),
        ({"approval": {"required": "yes"}}, "true or false"),
        ({"backup": {"skip": "false"}}, "true or false"),
        ({"variables": []}, "unknown field(s) variables"),
    ],
)
def test_migration_invalid(spec: dict[str, Any], needle: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_migration(mig(**spec))
    assert needle in str(err.value)


# -- the reader and identity ----------------------------------------------------


def test_reading_an_undeclared_path_is_a_bug_not_bad_input() -> None:
    node = Node.root({"spec": {"a": 1}}, "Thing", ["spec.a"])
    assert node.raw("a") == 1
    with pytest.raises(AssertionError, match=r"spec\.b is read but not declared"):
        node.raw("b")


def test_object_ref() -> None:
    ref = parse_object_ref(env(), "Environment")
    assert (ref.namespace, ref.name, ref.uid, ref.generation) == ("ns", "x", "u-1", 3)
    with pytest.raises(InvalidInput, match=r"metadata\.name"):
        parse_object_ref({"metadata": {}}, "Environment")


# -- conditions -----------------------------------------------------------------

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_make_condition_has_the_kubernetes_shape() -> None:
    c = cond.make_condition(
        cond.READY, True, "Reconciled", "all good", now=T0, observed_generation=2
    )
    assert c.to_dict() == {
        "type": "Ready",
        "status": "True",
        "reason": "Reconciled",
        "message": "all good",
        "lastTransitionTime": "2026-01-01T12:00:00Z",
        "observedGeneration": 2,
    }
    assert cond.parse_condition(c.to_dict()) == c


@pytest.mark.parametrize("reason", ["not camel", "", "1Start", "Trailing:"])
def test_reason_must_be_camel_case(reason: str) -> None:
    with pytest.raises(ValueError, match="reason"):
        cond.make_condition(cond.READY, False, reason, "", now=T0)


def test_time_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone"):
        cond.make_condition(cond.READY, False, "X", "", now=datetime(2026, 1, 1))


def test_merge_keeps_transition_time_while_status_is_unchanged() -> None:
    ready = cond.make_condition(cond.READY, False, "Planning", "planning", now=T0)
    stalled = cond.make_condition(cond.STALLED, False, "Progressing", "", now=T0)
    again = cond.make_condition(cond.READY, False, "AwaitingApproval", "review", now=T1)
    merged = cond.merge([ready, stalled], again)
    assert [c.type for c in merged] == ["Ready", "Stalled"]
    assert merged[0].reason == "AwaitingApproval" and merged[0].message == "review"
    assert merged[0].last_transition_time == "2026-01-01T12:00:00Z"

    flipped = cond.merge(merged, cond.make_condition(cond.READY, True, "Succeeded", "", now=T1))
    assert flipped[0].status is cond.ConditionStatus.TRUE
    assert flipped[0].last_transition_time == "2026-01-01T12:05:00Z"

    added = cond.merge(flipped, cond.make_condition("Drifted", False, "NoDrift", "", now=T1))
    assert [c.type for c in added] == ["Ready", "Stalled", "Drifted"]


def test_merge_dicts_works_on_a_status_as_read() -> None:
    existing = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "Ok",
            "message": "",
            "lastTransitionTime": "2025-12-31T00:00:00Z",
        }
    ]
    new = cond.make_condition(cond.READY, True, "StillOk", "fine", now=T1, observed_generation=4)
    merged = cond.merge_dicts(existing, new)
    assert merged == [
        {
            "type": "Ready",
            "status": "True",
            "reason": "StillOk",
            "message": "fine",
            "lastTransitionTime": "2025-12-31T00:00:00Z",
            "observedGeneration": 4,
        }
    ]
    assert cond.is_true(cond.parse_conditions(merged), cond.READY)
    assert cond.find(cond.parse_conditions(merged), cond.STALLED) is None
    with pytest.raises(InvalidInput, match="malformed condition"):
        cond.parse_conditions([{"type": "Ready", "status": "maybe"}])
