"""Work run beside the caller goes to a few long-lived threads, not one new per call."""

from __future__ import annotations

import threading

import pytest

from controller.engine.beside import WORKERS, at_once, beside


def test_work_runs_on_reused_worker_threads() -> None:
    caller = threading.get_ident()
    idents = {beside(threading.get_ident).result() for _ in range(200)}
    assert caller not in idents
    assert 1 <= len(idents) <= WORKERS


def test_a_failure_reaches_the_caller() -> None:
    def fail(message: str) -> None:
        raise ValueError(message)

    with pytest.raises(ValueError, match="the source went away"):
        beside(fail, "the source went away").result()


def test_callers_at_once_share_the_workers() -> None:
    """More callers than workers, each waiting on its own work: all finish."""
    results: list[int] = []
    gate = threading.Barrier(WORKERS * 2)

    def caller(n: int) -> None:
        gate.wait()
        results.append(beside(pow, n, 2).result())

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(WORKERS * 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [n * n for n in range(WORKERS * 2)]


def test_at_once_waits_for_both_sides_even_when_one_fails() -> None:
    """Neither side's connection may still be in use once the caller goes on."""
    finished = threading.Event()
    started = threading.Event()

    def slow() -> str:
        started.set()
        finished.wait(0.2)  # still reading when the other side fails
        finished.set()
        return "there"

    def fail() -> str:
        started.wait(5)
        raise ValueError("this side failed")

    with pytest.raises(ValueError, match="this side failed"):
        at_once(slow, fail)
    assert finished.is_set()
    assert at_once(lambda: 1, lambda: 2) == (1, 2)
