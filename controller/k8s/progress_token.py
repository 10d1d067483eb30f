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

from controller.errors import FerryError
from controller.k8s.client import Cluster, KubeCluster
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
    """Patches objects' status with the pod's token (:class:`KubeCluster`); never raises."""

    def __init__(self, cluster: Cluster | None = None, stream: TextIO | None = None) -> None:
        self.cluster = cluster
        self.stream = stream or sys.stderr
        self.warned = False
        self.resume = 0.0  # time.monotonic() before which no write is tried

    def patch_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        if time.monotonic() < self.resume:
            return
        try:
            if self.cluster is None:
                self.cluster = KubeCluster(token_api_client(), request_timeout=TIMEOUT)
            self.cluster.patch_status(kind, namespace, name, status)
        except Exception as err:  # progress never fails the work
            self.resume = time.monotonic() + BACKOFF
            if not self.warned:
                self.warned = True
                # A FerryError's message names the call and the API's status and reason
                # only; anything else, its type alone (never the token, never a body).
                why = err.message if isinstance(err, FerryError) else type(err).__name__
                where = f"{kind} {namespace}/{name}"
                print(f"ferry: progress does not reach {where} ({why}); the work goes on",
                      file=self.stream)  # fmt: skip
