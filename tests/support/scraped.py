"""A real Prometheus scraping the traffic simulator, shared by the tiers that read it whole.

`scraped_simulator(seed, add_scenarios, settle_seconds)` builds the simulator, lets the tier
add its scenarios (each its own service, so tests never interfere), starts a Prometheus that
scrapes it every second, waits `settle_seconds` so the windows hold a few scrapes, and yields a
`Sandbox`. The tiers' session fixtures (tests/analysis, tests/metrics) are made of it; the
binary comes through `support.binaries.require_binary`, so a missing Prometheus skips locally and
fails under CI=true.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from canary_sandbox.prometheus import PrometheusProcess
from canary_sandbox.traffic import TrafficSimulator
from support.binaries import require_binary


@dataclass(frozen=True)
class Sandbox:
    simulator: TrafficSimulator
    prometheus: PrometheusProcess
    started: datetime  # when Prometheus started scraping (before the settle wait)

    @property
    def url(self) -> str:
        return self.prometheus.url


@contextmanager
def scraped_simulator(
    seed: int, add_scenarios: Callable[[TrafficSimulator], None], settle_seconds: float
) -> Iterator[Sandbox]:
    require_binary("prometheus")
    simulator = TrafficSimulator(seed=seed)
    add_scenarios(simulator)
    with simulator, PrometheusProcess(targets=[simulator.address], scrape_interval="1s") as prom:
        started = datetime.now(UTC)
        time.sleep(settle_seconds)
        yield Sandbox(simulator, prom, started)
