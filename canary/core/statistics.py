"""Anytime-valid comparison of a canary with its stable version. Pure math, no I/O.

The building block is a confidence *sequence* for a binomial proportion (Robbins' beta-binomial
mixture): the set of rates p for which the mixture likelihood ratio

    L_n(p) = ∫ q^x (1-q)^(n-x) dBeta(q; a, b) / (p^x (1-p)^(n-x))

stays below 1/alpha. L_n(p) is a nonnegative martingale under the true p, so by Ville's inequality
the sequence covers the true rate at *every* n at once with probability ≥ 1-alpha: it may be looked
at after every request, every check, as often as one likes, and stays valid. Counts may be
non-integer (Prometheus extrapolates `increase`); the formulas use the gamma function.

On top of it:
- `compare_rates`: the ratio of the canary's error rate to the stable one's, from the canary's
  share of all errors (a binomial given the total, whatever the stable rate is). Only "canary
  worse" can fail a check, so this one is one-sided: a mixture of likelihood ratios of a few
  worse-than-the-limit alternatives against the limit itself (`log_evidence_worse`), again a
  test martingale under the null, so valid at every look.
- `compare_quantiles`: a canary's latency quantile against the stable one's plus a margin, read
  from the two versions' cumulative histograms (Istio's buckets).
See docs/analysis.md for the method, its assumptions and its measured error rates.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

_BISECTION_STEPS = 60


class Judgement(StrEnum):
    WORSE = "worse"  # worse than the margin allows, with the configured confidence
    WITHIN = "within"  # not worse than the margin allows, with the configured confidence
    UNSURE = "unsure"  # the evidence does not decide yet


@dataclass(frozen=True)
class Counts:
    """`events` out of `trials` (errors out of requests, slow requests out of requests)."""

    events: float
    trials: float

    @property
    def rate(self) -> float | None:
        return self.events / self.trials if self.trials > 0 else None


@dataclass(frozen=True)
class BetaPrior:
    """The mixing distribution of the likelihood ratio: it shapes the width, never validity.

    A small `a` puts the weight on small rates, which is where error rates and tail shares live:
    with no event at all in n trials the upper bound is close to the fixed-sample ln(1/alpha)/n.
    """

    a: float = 0.1
    b: float = 10.0


RARE_EVENTS = BetaPrior()


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _log_likelihood(events: float, trials: float, p: float) -> float:
    """log p^x (1-p)^(n-x), with 0·log 0 = 0."""
    failures = trials - events
    hit = events * math.log(p) if events > 0 else 0.0
    miss = failures * math.log1p(-p) if failures > 0 else 0.0
    return hit + miss


def log_mixture_ratio(counts: Counts, p: float, prior: BetaPrior = RARE_EVENTS) -> float:
    """log L_n(p): the evidence against the rate being `p` (inf when p is impossible)."""
    events, trials = _clean(counts)
    if (p <= 0 and events > 0) or (p >= 1 and trials - events > 0):
        return math.inf
    p = min(max(p, 0.0), 1.0)
    marginal = _log_beta(prior.a + events, prior.b + trials - events) - _log_beta(prior.a, prior.b)
    return marginal - _log_likelihood(events, trials, p)


def _clean(counts: Counts) -> tuple[float, float]:
    trials = max(counts.trials, 0.0) if math.isfinite(counts.trials) else 0.0
    events = min(max(counts.events, 0.0), trials) if math.isfinite(counts.events) else 0.0
    return events, trials


def confidence_sequence(counts: Counts, alpha: float, prior: BetaPrior = RARE_EVENTS) -> Interval:
    """The rates not rejected at level `alpha`: valid at every look, however many."""
    events, trials = _clean(counts)
    if trials <= 0:
        return Interval(0.0, 1.0)
    threshold = math.log(1 / alpha)
    centre = events / trials

    def inside(p: float) -> bool:
        return log_mixture_ratio(Counts(events, trials), p, prior) < threshold

    low = 0.0 if inside(0.0) else _boundary(inside, outside=0.0, inner=centre)
    high = 1.0 if inside(1.0) else _boundary(inside, outside=1.0, inner=centre)
    return Interval(low, high)


def _boundary(inside: Callable[[float], bool], outside: float, inner: float) -> float:
    """Bisection between a rate outside the set and one inside it (the set is an interval)."""
    for _ in range(_BISECTION_STEPS):
        middle = (outside + inner) / 2
        if inside(middle):
            inner = middle
        else:
            outside = middle
    return inner


# ---------------------------------------------------------------- error rates

# The alternatives the error-rate test mixes over, as multiples of the hypothesised ratio: a
# canary twice, four or eight times worse than the limit allows (equal weights). They shape how
# fast a worse canary is caught, never the test's validity (docs/analysis.md, "the prior").
WORSE_BY: tuple[float, ...] = (2.0, 4.0, 8.0)


def log_evidence_worse(
    canary_errors: float, errors: float, share: float, worse_by: tuple[float, ...] = WORSE_BY
) -> float:
    """log M: the evidence that the canary's share of all errors is above `share`.

    With s = share / (1 - share) the canary/stable odds of an error under the null, each
    alternative c multiplies those odds by c; its likelihood ratio against the null, for x
    canary errors of m, is c^x (1 + (c-1) share)^(-m). M is their average. Under any true share
    at or below `share`, every term is a nonnegative supermartingale in the errors seen so far
    (one factor per error, of mean <= 1), so by Ville's inequality P(ever M >= 1/alpha) <= alpha.
    M falls as `share` grows, and is at most 1 once `share` reaches the observed share.
    """
    if not worse_by or min(worse_by) <= 1:
        raise ValueError(f"the alternatives must all be worse than the null: {worse_by}")
    return _log_odds_mixture(canary_errors, errors, share, worse_by)


def log_evidence_better(
    canary_errors: float, errors: float, share: float, better_by: tuple[float, ...]
) -> float:
    """log M: the evidence that the canary's share of all errors is below `share`.

    The mirror of `log_evidence_worse`, with alternatives c < 1: each error's factor has mean
    <= 1 under any true share at or above `share`, so the same Ville bound holds.
    """
    if not better_by or max(better_by) >= 1:
        raise ValueError(f"the alternatives must all be better than the null: {better_by}")
    return _log_odds_mixture(canary_errors, errors, share, better_by)


def _log_odds_mixture(
    canary_errors: float, errors: float, share: float, factors: tuple[float, ...]
) -> float:
    x = min(max(canary_errors, 0.0), max(errors, 0.0))
    m = max(errors, 0.0)
    share = min(max(share, 0.0), 1.0)
    terms = [x * math.log(c) - m * math.log1p((c - 1) * share) for c in factors]
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms) / len(terms))


@dataclass(frozen=True)
class RateComparison:
    """Canary versus stable error rates as a ratio rho = canary rate / stable rate.

    `ratio` is the estimate (one pseudo-error shared by exposure, so it is finite); `low` the
    one-sided lower confidence sequence bound of rho (every rho below it is rejected, valid at
    every look); `limit` the largest acceptable rho.
    """

    canary: Counts
    stable: Counts
    ratio: float | None
    low: float
    limit: float
    judgement: Judgement


def compare_rates(
    canary: Counts,
    stable: Counts,
    max_increase: float,
    alpha: float,
    worse_by: tuple[float, ...] = WORSE_BY,
) -> RateComparison:
    """Is the canary's error rate more than (1 + max_increase) times the stable one's?

    Errors are rare events: each version's errors are close to Poisson, so given m errors in
    total the canary's share of them is Binomial(m, pi) with pi = rhow / (rhow + 1), w = canary
    requests / stable requests, whatever the stable rate is. The test is one-sided: WORSE when
    the evidence against every rho <= limit (`log_evidence_worse` at the limit's share) reaches
    1/alpha; WITHIN when the estimate is at or below the limit and the evidence also rules out
    a canary max(worse_by) times worse than the limit allows (`log_evidence_better`), or there
    is no error anywhere to compare; UNSURE otherwise (thin or leaning evidence: the check holds).
    A canary with no errors in 20 requests says nothing against a stable at 0.5 %: a canary at
    20 % errors shows none that often (1.2 %), so that check holds rather than passes.
    """
    limit = 1 + max_increase
    if canary.trials <= 0 or stable.trials <= 0:
        return RateComparison(canary, stable, None, 0.0, limit, Judgement.UNSURE)
    exposure = canary.trials / stable.trials
    canary_errors, _ = _clean(canary)
    stable_errors, _ = _clean(stable)
    errors = canary_errors + stable_errors
    threshold = math.log(1 / alpha)

    def rejected(share: float) -> bool:
        return log_evidence_worse(canary_errors, errors, share, worse_by) >= threshold

    # The rejected shares are [0, b): the evidence falls as the share grows, and is <= 1 at 1.
    low_share = 0.0 if not rejected(0.0) else _boundary(lambda p: not rejected(p), 0.0, 1.0)
    low = _ratio_of(low_share, exposure)
    # One pseudo-error shared by exposure: no errors anywhere estimates rho = 1, never inf.
    pseudo = exposure / (1 + exposure)
    ratio = ((canary_errors + pseudo) / canary.trials) / (
        (stable_errors + 1 - pseudo) / stable.trials
    )
    far_worse = _share_of(limit * max(worse_by), exposure)
    ruled_out = errors <= 0 or (
        log_evidence_better(canary_errors, errors, far_worse, _better_by(worse_by)) >= threshold
    )
    if rejected(_share_of(limit, exposure)):
        judgement = Judgement.WORSE
    elif ratio <= limit and ruled_out:
        judgement = Judgement.WITHIN
    else:
        judgement = Judgement.UNSURE
    return RateComparison(canary, stable, ratio, low, limit, judgement)


def _better_by(worse_by: tuple[float, ...]) -> tuple[float, ...]:
    """The alternatives below the far-worse null: the worse ones mirrored (1/8, 1/4, 1/2)."""
    return tuple(sorted(1 / c for c in worse_by))


def _share_of(ratio: float, exposure: float) -> float:
    """The canary's share pi of all errors when its rate is `ratio` times stable's."""
    odds = ratio * exposure
    return odds / (1 + odds)


def _ratio_of(share: float, exposure: float) -> float:
    """rho from the canary's share pi of all errors: pi / ((1 - pi) w)."""
    if share >= 1:
        return math.inf
    return share / ((1 - share) * exposure)


# ---------------------------------------------------------------- latency histograms

Histogram = Mapping[float, float]  # cumulative count of observations <= le, +Inf included


def histogram_total(buckets: Histogram) -> float:
    return max(buckets.values(), default=0.0)


def histogram_quantile(buckets: Histogram, quantile: float) -> float | None:
    """Prometheus's histogram_quantile: linear interpolation inside the bucket that holds it.

    None without observations; the highest finite bound when it falls in the +Inf bucket.
    """
    total = histogram_total(buckets)
    if total <= 0:
        return None
    rank = quantile * total
    lower_bound, lower_count = 0.0, 0.0
    finite = sorted(b for b in buckets if math.isfinite(b))
    for bound in finite:
        count = buckets[bound]
        if count >= rank:
            width = count - lower_count
            share = (rank - lower_count) / width if width > 0 else 1.0
            return lower_bound + (bound - lower_bound) * share
        lower_bound, lower_count = bound, count
    return finite[-1] if finite else None


def count_above(buckets: Histogram, bound: float) -> Counts:
    """Observations above `bound` (a bucket bound) out of all observations."""
    total = histogram_total(buckets)
    return Counts(max(total - buckets.get(bound, total), 0.0), total)


@dataclass(frozen=True)
class LatencyComparison:
    """A canary's latency quantile against the stable one's, in milliseconds."""

    canary_quantile: float | None
    stable_quantile: float | None
    limit: float | None
    judgement: Judgement
    reason: str


def compare_quantiles(
    canary: Histogram,
    stable: Histogram,
    quantile: float,
    max_increase: float,
    alpha: float,
    prior: BetaPrior = RARE_EVENTS,
) -> LatencyComparison:
    """Is the canary's `quantile` above stable's `quantile` * (1 + max_increase)?

    The limit L = stable quantile * (1 + max_increase). WORSE when, at the first bucket bound
    at or above L, the canary's share of slower requests is confidently above 1 - quantile
    (so its quantile is above that bound, hence above L); WITHIN when, at the last bound at or
    below L, that share is confidently at most 1 - quantile. Stable's quantile is taken as measured.
    """
    canary_q = histogram_quantile(canary, quantile)
    stable_q = histogram_quantile(stable, quantile)
    if stable_q is None:
        return LatencyComparison(canary_q, None, None, Judgement.UNSURE, "stable has no requests")
    limit = stable_q * (1 + max_increase)
    bounds = sorted(b for b in canary if math.isfinite(b))
    tail = 1 - quantile
    above = [b for b in bounds if b >= limit]
    below = [b for b in bounds if b <= limit]
    if above and confidence_sequence(count_above(canary, above[0]), alpha / 2, prior).low > tail:
        reason = f"more than {tail:.2%} of the canary's requests took over {above[0]:g}ms"
        return LatencyComparison(canary_q, stable_q, limit, Judgement.WORSE, reason)
    if below and confidence_sequence(count_above(canary, below[-1]), alpha / 2, prior).high <= tail:
        reason = f"at most {tail:.2%} of the canary's requests took over {below[-1]:g}ms"
        return LatencyComparison(canary_q, stable_q, limit, Judgement.WITHIN, reason)
    reason = "too few requests to tell"
    return LatencyComparison(canary_q, stable_q, limit, Judgement.UNSURE, reason)
