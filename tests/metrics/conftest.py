"""A real Prometheus scraping the traffic simulator, once per session, with every scenario the
metrics tests read already running: each scenario is its own service, so tests never interfere."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from metrics_support import SETTLE_SECONDS, Sandbox, add_scenarios

from canary.sandbox.prometheus import PrometheusProcess, find_prometheus
from canary.sandbox.traffic import TrafficSimulator


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    if find_prometheus() is None:
        message = "the prometheus binary is not on PATH (Debian: apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    simulator = TrafficSimulator(seed=7)
    add_scenarios(simulator)
    with simulator, PrometheusProcess(targets=[simulator.address], scrape_interval="1s") as prom:
        time.sleep(SETTLE_SECONDS)
        yield Sandbox(simulator, prom)
