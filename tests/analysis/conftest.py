"""A real Prometheus scraping the traffic simulator, once per session, for the analysis tests.

Each scenario (analysis_helpers.SCENARIOS) is its own service, stable v1 and canary v2 on 50/50.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from analysis_helpers import SETTLE_SECONDS, add_scenarios
from support.scraped import Sandbox, scraped_simulator


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    with scraped_simulator(9, add_scenarios, SETTLE_SECONDS) as scraped:
        yield scraped
