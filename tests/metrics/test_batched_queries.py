"""BatchedPrometheusSource against the real Prometheus: queries per bucket, same verdicts.

Covers: queries per bucket equal the number of gate kinds (plus the request count) whatever
the number of Rollouts, where the unbatched source makes one per gate per Rollout; a new bucket
asks again; every scenario (healthy, errors, slow, idle, too few requests, mirrored, an
injection attempt as service name, an awkward version label) gets the verdict, threshold and
recorded query of the unbatched source; a Prometheus that is down is one failed query per
bucket and an error verdict for every gate; custom query gates stay per Rollout.
"""

from __future__ import annotations

import pytest
from metrics_helpers import INJECTION, WEIRD_VERSION, rollout
from support.scraped import Sandbox

from canary.core.model import Rollout
from canary.core.status import GateResult, Verdict
from canary.metrics.batched import BatchedPrometheusSource
from canary.metrics.prometheus import PrometheusSource

SCENARIOS = ["healthy", "errors", "slow", "idle", "trickle", "mirrored", INJECTION]
GATE_KINDS_PLUS_COUNT = 3  # request count, success rate, p99 latency


class Counter:
    def __init__(self) -> None:
        self.outcomes: list[str] = []

    def __call__(self, outcome: str) -> None:
        self.outcomes.append(outcome)


class FixedClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def many_rollouts(url: str, count: int) -> list[Rollout]:
    """`count` Rollouts over the scenarios and services nobody calls, in two namespaces."""
    services = [*SCENARIOS, *(f"absent-{index}" for index in range(count))]
    return [
        rollout(services[index], url, namespace="shop" if index < len(SCENARIOS) else "other")
        for index in range(count)
    ]


def batched(counter: Counter, clock: FixedClock) -> BatchedPrometheusSource:
    return BatchedPrometheusSource(bucket_seconds=10, on_query=counter, clock=clock)


@pytest.mark.parametrize("rollouts", [5, 60])
def test_queries_per_bucket_do_not_grow_with_rollouts(sandbox: Sandbox, rollouts: int) -> None:
    counter, clock = Counter(), FixedClock()
    source = batched(counter, clock)
    for subject in many_rollouts(sandbox.url, rollouts):
        source.evaluate(subject)
    assert counter.outcomes == ["ok"] * GATE_KINDS_PLUS_COUNT
    unbatched_counter = Counter()
    unbatched = PrometheusSource(on_query=unbatched_counter)
    for subject in many_rollouts(sandbox.url, rollouts):
        unbatched.evaluate(subject)
    assert len(unbatched_counter.outcomes) == GATE_KINDS_PLUS_COUNT * rollouts


def test_a_new_bucket_asks_again(sandbox: Sandbox) -> None:
    counter, clock = Counter(), FixedClock()
    source = batched(counter, clock)
    subjects = many_rollouts(sandbox.url, 10)
    for _ in range(2):
        for subject in subjects:
            source.evaluate(subject)
        clock.now += 10
    assert len(counter.outcomes) == 2 * GATE_KINDS_PLUS_COUNT


def comparable(result: GateResult) -> tuple[object, ...]:
    return result.name, result.verdict, result.threshold, result.query, result.value is None


@pytest.mark.parametrize(
    ("service", "canary_version"),
    [(service, None) for service in SCENARIOS] + [("weird", WEIRD_VERSION)],
)
def test_verdicts_equal_the_unbatched_source(
    sandbox: Sandbox, service: str, canary_version: str | None
) -> None:
    subject = rollout(service, sandbox.url, status_canary_version=canary_version)
    expected = PrometheusSource().evaluate(subject)
    got = BatchedPrometheusSource(bucket_seconds=10).evaluate(subject)
    assert [comparable(result) for result in got] == [comparable(r) for r in expected]
    for mine, theirs in zip(got, expected, strict=True):
        if theirs.value is not None and mine.value is not None:
            assert mine.value == pytest.approx(theirs.value, rel=0.25, abs=1.0)


def test_prometheus_down_is_one_failed_query_per_bucket_and_errors(sandbox: Sandbox) -> None:
    counter, clock = Counter(), FixedClock()
    source = batched(counter, clock)
    results = [source.evaluate(s) for s in many_rollouts("http://127.0.0.1:9", 20)]
    assert counter.outcomes == ["unreachable"]
    verdicts = {result.verdict for check in results for result in check}
    assert verdicts == {Verdict.ERROR}
    assert "counting the canary's requests failed" in (results[0][0].message or "")


def test_custom_query_gates_stay_per_rollout(sandbox: Sandbox) -> None:
    counter, clock = Counter(), FixedClock()
    source = batched(counter, clock)
    custom = {
        "name": "requests",
        "query": 'sum(rate(istio_requests_total{destination_version="{{ canary.version }}"}[1m]))',
        "min": 0,
    }
    for _ in range(4):
        source.evaluate(rollout("healthy", sandbox.url, gates=[custom]))
    assert len(counter.outcomes) == 4 * 2  # the request count and the custom query, each time
