"""A real Prometheus scraping the traffic simulator, once per session, for the analysis tests.

Each scenario is its own service with stable v1 and canary v2 on a 50/50 split.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from analysis_helpers import NAMESPACE

from canary.sandbox.prometheus import PrometheusProcess, find_prometheus
from canary.sandbox.traffic import Split, TrafficSimulator

SETTLE_SECONDS = 8.0  # a few scrapes of every scenario before the first test reads them
SCENARIOS: dict[str, tuple[float, dict[str, float]]] = {
    # service: (requests per second, canary behaviour); stable answers 0.5 % 5xx
    "healthy": (200, {"error_rate": 0.005}),
    "tenfold": (200, {"error_rate": 0.05}),
    "slow": (200, {"error_rate": 0.005, "p50_ms": 60, "p99_ms": 900}),
    "thin": (2, {"error_rate": 0.005}),
}


@dataclass(frozen=True)
class Sandbox:
    simulator: TrafficSimulator
    prometheus: PrometheusProcess
    started: datetime

    @property
    def url(self) -> str:
        return self.prometheus.url


def require_prometheus() -> None:
    if find_prometheus() is None:
        message = "the prometheus binary is not on PATH (Debian: apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def add_scenarios(simulator: TrafficSimulator) -> None:
    for name, (rps, canary) in SCENARIOS.items():
        simulator.add_service(name, NAMESPACE, versions=("v1", "v2"), rps=rps)
        simulator.set_version(NAMESPACE, name, "v1", error_rate=0.005)
        simulator.set_version(NAMESPACE, name, "v2", **canary)
        simulator.set_split(NAMESPACE, name, Split({"v1": 50, "v2": 50}))


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    require_prometheus()
    simulator = TrafficSimulator(seed=9)
    add_scenarios(simulator)
    with simulator, PrometheusProcess(targets=[simulator.address], scrape_interval="1s") as prom:
        started = datetime.now(UTC)
        time.sleep(SETTLE_SECONDS)
        yield Sandbox(simulator, prom, started)
