"""A Job's pod writing its object's ``status.progress`` with its projected token.

The token and the cluster's CA are where ``controller.k8s.job_access`` mounts them
(:data:`~controller.k8s.job_access.TOKEN_DIR`, or ``FERRY_PROGRESS_TOKEN_DIR``); the
API server is the one the kubelet names in ``KUBERNETES_SERVICE_HOST``/``_PORT``. The
client re-reads the token as the kubelet renews it. Writing progress is a courtesy:
:class:`TokenStatusWriter` never raises, waits at most a few seconds for an answer,
tries again only :data:`BACKOFF` seconds after a failed write, and says once on stderr
that progress is not reaching status, with the API's status code and reason only
(never the token, never the response body).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from controller.api.resources import GROUP, VERSION
from controller.k8s.client import PLURALS
from controller.k8s.job_access import TOKEN_DIR

TOKEN_DIR_ENV = "FERRY_PROGRESS_TOKEN_DIR"
TIMEOUT = (2.0, 5.0)  # seconds to connect, to answer, before the work goes on without it
BACKOFF = 30.0  # seconds without trying after a failed write, so a dead API slows nothing


def token_api_client(directory: Path | None = None) -> Any:
    """An API client authenticated by the projected token in ``directory``."""
    from kubernetes import client
    from kubernetes.config.incluster_config import InClusterConfigLoader

    where = directory or Path(os.environ.get(TOKEN_DIR_ENV) or TOKEN_DIR)
    configuration = client.Configuration()
    token, ca = str(where / "token"), str(where / "ca.crt")
    loader = InClusterConfigLoader(token, ca)  # type: ignore[no-untyped-call]
    loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
    configuration.retries = 1
    return client.ApiClient(configuration)


class TokenStatusWriter:
    """Patches one kind of object's status through ``api_client``; never raises."""

    def __init__(self, api_client: Any = None, stream: TextIO | None = None) -> None:
        self.api_client = api_client
        self.stream = stream or sys.stderr
        self.warned = False
        self.resume = 0.0  # time.monotonic() before which no write is tried

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        if time.monotonic() < self.resume:
            return
        try:
            from kubernetes import client

            if self.api_client is None:
                self.api_client = token_api_client()
            api = client.CustomObjectsApi(self.api_client)
            api.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                PLURALS[kind],
                name,
                {"status": status},
                _request_timeout=TIMEOUT,
            )
        except Exception as err:  # progress never fails the work
            self.resume = time.monotonic() + BACKOFF
            self._warn(kind, namespace, name, err)

    def _warn(self, kind: str, namespace: str, name: str, err: Exception) -> None:
        if self.warned:
            return
        self.warned = True
        code = getattr(err, "status", None)
        why = f"{code} {getattr(err, 'reason', '') or ''}".strip() if code else type(err).__name__
        print(
            f"ferry: progress does not reach {kind} {namespace}/{name}'s status ({why}); "
            "the work goes on",
            file=self.stream,
        )
