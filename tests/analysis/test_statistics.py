"""The statistics of compare gates, pure.

Aspects: confidence sequences on known cases (no events, all events, a clear rate); they cover
the true rate at every look (seeded simulation); the ratio test fails a tenfold canary, holds on
thin or leaning evidence, passes equal versions, and keeps false rollbacks of healthy canaries
under its alpha when checked at every interval; Prometheus's histogram_quantile; the latency
comparison.
"""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from canary.core.statistics import (
    Counts,
    Judgement,
    compare_quantiles,
    compare_rates,
    confidence_sequence,
    count_above,
    histogram_quantile,
)

ISTIO_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)


def test_no_events_bound_the_rate_near_the_fixed_sample_bound() -> None:
    bounds = confidence_sequence(Counts(0, 600), alpha=0.005)
    assert bounds.low == 0.0
    assert 0.005 < bounds.high < 0.011  # ln(1/alpha)/n = 0.88 %; the mixture costs a little


def test_all_events_bound_the_rate_near_one() -> None:
    bounds = confidence_sequence(Counts(50, 50), alpha=0.01)
    assert bounds.high == 1.0
    assert 0.4 < bounds.low < 1.0  # the prior favours rare events: wide up here, never wrong


def test_a_clear_rate_lies_inside_its_bounds() -> None:
    bounds = confidence_sequence(Counts(100, 10_000), alpha=0.01)
    assert bounds.low < 0.01 < bounds.high
    assert bounds.high - bounds.low < 0.01


def test_no_trials_say_nothing() -> None:
    bounds = confidence_sequence(Counts(0, 0), alpha=0.01)
    assert (bounds.low, bounds.high) == (0.0, 1.0)


@given(
    events=st.floats(0, 1e5, allow_nan=False),
    extra=st.floats(0, 1e5, allow_nan=False),
    alpha=st.floats(0.001, 0.5),
)
def test_bounds_are_an_interval_around_the_observed_rate(
    events: float, extra: float, alpha: float
) -> None:
    counts = Counts(events, events + extra)
    bounds = confidence_sequence(counts, alpha)
    rate = counts.rate
    assert 0.0 <= bounds.low <= bounds.high <= 1.0
    if rate is not None:
        assert bounds.low - 1e-9 <= rate <= bounds.high + 1e-9


def test_the_sequence_covers_the_true_rate_at_every_look() -> None:
    """Seeded: 400 streams of 2,000 requests at 1 %, looked at every 20 requests."""
    rng, alpha, misses = random.Random(3), 0.05, 0
    for _ in range(400):
        events = 0
        for trials in range(1, 2001):
            events += rng.random() < 0.01
            if trials % 20 == 0:
                bounds = confidence_sequence(Counts(events, trials), alpha)
                if not bounds.low <= 0.01 <= bounds.high:
                    misses += 1
                    break
    assert misses / 400 <= alpha


def test_a_tenfold_error_rate_is_worse() -> None:
    result = compare_rates(Counts(50, 5000), Counts(45, 45_000), max_increase=0.5, alpha=0.01)
    assert result.judgement is Judgement.WORSE
    assert result.low > 1.5
    assert result.ratio is not None and 8 < result.ratio < 12


def test_equal_error_rates_are_within() -> None:
    result = compare_rates(Counts(25, 5000), Counts(225, 45_000), max_increase=0.5, alpha=0.01)
    assert result.judgement is Judgement.WITHIN


def test_no_errors_anywhere_is_within() -> None:
    result = compare_rates(Counts(0, 600), Counts(0, 5400), max_increase=0.5, alpha=0.01)
    assert result.judgement is Judgement.WITHIN
    assert result.ratio == 1.0


def test_one_error_in_sixty_against_a_clean_stable_holds_instead_of_failing() -> None:
    """The case that breaks a 99 % gate: too little evidence either way."""
    result = compare_rates(Counts(1, 60), Counts(0, 540), max_increase=0.5, alpha=0.01)
    assert result.judgement is Judgement.UNSURE


def test_healthy_canaries_checked_every_interval_rarely_fail() -> None:
    """Seeded: 1,000 stages of 20 checks, both versions at 1 % errors; alpha 0.01."""
    rng, fails = random.Random(5), 0
    for _ in range(1000):
        canary, stable = [0, 0], [0, 0]
        for _ in range(20):
            canary[1] += 100
            canary[0] += sum(rng.random() < 0.01 for _ in range(100))
            stable[1] += 300
            stable[0] += sum(rng.random() < 0.01 for _ in range(300))
            result = compare_rates(Counts(*canary), Counts(*stable), 0.0, alpha=0.01)
            if result.judgement is Judgement.WORSE:
                fails += 1
                break
    assert fails / 1000 <= 0.01


def cumulative(counts: dict[float, float]) -> dict[float, float]:
    total, buckets = 0.0, {}
    for bound in (*ISTIO_BUCKETS, float("inf")):
        total += counts.get(bound, 0.0)
        buckets[bound] = total
    return buckets


def test_histogram_quantile_interpolates_like_prometheus() -> None:
    buckets = cumulative({25: 50, 50: 50})
    assert histogram_quantile(buckets, 0.5) == 25.0
    assert histogram_quantile(buckets, 0.75) == 37.5
    assert histogram_quantile(cumulative({float("inf"): 10}), 0.5) == 10000
    assert histogram_quantile({}, 0.5) is None


def test_count_above_a_bound() -> None:
    above = count_above(cumulative({25: 90, 250: 10}), 100)
    assert (above.events, above.trials) == (10, 100)


def test_a_much_slower_canary_is_worse_and_a_twin_is_within() -> None:
    stable = cumulative({25: 9_900, 50: 100})
    slow = cumulative({25: 800, 1000: 200})
    twin = cumulative({25: 990, 50: 10})
    assert compare_quantiles(slow, stable, 0.99, 1.0, 0.01).judgement is Judgement.WORSE
    assert compare_quantiles(twin, stable, 0.99, 1.0, 0.01).judgement is Judgement.WITHIN
    thin = cumulative({25: 10})
    assert compare_quantiles(thin, stable, 0.99, 1.0, 0.01).judgement is Judgement.UNSURE
