"""An in-memory :class:`~controller.k8s.workloads.Workloads` for the flow tests.

Workloads keep a replica count; their pods are ``replicas`` names plus any the test
says linger after a scale to zero (terminating pods) for a number of looks. The health
check answers from a list (the last answer repeats). Every call is recorded, together
with what the owning object's status said at that moment (read through the fake
cluster), so a test can prove the replica count was recorded before the scale to zero.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from controller.errors import TemporaryError
from controller.k8s.workloads import Health, Scale


class FakeWorkloads:
    def __init__(
        self,
        replicas: dict[str, int] | None = None,
        *,
        health: list[Health] | None = None,
        lingering: int = 0,
        witness: Callable[[], Any] | None = None,
        on_health: Callable[[], None] | None = None,
    ) -> None:
        self.on_health = on_health  # what the application does while it is asked
        self.replicas = dict(replicas or {})  # "Deployment/web" → count
        self.answers = list(health or [Health(True, "HTTP 200")])
        self.lingering = lingering  # looks at the pods that still find one after scaling
        self.witness = witness  # what the owning object's status says, per call
        self.calls: list[tuple[Any, ...]] = []
        self.seen: list[Any] = []  # the witness at each call
        self.refuse: set[str] = set()  # method names that fail as an unanswered API does

    def _record(self, *call: Any) -> None:
        if call[0] in self.refuse:
            raise TemporaryError(f"Kubernetes API: {call[0]}: 503 Service Unavailable", delay=5)
        self.calls.append(call)
        self.seen.append(self.witness() if self.witness else None)

    def scale(self, kind: str, namespace: str, name: str) -> Scale | None:
        self._record("scale", f"{kind}/{name}")
        count = self.replicas.get(f"{kind}/{name}")
        return None if count is None else Scale(count, f"app={name}")

    def set_replicas(self, kind: str, namespace: str, name: str, replicas: int) -> bool:
        self._record("set_replicas", f"{kind}/{name}", replicas)
        if f"{kind}/{name}" not in self.replicas:
            return False
        self.replicas[f"{kind}/{name}"] = replicas
        return True

    def pods(self, namespace: str, selector: str) -> list[str]:
        self._record("pods", selector)
        name = selector.removeprefix("app=")
        count = next((n for w, n in self.replicas.items() if w.endswith(f"/{name}")), 0)
        if count == 0 and self.lingering > 0:
            self.lingering -= 1
            return [f"{name}-terminating"]
        return [f"{name}-{i}" for i in range(count)]

    def health(self, url: str, timeout: float) -> Health:
        self._record("health", url)
        if self.on_health is not None:
            self.on_health()
        return self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]

    def steps(self) -> list[tuple[Any, ...]]:
        """The calls that change or judge something (reads of scale and pods left out)."""
        return [c for c in self.calls if c[0] in ("set_replicas", "health")]


class Clock:
    """A monotonic clock that moves only when the flow sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def options(self) -> dict[str, Any]:
        return {"sleep": self.sleep, "clock": self}
