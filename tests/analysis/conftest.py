"""A real Prometheus scraping the traffic simulator, once per session, for the analysis tests.

Each scenario (analysis_helpers.SCENARIOS) is its own service, stable v1 and canary v2 on 50/50.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from analysis_helpers import SETTLE_SECONDS, Sandbox, add_scenarios
from binary_support import require_binary

from canary.sandbox.prometheus import PrometheusProcess
from canary.sandbox.traffic import TrafficSimulator


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    require_binary("prometheus")
    simulator = TrafficSimulator(seed=9)
    add_scenarios(simulator)
    with simulator, PrometheusProcess(targets=[simulator.address], scrape_interval="1s") as prom:
        started = datetime.now(UTC)
        time.sleep(SETTLE_SECONDS)
        yield Sandbox(simulator, prom, started)
