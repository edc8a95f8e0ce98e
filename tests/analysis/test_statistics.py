"""The statistics of compare gates, pure.

Aspects: confidence sequences on known cases (no events, all events, a clear rate); they cover
the true rate at every look (seeded simulation); the ratio test fails a tenfold canary, holds on
thin or leaning evidence, passes equal versions, and keeps false rollbacks of healthy canaries
under its alpha when checked at every interval; its evidence is a test martingale at the limit
(exact expectation) and a supermartingale below it, falls as the hypothesised share grows, and
rejects a stream sitting exactly at the limit in at most alpha of streams even when looked at
after every error (seeded); it rolls back a 0.1 % -> 1 % canary within 1,500 canary requests at
the 90th percentile (seeded); Prometheus's histogram_quantile; the latency comparison.
"""

from __future__ import annotations

import math
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
    log_evidence_worse,
)
from canary_sandbox.sampling import binomial

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


def test_no_canary_error_in_twenty_requests_holds_against_a_stable_that_has_errors() -> None:
    """A 20 % canary shows none in 20 requests 1.2 % of the time: that is no evidence of health."""
    result = compare_rates(Counts(0, 20), Counts(1, 180), max_increase=0.5, alpha=0.01)
    assert result.judgement is Judgement.UNSURE
    # one error in all is no evidence either way; eleven, one of them the canary's, are
    assert compare_rates(Counts(0, 200), Counts(1, 1800), 0.5, 0.01).judgement is Judgement.UNSURE
    enough = compare_rates(Counts(1, 600), Counts(10, 5400), max_increase=0.5, alpha=0.01)
    assert enough.judgement is Judgement.WITHIN


