"""``make test``'s lanes (hack/run_tests.py): a deadline stops them with a report."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "hack" / "run_tests.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("run_tests", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def sleeper(seconds: float) -> list[str]:
    """A process that reports the interrupt it gets, as pytest does, and exits 2."""
    code = (
        "import sys, time\n"
        "try:\n"
        f"    time.sleep({seconds})\n"
        "except KeyboardInterrupt:\n"
        "    print('interrupted while sleeping', flush=True)\n"
        "    sys.exit(2)\n"
    )
    return [sys.executable, "-c", code]


def test_the_deadline_interrupts_the_lanes_still_running(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lanes = load()
    monkeypatch.setenv("FERRY_TESTS_DEADLINE", str(time.time() + 2))
    with tempfile.TemporaryFile("w+") as one, tempfile.TemporaryFile("w+") as two:
        started = time.monotonic()
        results = lanes._side_by_side(
            [[sys.executable, "-c", "pass"], sleeper(300), sleeper(300)], [one, two]
        )
        assert time.monotonic() - started < 60
        one.seek(0)
        assert one.read() == "interrupted while sleeping\n"
    assert [code for _, code in results] == [0, 2, 2]
    assert "deadline has passed" in capsys.readouterr().out


def test_without_a_deadline_the_lanes_run_to_their_end(monkeypatch: pytest.MonkeyPatch) -> None:
    lanes = load()
    monkeypatch.delenv("FERRY_TESTS_DEADLINE", raising=False)
    with tempfile.TemporaryFile("w+") as one:
        results = lanes._side_by_side([sleeper(0), sleeper(3)], [one])
    assert [code for _, code in results] == [0, 0]
    assert results[1][0] >= 3
