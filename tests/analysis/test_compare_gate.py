"""Compare gates through a real Prometheus scraping the traffic simulator.

Aspects: a healthy canary passes both compare gates; a canary with ten times stable's errors
fails the error-rate gate; a slow canary fails the latency gate; thin traffic holds (noData);
the counters are read since the stage started; an unknown stable version holds.

A comparison decides once the stage holds enough requests for its confidence bound, which the
simulator serves at its rate, more slowly on a loaded machine: the tests that expect a decision
measure again until the gates they assert on have one (`decided`), as the controller would at
its next check, and then assert the verdict.
"""

from __future__ import annotations

from analysis_helpers import ERROR_RATE, LATENCY, rollout
from support.polling import wait_until
from support.scraped import Sandbox

from canary.core.model import Rollout
from canary.core.status import GateResult, Verdict
from canary.metrics.prometheus import PrometheusSource

DECISION_GUARD_SECONDS = 120.0  # only against waiting forever


def decided(subject: Rollout, *gates: str) -> tuple[GateResult, ...]:
    """Every gate's result, measured again until none of `gates` says noData."""
    seen: list[tuple[GateResult, ...]] = []

    def decision() -> bool:
        seen.append(PrometheusSource().evaluate(subject))
        return all(r.verdict is not Verdict.NO_DATA for r in seen[-1] if r.name in gates)

    wait_until(
        decision,
        f"a decision of {', '.join(gates)}",
        DECISION_GUARD_SECONDS,
        every=1.0,
        describe=lambda: repr(seen[-1]),
    )
    return seen[-1]


def test_a_healthy_canary_passes(sandbox: Sandbox) -> None:
    errors, latency = decided(
        rollout("healthy", sandbox.url, stage_started_at=sandbox.started),
        "errors-vs-stable",
        "p99-vs-stable",
    )
    assert (errors.verdict, latency.verdict) == (Verdict.PASS, Verdict.PASS), (errors, latency)
    assert errors.threshold == "error rate <= stable +50% at 0.99"
    assert "within maxIncrease of stable" in (errors.message or "")


def test_ten_times_the_errors_fails(sandbox: Sandbox) -> None:
    errors, latency = decided(
        rollout("tenfold", sandbox.url, stage_started_at=sandbox.started),
        "errors-vs-stable",
        "p99-vs-stable",
    )
    assert errors.verdict is Verdict.FAIL, errors
    assert errors.value is not None and errors.value > 200  # percent above stable
    assert "worse than stable beyond maxIncrease" in (errors.message or "")
    assert "at 0.99, limit 1.5" in (errors.message or "")  # the one-sided lower bound, shown
    assert latency.verdict is Verdict.PASS


def test_a_slow_canary_fails_the_latency_comparison(sandbox: Sandbox) -> None:
    errors, latency = decided(
        rollout("slow", sandbox.url, stage_started_at=sandbox.started), "p99-vs-stable"
    )
    assert latency.verdict is Verdict.FAIL, latency
    assert errors.verdict is not Verdict.FAIL


def test_thin_traffic_holds(sandbox: Sandbox) -> None:
    results = PrometheusSource().evaluate(
        rollout("thin", sandbox.url, stage_started_at=sandbox.started)
    )
    assert [r.verdict for r in results] == [Verdict.NO_DATA, Verdict.NO_DATA]
    assert "fewer than minRequests 50" in (results[0].message or "")


def test_the_counters_cover_the_stage_so_far(sandbox: Sandbox) -> None:
    (errors,) = PrometheusSource().evaluate(
        rollout("healthy", sandbox.url, gates=[ERROR_RATE], stage_started_at=sandbox.started)
    )
    assert errors.samples is not None and errors.samples > 500  # 100 rps to the canary
    (latency,) = PrometheusSource().evaluate(
        rollout("healthy", sandbox.url, gates=[LATENCY], stage_started_at=sandbox.started)
    )
    assert latency.samples is not None and latency.samples > 500