@given(
    canary_requests=st.integers(min_value=20, max_value=400),
    stable_requests=st.integers(min_value=100, max_value=4000),
    stable_rate=st.sampled_from([0.001, 0.005, 0.01, 0.03]),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_a_canary_far_worse_than_the_limit_rarely_passes_once_there_are_errors(
    canary_requests: int, stable_requests: int, stable_rate: float, seed: int
) -> None:
    """A canary 8 times worse than the limit allows passes at most alpha of the checks that saw
    an error (checks without any error are decided by the estimate: nothing to compare)."""
    alpha, limit = 0.01, 1.5
    canary_rate = min(8 * limit * stable_rate, 1.0)
    rng = random.Random(seed)
    passes = compared = 0
    for _ in range(100):
        canary = Counts(binomial(rng, canary_requests, canary_rate), canary_requests)
        stable = Counts(binomial(rng, stable_requests, stable_rate), stable_requests)
        if canary.events + stable.events == 0:
            continue
        compared += 1
        judgement = compare_rates(canary, stable, limit - 1, alpha).judgement
        passes += judgement is Judgement.WITHIN
    # alpha of 100 checks is 1; 4 leaves room for binomial noise (P(>= 5) < 0.4 % at alpha)
    assert passes <= 4, (passes, compared)


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


def share_of(ratio: float, exposure: float) -> float:
    """The canary's share of all errors when its rate is `ratio` times stable's."""
    return ratio * exposure / (1 + ratio * exposure)


def binomial_mean_of_evidence(errors: int, null_share: float, true_share: float) -> float:
    """E[M] after `errors` errors when each is the canary's with probability `true_share`."""
    total = 0.0
    for canary_errors in range(errors + 1):
        log_p = (
            math.lgamma(errors + 1)
            - math.lgamma(canary_errors + 1)
            - math.lgamma(errors - canary_errors + 1)
            + canary_errors * math.log(true_share)
            + (errors - canary_errors) * math.log1p(-true_share)
        )
        total += math.exp(log_p + log_evidence_worse(canary_errors, errors, null_share))
    return total


@given(
    errors=st.integers(1, 150),
    null_share=st.floats(0.01, 0.9),
    below=st.floats(0.0, 1.0),
)
def test_the_evidence_is_a_martingale_at_the_limit_and_a_supermartingale_below(
    errors: int, null_share: float, below: float
) -> None:
    """E[M_m] = 1 at the null's share and <= 1 below it: what Ville's inequality needs."""
    at_limit = binomial_mean_of_evidence(errors, null_share, null_share)
    assert math.isclose(at_limit, 1.0, rel_tol=1e-6)
    smaller = max(null_share * below, 1e-3)
    assert binomial_mean_of_evidence(errors, null_share, smaller) <= 1.0 + 1e-6


@given(
    canary_errors=st.floats(0, 500, allow_nan=False),
    stable_errors=st.floats(0, 500, allow_nan=False),
    share=st.floats(0.0, 1.0),
    more=st.floats(0.0, 1.0),
)
def test_the_evidence_falls_as_the_hypothesised_share_grows(
    canary_errors: float, stable_errors: float, share: float, more: float
) -> None:
    errors = canary_errors + stable_errors
    larger = share + (1 - share) * more
    evidence = log_evidence_worse(canary_errors, errors, share)
    assert log_evidence_worse(canary_errors, errors, larger) <= evidence + 1e-9
    if errors > 0 and share >= canary_errors / errors:
        assert evidence <= 1e-9  # no evidence against a share at or above the observed one


@given(
    canary_errors=st.integers(0, 300),
    stable_errors=st.integers(0, 300),
    canary_requests=st.integers(300, 100_000),
    stable_share=st.integers(1, 20),
    max_increase=st.floats(0.0, 5.0),
    alpha=st.floats(0.001, 0.2),
)
def test_worse_exactly_when_the_lower_bound_clears_the_limit(
    canary_errors: int,
    stable_errors: int,
    canary_requests: int,
    stable_share: int,
    max_increase: float,
    alpha: float,
) -> None:
    canary = Counts(canary_errors, canary_requests)
    stable = Counts(stable_errors, canary_requests * stable_share)
    result = compare_rates(canary, stable, max_increase, alpha)
    if result.judgement is Judgement.WORSE:
        assert result.low >= result.limit * (1 - 1e-9)
    else:
        assert result.low <= result.limit * (1 + 1e-9)
    if stable_errors > 0 and canary_errors > 0:
        estimate = (canary_errors / canary.trials) / (stable_errors / stable.trials)
        assert result.low <= estimate * (1 + 1e-9)
    # One more canary error never turns a failing check into a passing or holding one.
    more = compare_rates(Counts(canary_errors + 1, canary_requests), stable, max_increase, alpha)
    if result.judgement is Judgement.WORSE:
        assert more.judgement is Judgement.WORSE


def test_a_stream_at_the_limit_is_rejected_in_at_most_alpha_even_looking_at_every_error() -> None:
    """Seeded: 1,000 streams of 200 errors, each the canary's with exactly the limit's share
    (a 10 % canary at 1.5 times stable's rate), judged after every single error."""
    rng, alpha, streams = random.Random(11), 0.05, 1000
    share, threshold, rejected = share_of(1.5, 1 / 9), math.log(1 / alpha), 0
    for _ in range(streams):
        canary_errors = 0
        for errors in range(1, 201):
            canary_errors += rng.random() < share
            if log_evidence_worse(canary_errors, errors, share) >= threshold:
                rejected += 1
                break
    assert rejected / streams <= alpha


def test_a_tenfold_canary_is_rolled_back_within_1500_requests_at_the_90th_percentile() -> None:
    """Seeded: 300 stages of the benchmark's low-traffic case (benchmarks/analysis.py): a 10 %
    canary, 60 canary and 540 stable requests a check, stable at 0.1 % and the canary at 1 % 5xx,
    maxIncrease 50 %, alpha 0.01, rolled back at the second failing check (failureLimit 2; a
    passing check resets the count, a hold does not); at most 100 checks."""
    rng, needed = random.Random(7), []
    for _ in range(300):
        canary, stable, failed, rolled_back_at = (0, 0), (0, 0), 0, math.inf
        for _ in range(100):
            canary = (canary[0] + binomial(rng, 60, 0.01), canary[1] + 60)
            stable = (stable[0] + binomial(rng, 540, 0.001), stable[1] + 540)
            if canary[1] < 50:
                continue
            judgement = compare_rates(Counts(*canary), Counts(*stable), 0.5, 0.01).judgement
            failed = 0 if judgement is Judgement.WITHIN else failed + (judgement is Judgement.WORSE)
            if failed >= 2:
                rolled_back_at = canary[1]
                break
        needed.append(rolled_back_at)
    needed.sort()
    assert needed[math.ceil(0.9 * len(needed)) - 1] <= 1500  # nearest-rank 90th percentile
    assert needed[len(needed) // 2] <= 900


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
