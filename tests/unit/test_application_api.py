"""``spec.application`` as the typed view reads it, and the health GET on real HTTP."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from controller.api.environment import parse_environment
from controller.api.environment_application import (
    DEFAULT_HEALTH_SECONDS,
    DEFAULT_QUIESCE_SECONDS,
    QuiesceStrategy,
    WorkloadKind,
)
from controller.errors import InvalidInput
from controller.k8s.workloads import http_health


def body(**spec: Any) -> dict[str, Any]:
    base = {"stage": "production", "database": {"dialect": "sqlite", "url": "x"}}
    return {"kind": "Environment", "metadata": {"name": "prod"}, "spec": {**base, **spec}}


def test_an_application_is_read_with_its_defaults() -> None:
    app = parse_environment(
        body(application={"workload": {"kind": "StatefulSet", "name": "nocobase"}})
    ).application
    assert app is not None
    assert (app.kind, app.name, app.workload) == (
        WorkloadKind.STATEFUL_SET,
        "nocobase",
        "StatefulSet/nocobase",
    )
    assert app.strategy is QuiesceStrategy.SCALE_TO_ZERO
    assert app.quiesce_timeout_seconds == DEFAULT_QUIESCE_SECONDS and app.health is None


def test_a_service_dns_health_url_and_timeouts_are_kept() -> None:
    url = "http://nocobase.prod.svc.cluster.local:13000/api/__health_check"
    spec = parse_environment(
        body(
            application={
                "workload": {"kind": "Deployment", "name": "nocobase"},
                "quiesce": {"strategy": "ScaleToZero", "timeoutSeconds": 60},
                "health": {"url": url, "timeoutSeconds": 3600},
            }
        )
    )
    app = spec.application
    assert app is not None and app.health is not None
    assert (app.health.url, app.health.timeout_seconds, app.quiesce_timeout_seconds) == (
        url,
        3600,
        60,
    )
    assert DEFAULT_HEALTH_SECONDS == 300 and not spec.allow_running_application


def test_allow_running_application_alone() -> None:
    spec = parse_environment(body(allowRunningApplication=True))
    assert spec.allow_running_application and spec.application is None


@pytest.mark.parametrize(
    ("application", "extra", "message"),
    [
        (
            {"workload": {"kind": "Pod", "name": "x"}},
            {},
            "'Pod' (allowed: Deployment, StatefulSet)",
        ),
        ({"workload": {"kind": "Deployment"}}, {}, "workload.name is required"),
        ({"workload": {"kind": "Deployment", "name": "Bad_Name"}}, {}, "not a valid object name"),
        ({}, {}, "spec.application.workload is required"),
        (
            {"workload": {"kind": "Deployment", "name": "x"}, "quiesce": {"timeoutSeconds": 0}},
            {},
            "expected an integer >= 1",
        ),
        (
            {"workload": {"kind": "Deployment", "name": "x"}, "quiesce": {"timeoutSeconds": 3601}},
            {},
            "at most 3600",
        ),
        (
            {"workload": {"kind": "Deployment", "name": "x"}, "quiesce": {"strategy": "Pause"}},
            {},
            "'Pause' (allowed: ScaleToZero)",
        ),
        (
            {"workload": {"kind": "Deployment", "name": "x"}, "health": {"url": "ftp://x/h"}},
            {},
            "malformed value 'ftp://x/h'",
        ),
        (
            {
                "workload": {"kind": "Deployment", "name": "x"},
                "health": {"url": "http://user:pw@x/h"},
            },
            {},
            "malformed value",
        ),
        (
            {"workload": {"kind": "Deployment", "name": "x"}, "health": {}},
            {},
            "health.url is required",
        ),
        (
            {"workload": {"kind": "Deployment", "name": "x"}},
            {"allowRunningApplication": True},
            "allowRunningApplication is for an Environment without spec.application",
        ),
        (
            {"workload": {"kind": "Deployment", "name": "x"}, "replicas": 2},
            {},
            "replicas",
        ),
    ],
)
def test_a_wrong_application_is_refused_with_the_offending_field(
    application: dict[str, Any], extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_environment(body(application=application, **extra))
    assert message in err.value.message


class _Server:
    def __init__(self) -> None:
        self.code = 200
        self.location = ""
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(owner.code)
                if owner.location:
                    self.send_header("Location", owner.location)
                self.send_header("Content-Length", "6")
                self.end_headers()
                self.wfile.write(b"secret")

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/api/__health_check"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.httpd.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


@pytest.mark.parametrize(("code", "ok"), [(200, True), (204, True), (404, False), (503, False)])
def test_health_is_any_2xx_and_the_body_is_never_quoted(
    server: _Server, code: int, ok: bool
) -> None:
    server.code = code
    health = http_health(server.url, 2.0)
    assert (health.ok, health.detail) == (ok, f"HTTP {code}")


def test_a_redirect_is_not_followed(server: _Server) -> None:
    server.code, server.location = 302, server.url + "?again"
    assert http_health(server.url, 2.0).detail == "HTTP 302"
    assert not http_health(server.url, 2.0).ok


def test_nothing_listening_is_unhealthy_not_an_error(server: _Server) -> None:
    url = server.url
    server.httpd.shutdown()
    server.httpd.server_close()
    health = http_health(url, 1.0)
    assert not health.ok and "refused" in health.detail.lower()


def test_only_http_urls_are_asked() -> None:
    with pytest.raises(InvalidInput):
        http_health("file:///etc/passwd", 1.0)
