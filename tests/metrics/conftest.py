"""A real Prometheus scraping the traffic simulator, once per session, with every scenario the
metrics tests read already running: each scenario is its own service, so tests never interfere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from metrics_helpers import SETTLE_SECONDS, add_scenarios
from support.scraped import Sandbox, scraped_simulator


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with scraped_simulator(7, add_scenarios, SETTLE_SECONDS) as scraped:
        yield scraped
