"""The rule, natural-key, ``ignoreColumns``, reference-remapping and fidelity tests
again, with in-database digests forced off (``FERRY_FAST_PATH=0``).

Their own modules run them on the default path, where same-dialect tables are compared
in place; here the very same test functions and fixtures are collected a second time,
under an autouse fixture, so both paths keep passing every one of them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.db import test_fidelity, test_id_mapping, test_rules_apply

for _module in (test_rules_apply, test_id_mapping, test_fidelity):
    globals().update(
        {name: value for name, value in vars(_module).items() if not name.startswith("__")}
    )


@pytest.fixture(autouse=True)
def python_path_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("FERRY_FAST_PATH", "0")
    yield
