"""The main flows with the operator as a local process (see ``tests/e2e/main_flows.py``;
``tests/node/test_main_flows.py`` runs the same functions against the operator's pod)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e import main_flows
from tests.e2e.conftest import Kubectl
from tests.harness.dbservers import RunningServer

pytestmark = pytest.mark.e2e


@pytest.fixture
def site(
    kubectl: Kubectl,
    namespace: str,
    operator: Any,
    postgres_server: RunningServer,
    tmp_path: Path,
) -> main_flows.Site:
    """The local process reaches PostgreSQL on 127.0.0.1 and the store in tmp_path."""
    operator_urls, host_urls = main_flows.build_databases(postgres_server, lambda url: url)
    return main_flows.Site(
        kubectl=kubectl,
        namespace=namespace,
        operator_urls=operator_urls,
        host_urls=host_urls,
        store=str(tmp_path / "backups"),
        operator_log=operator.tail,
    )


@pytest.mark.parametrize("flow", main_flows.FLOWS.values(), ids=main_flows.FLOWS.keys())
def test_main_flow(site: main_flows.Site, flow: Any) -> None:
    flow(site)
