"""A real Prometheus scraping the traffic simulator, once per session, with every scenario the
metrics tests read already running: each scenario is its own service, so tests never interfere."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from metrics_helpers import NAMESPACE

from canary.sandbox.prometheus import PrometheusProcess, find_prometheus
from canary.sandbox.traffic import Split, TrafficSimulator

INJECTION = 'ui"} or vector(1) #'
WEIRD_VERSION = 'v"2\\n}\n{x=~".*"} \' $1 ` é ☃ \ufffd'
SETTLE_SECONDS = 4.0  # let the 10s windows hold a few scrapes before the first test reads them


@dataclass(frozen=True)
class Sandbox:
    simulator: TrafficSimulator
    prometheus: PrometheusProcess

    @property
    def url(self) -> str:
        return self.prometheus.url


def add_scenarios(simulator: TrafficSimulator) -> None:
    """One service per scenario, canary v2 next to stable v1 unless the scenario says otherwise."""
    half = Split({"v1": 50, "v2": 50})
    scenarios = {
        "healthy": {},
        "errors": {"error_rate": 0.10},
        "slow": {"p50_ms": 20, "p99_ms": 800},
        INJECTION: {"error_rate": 0.5},
    }
    for name, behaviour in scenarios.items():
        simulator.add_service(name, NAMESPACE, versions=("v1", "v2"), rps=100)
        simulator.set_version(NAMESPACE, name, "v2", **behaviour)
        simulator.set_split(NAMESPACE, name, half)
    simulator.add_service("idle", NAMESPACE, versions=("v1", "v2"), rps=100)
    simulator.set_split(NAMESPACE, "idle", Split({"v1": 100}))
    simulator.add_service("trickle", NAMESPACE, versions=("v1", "v2"), rps=1)
    simulator.set_split(NAMESPACE, "trickle", half)
    simulator.add_service("mirrored", NAMESPACE, versions=("v1", "v2"), rps=50)
    simulator.set_split(NAMESPACE, "mirrored", Split({"v1": 100, "v2": 0}, "v2", 100.0))
    simulator.add_service("weird", NAMESPACE, versions=(WEIRD_VERSION,), rps=20)


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
