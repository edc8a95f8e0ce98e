"""A real Prometheus scraping the traffic simulator, once per session, with every scenario the
metrics tests read already running: each scenario is its own service, so tests never interfere."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from binary_support import require_binary
from metrics_support import SETTLE_SECONDS, Sandbox, add_scenarios

from canary.sandbox.prometheus import PrometheusProcess
from canary.sandbox.traffic import TrafficSimulator


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    require_binary("prometheus")
    simulator = TrafficSimulator(seed=7)
    add_scenarios(simulator)
    with simulator, PrometheusProcess(targets=[simulator.address], scrape_interval="1s") as prom:
        time.sleep(SETTLE_SECONDS)
        yield Sandbox(simulator, prom)
