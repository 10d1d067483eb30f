"""The application in `make demo`: a small stand-in for NocoBase, run as a Deployment.

Two pods of Python's http.server (from the base image, hack/image/base.sh) behind a
Service serve pre-release. Its Environment declares them (``spec.application``), so the
operator quiesces the Deployment before it writes, restores its replica count after,
and waits until the Service answers. :func:`watch` prints the Deployment's replicas and
the object's phase each time one changes, while a Migration or Restore runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

NAME = "web"
REPLICAS = 2
PORT = 8000


def manifests(image: str) -> str:
    """The stand-in's Deployment and Service (the test tier's, tests/node/test_application.py)."""
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {NAME}}}
spec:
  replicas: {REPLICAS}
  selector: {{matchLabels: {{app: {NAME}}}}}
  template:
    metadata: {{labels: {{app: {NAME}}}}}
    spec:
      terminationGracePeriodSeconds: 1
      securityContext: {{runAsNonRoot: true, runAsUser: 65534}}
      containers:
      - name: {NAME}
        image: {image}
        imagePullPolicy: Never
        command: [python3, -m, http.server, "{PORT}", --directory, /usr/share]
        ports: [{{containerPort: {PORT}}}]
        readinessProbe: {{httpGet: {{path: /, port: {PORT}}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: {NAME}}}
spec:
  selector: {{app: {NAME}}}
  ports: [{{port: {PORT}, targetPort: {PORT}}}]
"""


def application(namespace: str) -> str:
    """The ``spec.application`` block of pre-release, indented for the Environment."""
    return f"""  application:
    workload: {{kind: Deployment, name: {NAME}}}
    quiesce: {{timeoutSeconds: 60}}
    health: {{url: "http://{NAME}.{namespace}.svc:{PORT}/", timeoutSeconds: 60}}
"""


@contextmanager
def watch(read: Callable[[str, str, str], str], kind: str, name: str) -> Iterator[None]:
    """Print ``replicas`` (spec/ready) of the stand-in and the phase of ``kind/name``
    whenever one of them changes, until the block ends. ``read(kind, name, jsonpath)``
    is one ``kubectl get`` of a field."""
    stop = threading.Event()
    start = time.monotonic()

    def look() -> str:
        # The phase first: the replicas read after it are never older than it.
        phase = read(kind, name, "{.status.phase}") or "-"
        spec = read("deployment", NAME, "{.spec.replicas}") or "?"
        ready = read("deployment", NAME, "{.status.readyReplicas}") or "0"
        return f"Deployment/{NAME} replicas {spec} (ready {ready})   {kind}/{name} {phase}"

    def loop() -> None:
        last = ""
        while True:
            line = look()
            if line != last:
                print(f"  [{time.monotonic() - start:5.1f} s] {line}", flush=True)
                last = line
            if stop.wait(0.5):
                return

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        time.sleep(1)  # the last change (ready again) is shown
        stop.set()
        thread.join(timeout=10)
