"""The Prometheus-less provider (`--metrics-source scrape`) reading the simulator's /metrics.

Covers: rates over the window from two scrapes (no data until a scrape one window old exists),
a healthy canary passing, 10 % 5xx failing the success rate, a slow canary failing the latency
gate, too few requests as no data, custom queries and an unreachable endpoint as errors, and
histogram_quantile's interpolation. The simulator runs thread-free (`advance`), and the
provider's clock is the simulated time.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from canary.core.model import Rollout
from canary.core.status import Verdict
from canary.metrics.scrape import ScrapeSource, histogram_quantile
from canary_sandbox.stack import example_release
from canary_sandbox.traffic import Split, TrafficSimulator


class SimulatedEndpoint:
    """The simulator's /metrics text at simulated times; the provider's fetch and clock."""

    def __init__(self, **canary: Any) -> None:
        self.simulator = TrafficSimulator(seed=3)
        self.simulator.add_service("ui", "shop", versions=("v1", "v2"), rps=100)
        self.simulator.set_version("shop", "ui", "v2", **canary)
        self.simulator.set_split("shop", "ui", Split({"v1": 50, "v2": 50}))
        self.now = 0.0

    def fetch(self, url: str, timeout: float) -> str:
        assert url == "http://simulator:9100/metrics"
        return self.simulator.metrics_text()

    def clock(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.simulator.advance(seconds)
        self.now += seconds


def rollout(**analysis: Any) -> Rollout:
    body = example_release()
    body["spec"]["prometheus"] = {"url": "http://simulator:9100"}
    body["spec"]["analysis"].update({"interval": "1s", "window": "10s", **analysis})
    return Rollout.model_validate(body)


def verdicts(endpoint: SimulatedEndpoint, subject: Rollout, checks: int = 3) -> list[Any]:
    source = ScrapeSource(fetch=endpoint.fetch, clock=endpoint.clock)
    results: list[Any] = []
    for _ in range(checks):
        results = list(source.evaluate(subject))
        endpoint.advance(6)
    return results


def test_no_data_until_a_scrape_one_window_old() -> None:
    endpoint = SimulatedEndpoint()
    source = ScrapeSource(fetch=endpoint.fetch, clock=endpoint.clock)
    first = source.evaluate(rollout())
    assert {r.verdict for r in first} == {Verdict.NO_DATA}


def test_a_healthy_canary_passes() -> None:
    results = verdicts(SimulatedEndpoint(), rollout())
    assert [r.verdict for r in results] == [Verdict.PASS, Verdict.PASS]
    assert results[0].value == pytest.approx(100.0)
    assert results[0].samples is not None and results[0].samples > 300


def test_ten_percent_errors_fail_the_success_rate() -> None:
    results = verdicts(SimulatedEndpoint(error_rate=0.10), rollout())
    success = results[0]
    assert success.verdict is Verdict.FAIL
    assert success.value is not None and 80 < success.value < 97


def test_a_slow_canary_fails_the_latency_gate() -> None:
    results = verdicts(SimulatedEndpoint(p50_ms=20, p99_ms=800), rollout())
    assert results[1].verdict is Verdict.FAIL
    assert results[1].value is not None and results[1].value > 500


def test_too_few_requests_is_no_data() -> None:
    results = verdicts(SimulatedEndpoint(), rollout(minRequests=100_000))
    assert {r.verdict for r in results} == {Verdict.NO_DATA}


def test_custom_queries_need_prometheus() -> None:
    subject = rollout(gates=[{"name": "custom", "query": "vector(1)", "max": 2}])
    (result,) = verdicts(SimulatedEndpoint(), subject)
    assert result.verdict is Verdict.ERROR
    assert "needs Prometheus" in (result.message or "")


def test_an_unreachable_endpoint_is_an_error() -> None:
    subject = rollout()
    subject = subject.model_copy(
        update={"spec": subject.spec.model_copy(update={"prometheus": _ref("http://127.0.0.1:9")})}
    )
    results = ScrapeSource().evaluate(subject)
    assert {r.verdict for r in results} == {Verdict.ERROR}
    assert "http://127.0.0.1:9/metrics" in (results[0].message or "")


def _ref(url: str) -> Any:
    from canary.core.spec import PrometheusRef

    return PrometheusRef(url=url, timeout="1s")  # type: ignore[arg-type]


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = {10.0: 50.0, 20.0: 90.0, 50.0: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, buckets) == pytest.approx(10.0)
    assert histogram_quantile(0.7, buckets) == pytest.approx(15.0)
    assert histogram_quantile(0.95, buckets) == pytest.approx(35.0)
    assert math.isnan(histogram_quantile(0.5, {math.inf: 0.0}))
