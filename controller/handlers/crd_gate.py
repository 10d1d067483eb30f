"""Reconcile nothing until the installed CRDs are the ones this operator was built with.

``helm upgrade`` leaves a chart's CRDs as they were, so a new operator can start against
old CRDs whose schemas prune the fields it writes. Before Kopf starts (``runtime.run``),
:class:`CrdGate` reads each of Ferry's CRDs and compares its schema-digest annotation
with :data:`controller.api.crd_schema.EXPECTED`. While any differs the operator stays up
but idle: it logs one line per CRD naming what it found, what it expects and the fix,
posts a Warning Event on the CRD, sets ``ferry_crd_schema_mismatch{crd}`` to 1, answers
its liveness probe, and checks again every ``FERRY_CRD_CHECK_SECONDS`` (30). Once every
CRD matches it starts reconciling, without a restart.

Staying up rather than exiting keeps the metric scrapeable and the pod out of
CrashLoopBackOff's growing delays, so the operator starts seconds after the CRDs are
applied. ``ferry run --skip-crd-check`` is the escape hatch (a cluster where the
operator may not read CRDs): it logs a warning at every start and sets
``ferry_crd_schema_check_skipped``.
"""

from __future__ import annotations

import http.server
import json
import logging
import os
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from controller.api.crd_digest import CrdFinding, check_crd, unreadable
from controller.api.crd_schema import EXPECTED
from controller.api.reasons import EventType, OperatorReason
from controller.errors import FerryError
from controller.handlers import metrics
from controller.k8s.crds import CrdReader, KubeCrds

log = logging.getLogger("ferry.crds")
CHECK_SECONDS = float(os.environ.get("FERRY_CRD_CHECK_SECONDS", "30"))


class CrdGate:
    """Checks the CRDs, reports each change once, and waits until all are current."""

    def __init__(
        self,
        reader: CrdReader,
        expected: Mapping[str, str] = EXPECTED,
        *,
        interval: float = CHECK_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.reader = reader
        self.expected = expected
        self.interval = interval
        self.sleep = sleep
        self.reported: dict[str, CrdFinding] = {}

    def _read(self, name: str) -> tuple[CrdFinding, dict[str, Any] | None]:
        try:
            crd = self.reader.crd(name)
        except FerryError as err:
            return unreadable(name, self.expected[name], str(err)), None
        return check_crd(name, crd, self.expected[name]), crd

    def check(self) -> bool:
        """One round over every CRD; ``True`` when all are current."""
        current = True
        for name in sorted(self.expected):
            finding, crd = self._read(name)
            metrics.CRD_SCHEMA_MISMATCH.labels(name).set(0 if finding.current else 1)
            self._report(finding, crd)
            current = current and finding.current
        return current

    def _report(self, finding: CrdFinding, crd: dict[str, Any] | None) -> None:
        before = self.reported.get(finding.name)
        self.reported[finding.name] = finding
        if before == finding or (before is None and finding.current):
            return
        if finding.current:
            log.info("%s now; its mismatch is resolved", finding.message())
            self._event(finding, crd, EventType.NORMAL, OperatorReason.CRD_SCHEMA_CURRENT)
        else:
            log.error("%s", finding.message())
            self._event(finding, crd, EventType.WARNING, OperatorReason.CRD_SCHEMA_MISMATCH)

    def _event(
        self, finding: CrdFinding, crd: dict[str, Any] | None, type_: str, reason: str
    ) -> None:
        try:
            self.reader.crd_event(finding.name, crd, type_, reason, finding.message())
        except FerryError as err:  # the log line and the metric still tell
            log.warning("could not post the %s event on CRD %s: %s", reason, finding.name, err)

    def wait(self, liveness: str | None = None) -> None:
        """Return once every CRD is current; until then answer ``liveness`` ourselves."""
        probe: WaitingProbe | None = None
        rounds = 0
        try:
            while not self.check():
                if rounds == 0 and liveness:
                    probe = WaitingProbe.start(liveness)
                rounds += 1
                self.sleep(self.interval)
        finally:
            if probe is not None:
                probe.stop()
        if rounds:
            log.info("every CRD is current: starting to reconcile")
        else:
            log.info("Ferry's %d CRDs are the ones this operator expects", len(self.expected))


class WaitingProbe:
    """The liveness endpoint while the operator waits (Kopf serves it only once started):
    the operator is alive and doing what it should, so the probe passes."""

    def __init__(self, server: http.server.ThreadingHTTPServer) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)

    @classmethod
    def start(cls, url: str) -> WaitingProbe | None:
        parts = urllib.parse.urlsplit(url)
        path = parts.path or "/"

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = self.path.split("?")[0] == path
                body = json.dumps({"waiting": "CRDs"} if found else {}).encode()
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:  # probes every few seconds: no noise
                pass

        try:
            server = http.server.ThreadingHTTPServer(
                (parts.hostname or "", 80 if parts.port is None else parts.port), Handler
            )
        except OSError as err:
            log.warning("cannot answer liveness at %s while waiting: %s", url, err)
            return None
        probe = cls(server)
        probe.thread.start()
        return probe

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def before_reconciling(*, check: bool, liveness: str | None) -> None:
    """The start-up gate of ``ferry run``."""
    if not check:
        metrics.CRD_CHECK_SKIPPED.set(1)
        log.warning(
            "CRD schema check SKIPPED (--skip-crd-check): if the installed CRDs are older "
            "than this operator, the API server silently drops the fields they lack"
        )
        return
    CrdGate(KubeCrds()).wait(liveness)
