"""The main flows against the operator's pod (see ``tests/e2e/main_flows.py``): the same
test functions the e2e tier runs against a local process."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e import main_flows

pytestmark = pytest.mark.node


@pytest.mark.parametrize("flow", main_flows.FLOWS.values(), ids=main_flows.FLOWS.keys())
def test_main_flow(site: main_flows.Site, flow: Any) -> None:
    flow(site)
