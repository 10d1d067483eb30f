"""Prometheus metrics of the operator."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

MIGRATIONS = Counter("ferry_migrations_total", "Finished migrations by result", ["result"])
MIGRATION_SECONDS = Histogram(
    "ferry_migration_duration_seconds",
    "Time from a Migration's start to its end",
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)
BACKUPS = Counter("ferry_backups_total", "Finished backups by result", ["result"])
LAST_SUCCESS = Gauge(
    "ferry_last_success_timestamp_seconds", "Unix time of the last success", ["kind"]
)
DRIFT = Gauge(
    "ferry_environment_drift",
    "1 when a locked Environment's configuration drifted",
    ["namespace", "environment"],
)
DRILL_LAST_SUCCESS = Gauge(
    "ferry_backup_drill_last_success_timestamp_seconds",
    "Unix time of a BackupSchedule's last restore drill that passed",
    ["namespace", "schedule"],
)
DRILL_FAILURES = Counter(
    "ferry_backup_drill_failures_total",
    "Restore drills that failed or could not run",
    ["namespace", "schedule"],
)
DRILL_SECONDS = Gauge(
    "ferry_backup_drill_duration_seconds",
    "Duration of a BackupSchedule's last restore drill",
    ["namespace", "schedule"],
)
CRD_SCHEMA_MISMATCH = Gauge(
    "ferry_crd_schema_mismatch",
    "1 while an installed CRD is not the one this operator was built with (it waits)",
    ["crd"],
)
CRD_CHECK_SKIPPED = Gauge(
    "ferry_crd_schema_check_skipped", "1 when the operator runs with --skip-crd-check"
)


def serve(port: int, address: str = "0.0.0.0") -> None:  # scraped from inside the cluster
    if port:
        start_http_server(port, addr=address)
