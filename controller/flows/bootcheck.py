"""Boot the application against a copy of its database, and see whether it is healthy.

A rehearsal (controller/commands/rehearsal.py) or a drill calls :func:`boot_check` with
the scratch copy's URL while the copy still exists. One Pod is made from the declared
workload's pod template (same image, volumes, env) with ``bootCheck.env`` pointing it at
the copy, ``restartPolicy: Never`` (a crash is an answer, not a retry), and labels of its
own, so neither the workload's Service nor its controller selects it: it never serves
traffic and is never adopted. Its health endpoint is asked on the pod IP until it
answers 2xx, the pod stops, or the timeout passes. The pod is deleted whatever happened;
its ownerReference to the Migration (or Backup) and the deletion of leftovers at the
start of the next boot check cover a crash of the operator.
"""

from __future__ import annotations

import copy as copying
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from controller.api.bootcheck import BootCheckSpec, BootResult
from controller.api.environment_application import ApplicationSpec
from controller.db.urls import parse
from controller.errors import InvalidInput
from controller.k8s.bootcheck import BootPods
from controller.k8s.workloads import REQUEST_TIMEOUT

POLL = 1.0  # seconds between two looks at the pod
LABEL = "ferry.dev/boot-check"  # its value: the workload's name
OWNER_LABEL = "ferry.dev/boot-check-owner"


@dataclass(frozen=True)
class BootOwner:
    """The object the boot pod belongs to (a Migration, or a Backup for a drill)."""

    kind: str
    name: str
    uid: str
    api_version: str = "ferry.dev/v1alpha1"

    @classmethod
    def of(cls, kind: str, body: Mapping[str, Any]) -> BootOwner:
        """``body``'s own kind is not trusted: a listed item carries none."""
        meta = body.get("metadata") or {}
        return cls(kind, str(meta.get("name")), str(meta.get("uid")))


def boot_client_missing(environment: str) -> str:
    return (
        f"Environment {environment} declares spec.application.bootCheck; "
        "no client to create its pod"
    )


def coordinates(url: str) -> dict[str, str]:
    """The copy's placeholders: ``{database}``, ``{host}``, ``{port}``, ``{user}``."""
    parsed = parse(url)
    if parsed.get_backend_name() == "sqlite":  # {database}: the file's path
        return {"database": str(parsed.database or ""), "host": "", "port": "", "user": ""}
    if not parsed.host:
        raise InvalidInput("a boot check needs the copy's host")
    port = parsed.port or {"postgresql": 5432}.get(parsed.get_backend_name(), 3306)
    return {
        "database": str(parsed.database or ""),
        "host": str(parsed.host),
        "port": str(port),
        "user": str(parsed.username or ""),
    }


def _with_env(container: dict[str, Any], values: Mapping[str, str]) -> None:
    kept = [e for e in container.get("env") or [] if e.get("name") not in values]
    container["env"] = kept + [{"name": k, "value": v} for k, v in values.items()]


def _volumes(
    pod_spec: Mapping[str, Any], spec: BootCheckSpec, app: ApplicationSpec
) -> list[dict[str, Any]]:
    """The template's volumes, those of ``emptyDirVolumes`` empty; a StatefulSet's claim
    templates are mounted without a volume in the template, so a mounted name counts."""
    volumes = list(pod_spec.get("volumes") or [])
    mounted = {
        m.get("name")
        for key in ("initContainers", "containers")
        for c in pod_spec.get(key) or []
        for m in c.get("volumeMounts") or []
    }
    declared = {v.get("name") for v in volumes}
    missing = sorted(set(spec.empty_dir_volumes) - declared - mounted)
    if missing:
        raise InvalidInput(
            f"spec.application.bootCheck.emptyDirVolumes: the pod template of "
            f"{app.workload} has no volume {', '.join(missing)}"
        )
    empty = set(spec.empty_dir_volumes)
    kept = [{"name": v["name"], "emptyDir": {}} if v.get("name") in empty else v for v in volumes]
    return kept + [{"name": n, "emptyDir": {}} for n in spec.empty_dir_volumes if n not in declared]


def boot_pod(
    template: Mapping[str, Any],
    spec: BootCheckSpec,
    copy_url: str,
    app: ApplicationSpec,
    owner: BootOwner,
) -> dict[str, Any]:
    """The Pod to create: the template's spec, pointed at the copy, with labels of its
    own (never the template's, which the Service and the workload select)."""
    pod_spec = copying.deepcopy(dict(template.get("spec") or {}))
    pod_spec["restartPolicy"] = "Never"
    values = spec.rendered(coordinates(copy_url))
    for key in ("initContainers", "containers"):
        for container in pod_spec.get(key) or []:
            _with_env(container, values)
    pod_spec["volumes"] = _volumes(pod_spec, spec, app)
    name = f"{app.name[:40].rstrip('-.')}-boot-{secrets.token_hex(4)}"
    metadata = {
        "name": name,
        "labels": {LABEL: app.name[:63], OWNER_LABEL: owner.name[:63]},
        "annotations": {"ferry.dev/boot-check-of": f"{owner.kind}/{owner.name}"},
        "ownerReferences": [
            {
                "apiVersion": owner.api_version,
                "kind": owner.kind,
                "name": owner.name,
                "uid": owner.uid,
            }
        ],
    }
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


@dataclass(frozen=True)
class BootCheck:
    """One boot check, ready to run against a copy's URL (the commands call it)."""

    pods: BootPods
    app: ApplicationSpec
    namespace: str
    owner: BootOwner
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def __call__(self, copy_url: str) -> BootResult:
        spec = self.app.boot_check
        assert spec is not None
        selector = f"{LABEL}={self.app.name[:63]}"
        self.pods.delete_pods(self.namespace, selector)  # a crash's leftover
        started = self.clock()
        kind, name = self.app.kind.value, self.app.name
        template = self.pods.pod_template(kind, self.namespace, name)
        if template is None:
            return BootResult(False, f"{kind} {name} not found", 0.0, "")
        try:
            body = boot_pod(template, spec, copy_url, self.app, self.owner)
        except InvalidInput as err:  # the template does not fit the declared check
            return BootResult(False, err.message, 0.0, "")
        pod = body["metadata"]["name"]
        try:
            refused = self.pods.create_pod(self.namespace, body)
            if refused is not None:
                return BootResult(False, f"the boot pod was refused: {refused}", 0.0, pod)
            healthy, detail = self._watch(pod, spec)
        finally:
            self.pods.delete_pods(self.namespace, selector)
        return BootResult(healthy, detail, self.clock() - started, pod)

    def _watch(self, pod: str, spec: BootCheckSpec) -> tuple[bool, str]:
        started = self.clock()
        deadline = started + spec.timeout_seconds
        last = "no answer yet"
        while True:
            state = self.pods.pod_state(self.namespace, pod)
            if state is None:
                return False, "the boot pod was deleted before it answered"
            if state.ended:
                return False, f"the application stopped: {state.ended}"
            if state.ip:
                host = f"[{state.ip}]" if ":" in state.ip else state.ip
                health = self.pods.health(f"http://{host}:{spec.port}{spec.path}", REQUEST_TIMEOUT)
                if health.ok:
                    return True, f"{health.detail} after {self.clock() - started:.1f}s"
                last = health.detail
            else:
                last = f"pod {state.phase}"
            if self.clock() >= deadline:
                return False, f"not healthy within {spec.timeout_seconds}s (last: {last})"
            self.sleep(POLL)
