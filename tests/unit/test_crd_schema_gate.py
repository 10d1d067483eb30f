"""The operator's start-up gate (controller/handlers/crd_gate.py) with an in-memory
reader: what it logs, posts and measures, that it waits, and that it lets go."""

from __future__ import annotations

import json
import logging
import socket
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client import REGISTRY

from controller.api.crd_digest import ANNOTATION
from controller.api.crd_schema import EXPECTED
from controller.api.reasons import EventType, OperatorReason
from controller.errors import TemporaryError
from controller.handlers import crd_gate
from controller.handlers.crd_gate import CrdGate, WaitingProbe

ENV = "environments.ferry.dev"
MIG = "migrations.ferry.dev"


def crd(name: str, digest: str | None) -> dict[str, Any]:
    annotations = {} if digest is None else {ANNOTATION: digest}
    return {"metadata": {"name": name, "uid": f"uid-{name}", "annotations": annotations}}


class Reader:
    """CRDs by name (a value that is an exception is raised), and the events posted."""

    def __init__(self, **overrides: Any) -> None:
        self.crds: dict[str, Any] = {n: crd(n, d) for n, d in EXPECTED.items()}
        self.crds.update({k.replace("_", "."): v for k, v in overrides.items()})
        self.events: list[tuple[str, str | None, str, str, str]] = []
        self.fail_events = False

    def crd(self, name: str) -> dict[str, Any] | None:
        got = self.crds.get(name)
        if isinstance(got, Exception):
            raise got
        return got  # type: ignore[no-any-return]

    def crd_event(
        self, name: str, body: dict[str, Any] | None, type_: str, reason: str, message: str
    ) -> None:
        if self.fail_events:
            raise TemporaryError("Kubernetes API: posting an event: 403 Forbidden")
        uid = (body or {}).get("metadata", {}).get("uid")
        self.events.append((name, uid, type_, reason, message))


def mismatch(name: str) -> float | None:
    return REGISTRY.get_sample_value("ferry_crd_schema_mismatch", {"crd": name})


def key(name: str) -> str:
    return name.replace(".", "_")


def test_current_crds_pass_at_once_quietly(caplog: pytest.LogCaptureFixture) -> None:
    reader, slept = Reader(), []
    caplog.set_level(logging.INFO, "ferry.crds")
    CrdGate(reader, sleep=slept.append).wait()
    assert slept == [] and reader.events == []
    assert all(mismatch(name) == 0 for name in EXPECTED)
    assert [r.levelname for r in caplog.records] == ["INFO"]
    assert "5 CRDs are the ones this operator expects" in caplog.text


def test_stale_crds_hold_the_operator_until_they_are_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Three rounds stale (one log line and one event per CRD, not three), then current."""
    reader = Reader(**{key(ENV): crd(ENV, "sha256:old"), key(MIG): crd(MIG, None)})
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        assert mismatch(ENV) == 1 and mismatch(MIG) == 1
        assert mismatch("backups.ferry.dev") == 0
        if len(slept) == 3:  # someone applies the release's CRDs
            reader.crds[ENV] = crd(ENV, EXPECTED[ENV])
            reader.crds[MIG] = crd(MIG, EXPECTED[MIG])

    caplog.set_level(logging.INFO, "ferry.crds")
    CrdGate(reader, interval=7, sleep=sleep).wait()
    assert slept == [7, 7, 7]
    assert mismatch(ENV) == 0 and mismatch(MIG) == 0
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 2
    (env_line,) = [e for e in errors if ENV in e]
    assert "has schema sha256:old" in env_line and f"expects schema {EXPECTED[ENV]}" in env_line
    assert "kubectl apply --server-side --force-conflicts -f crds/" in env_line
    assert any(f"{MIG} has no {ANNOTATION} annotation" in e for e in errors)
    assert [(n, uid, t, r) for n, uid, t, r, _ in reader.events] == [
        (ENV, f"uid-{ENV}", EventType.WARNING, OperatorReason.CRD_SCHEMA_MISMATCH),
        (MIG, f"uid-{MIG}", EventType.WARNING, OperatorReason.CRD_SCHEMA_MISMATCH),
        (ENV, f"uid-{ENV}", EventType.NORMAL, OperatorReason.CRD_SCHEMA_CURRENT),
        (MIG, f"uid-{MIG}", EventType.NORMAL, OperatorReason.CRD_SCHEMA_CURRENT),
    ]
    assert reader.events[0][4] == env_line
    assert caplog.records[-1].getMessage() == "every CRD is current: starting to reconcile"


def test_a_changed_finding_is_reported_again() -> None:
    reader = Reader(**{key(ENV): None})
    gate = CrdGate(reader, sleep=lambda _: None)
    assert gate.check() is False
    assert gate.check() is False
    reader.crds[ENV] = crd(ENV, "sha256:other")
    assert gate.check() is False
    assert [(n, r) for n, _, _, r, _ in reader.events] == [
        (ENV, OperatorReason.CRD_SCHEMA_MISMATCH),
        (ENV, OperatorReason.CRD_SCHEMA_MISMATCH),
    ]
    assert "is not installed" in reader.events[0][4]
    assert reader.events[0][1] is None  # no CRD, no UID
    assert "has schema sha256:other" in reader.events[1][4]


def test_an_unreadable_crd_holds_the_operator_too(caplog: pytest.LogCaptureFixture) -> None:
    denied = TemporaryError("Kubernetes API: reading CustomResourceDefinition x: 403 Forbidden")
    reader = Reader(**{key(MIG): denied})
    reader.fail_events = True  # and the event cannot be posted either
    gate = CrdGate(reader, sleep=lambda _: None)
    assert gate.check() is False
    assert mismatch(MIG) == 1
    assert f"CRD {MIG} could not be read (Kubernetes API: reading" in caplog.text
    assert "403 Forbidden" in caplog.text
    assert f"could not post the CRDSchemaMismatch event on CRD {MIG}" in caplog.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, None


def test_liveness_is_answered_while_waiting_and_freed_for_kopf() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/healthz"
    reader = Reader(**{key(ENV): None})
    answers: list[tuple[int, Any]] = []

    def sleep(_: float) -> None:
        answers.append(get(url))
        answers.append(get(f"http://127.0.0.1:{port}/other"))
        reader.crds[ENV] = crd(ENV, EXPECTED[ENV])

    CrdGate(reader, sleep=sleep).wait(url)
    assert answers == [(200, {"waiting": "CRDs"}), (404, None)]
    with socket.socket() as s:  # the port is free again, for Kopf's own endpoint
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp binds
        s.bind(("127.0.0.1", port))
        s.listen()


def test_a_taken_liveness_port_is_a_warning_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        url = f"http://127.0.0.1:{taken.getsockname()[1]}/healthz"
        assert WaitingProbe.start(url) is None
    assert "cannot answer liveness" in caplog.text


def test_skipping_the_check_is_loud(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_client() -> None:
        raise AssertionError("the skipped check read the cluster")

    monkeypatch.setattr(crd_gate, "KubeCrds", no_client)
    crd_gate.before_reconciling(check=False, liveness=None)
    assert REGISTRY.get_sample_value("ferry_crd_schema_check_skipped") == 1
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert "CRD schema check SKIPPED (--skip-crd-check)" in record.getMessage()
