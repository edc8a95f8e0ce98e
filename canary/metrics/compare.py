"""Compare gates: the canary against the stable version, from Istio's counters.

A compare gate accumulates evidence over the current *stage*: every check reads
`increase(...[now - stage start])` for both versions, so each check sees all the stage's
requests and the sequential test in `canary.core.statistics` stays valid however often it looks.
The (1 - confidence) error budget is split evenly over the Rollout's analysed stages, so a whole
release keeps it. Pure but for the `Counters` it is handed (Prometheus live, a recording in a
backtest): both feed the same `judge_compare`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from canary.core.model import Rollout
from canary.core.spec import CompareGate, CompareMetric, Gate
from canary.core.statistics import (
    Counts,
    Histogram,
    Judgement,
    compare_quantiles,
    compare_rates,
    histogram_total,
)
from canary.core.status import GateResult, Verdict
from canary.metrics.errors import MetricsError
from canary.metrics.promql import (
    DURATION_BUCKETS_METRIC,
    REQUESTS_METRIC,
    SERVER_ERROR_CODES,
    Target,
    promql_duration,
    quoted,
    target_of,
)
from canary.metrics.verdicts import (
    Reading,
    error_result,
    several_series_problem,
    threshold_text,
)

RANGE = "$__range"  # where a counter query's range goes


class Counters(Protocol):
    """Answers `template` (a PromQL with RANGE) as the increase over `window` up to now."""

    def increase(self, template: str, window: timedelta) -> Reading: ...


class Instant(Protocol):
    def query(self, promql: str) -> Reading: ...


@dataclass(frozen=True)
class LiveCounters:
    """Counters read from Prometheus with one instant query each."""

    client: Instant

    def increase(self, template: str, window: timedelta) -> Reading:
        return self.client.query(template.replace(RANGE, promql_duration(window)))


# ---------------------------------------------------------------- queries


def version_selector(target: Target, version: str, *, server_errors: bool = False) -> str:
    matchers = [
        'reporter="destination"',
        f"destination_service_name={quoted(target.service)}",
        f"destination_workload_namespace={quoted(target.namespace)}",
        f"destination_version={quoted(version)}",
    ]
    if server_errors:
        matchers.append(f'response_code=~"{SERVER_ERROR_CODES}"')
    return "{" + ", ".join(matchers) + "}"


def counter_templates(compare: CompareGate, target: Target) -> dict[str, str]:
    """Name -> PromQL template (with RANGE) of every counter a compare gate reads."""
    versions = {"canary": target.canary_version, "stable": target.stable_version or ""}
    templates: dict[str, str] = {}
    for role, version in versions.items():
        if compare.metric is CompareMetric.ERROR_RATE:
            every = version_selector(target, version)
            errors = version_selector(target, version, server_errors=True)
            templates[f"{role}_requests"] = f"sum(increase({REQUESTS_METRIC}{every}[{RANGE}]))"
            templates[f"{role}_errors"] = f"sum(increase({REQUESTS_METRIC}{errors}[{RANGE}]))"
        else:
            selector = version_selector(target, version)
            buckets = f"increase({DURATION_BUCKETS_METRIC}{selector}[{RANGE}])"
            templates[f"{role}_buckets"] = f"sum by (le) ({buckets})"
    return templates


def comparison_window(rollout: Rollout, now: datetime) -> timedelta:
    """From the current stage's start to now, in whole seconds, at least one interval."""
    started = rollout.status.stage_started_at or now
    seconds = math.floor((now - started).total_seconds())
    return max(timedelta(seconds=seconds), rollout.spec.analysis.interval)


def stage_alpha(rollout: Rollout, compare: CompareGate) -> float:
    """This stage's share of the release's error budget 1 - confidence."""
    stages = rollout.spec.stages
    analysed = sum(s is not None for s in (stages.mirror, stages.header_canary, stages.split))
    return (1 - compare.confidence) / max(analysed, 1)


# ---------------------------------------------------------------- measuring


def measure_compare(counters: Counters, gate: Gate, rollout: Rollout, now: datetime) -> GateResult:
    """One check of a compare gate: read its counters over the stage so far, then judge."""
    assert gate.compare is not None
    target = target_of(rollout)
    if target.stable_version is None:
        message = f"{gate.name}: the stable version is not known yet (status.stableVersion)"
        return _no_data(gate, message)
    window = comparison_window(rollout, now)
    templates = counter_templates(gate.compare, target)
    readings: dict[str, Reading] = {}
    for name, template in templates.items():
        try:
            readings[name] = counters.increase(template, window)
        except MetricsError as error:
            return error_result(gate, f"gate {gate.name!r}: {error}", template)
    return judge_compare(gate, readings, rollout, window)


def judge_compare(
    gate: Gate, readings: Mapping[str, Reading], rollout: Rollout, window: timedelta
) -> GateResult:
    """The verdict of a compare gate on its counter readings (pure)."""
    compare = gate.compare
    assert compare is not None
    try:
        if compare.metric is CompareMetric.ERROR_RATE:
            return _judge_error_rate(gate, compare, readings, rollout, window)
        return _judge_latency(gate, compare, readings, rollout, window)
    except _ReadingError as error:
        return error_result(gate, f"{gate.name}: {error}")


class _ReadingError(ValueError):
    pass


def _scalar(reading: Reading) -> float:
    """A sum's value: 0 without series (no requests yet), an error with several."""
    if len(reading) > 1:
        raise _ReadingError(several_series_problem(reading))
    value = reading[0].value if reading else 0.0
    return value if math.isfinite(value) else 0.0


def _histogram(reading: Reading) -> Histogram:
    buckets: dict[float, float] = {}
    for series in reading:
        if "le" not in series.labels:
            raise _ReadingError("a bucket series has no le label; aggregate with sum by (le)")
        value = series.value if math.isfinite(series.value) else 0.0
        buckets[float(series.labels["le"])] = value
    return buckets


def _judge_error_rate(
    gate: Gate,
    compare: CompareGate,
    readings: Mapping[str, Reading],
    rollout: Rollout,
    window: timedelta,
) -> GateResult:
    canary = Counts(_scalar(readings["canary_errors"]), _scalar(readings["canary_requests"]))
    stable = Counts(_scalar(readings["stable_errors"]), _scalar(readings["stable_requests"]))
    thin = _too_thin(gate, rollout, canary.trials, stable.trials, window)
    if thin is not None:
        return thin
    alpha = stage_alpha(rollout, compare)
    result = compare_rates(canary, stable, compare.max_increase / 100, alpha)
    increase = None if result.ratio is None else (result.ratio - 1) * 100
    message = (
        f"{gate.name}: canary {_percent(canary)} vs stable {_percent(stable)} over {_w(window)}; "
        f"canary/stable error-rate ratio {_bound(result.ratio or 0.0)}, "
        f"at least {_bound(result.low)} at {1 - alpha:.4g}, "
        f"limit {result.limit:.3g}: {_JUDGEMENT_TEXT[result.judgement]}"
    )
    return _result(gate, _VERDICTS[result.judgement], increase, canary.trials, message)


def _judge_latency(
    gate: Gate,
    compare: CompareGate,
    readings: Mapping[str, Reading],
    rollout: Rollout,
    window: timedelta,
) -> GateResult:
    canary, stable = _histogram(readings["canary_buckets"]), _histogram(readings["stable_buckets"])
    canary_total, stable_total = histogram_total(canary), histogram_total(stable)
    thin = _too_thin(gate, rollout, canary_total, stable_total, window)
    if thin is not None:
        return thin
    quantile = compare.latency_quantile()
    alpha = stage_alpha(rollout, compare)
    result = compare_quantiles(canary, stable, quantile, compare.max_increase / 100, alpha)
    increase = None
    if result.canary_quantile is not None and result.stable_quantile:
        increase = (result.canary_quantile / result.stable_quantile - 1) * 100
    message = (
        f"{gate.name}: p{quantile * 100:g} canary {_ms(result.canary_quantile)} vs stable "
        f"{_ms(result.stable_quantile)} over {_w(window)}, limit {_ms(result.limit)}; "
        f"{result.reason}: {_JUDGEMENT_TEXT[result.judgement]}"
    )
    return _result(gate, _VERDICTS[result.judgement], increase, canary_total, message)


def _too_thin(
    gate: Gate, rollout: Rollout, canary: float, stable: float, window: timedelta
) -> GateResult | None:
    min_requests = rollout.spec.analysis.min_requests
    if canary >= max(min_requests, 1) and stable > 0:
        return None
    message = (
        f"{gate.name}: canary served {canary:.0f} and stable {stable:.0f} requests "
        f"in this stage ({_w(window)}), fewer than minRequests {min_requests} "
        "for the canary or none for stable: no data yet"
    )
    return _result(gate, Verdict.NO_DATA, None, canary, message)


_VERDICTS = {
    Judgement.WORSE: Verdict.FAIL,
    Judgement.WITHIN: Verdict.PASS,
    Judgement.UNSURE: Verdict.NO_DATA,
}
_JUDGEMENT_TEXT = {
    Judgement.WORSE: "worse than stable beyond maxIncrease",
    Judgement.WITHIN: "within maxIncrease of stable",
    Judgement.UNSURE: "not decided yet, holding",
}


def _result(
    gate: Gate, verdict: Verdict, value: float | None, samples: float, message: str
) -> GateResult:
    assert gate.compare is not None
    return GateResult(
        name=gate.name,
        verdict=verdict,
        value=value,
        threshold=threshold_text(gate),
        samples=samples,
        message=message,
    )


def _no_data(gate: Gate, message: str) -> GateResult:
    assert gate.compare is not None
    return GateResult(
        name=gate.name, verdict=Verdict.NO_DATA, threshold=threshold_text(gate), message=message
    )


def _percent(counts: Counts) -> str:
    rate = counts.rate
    shown = "-" if rate is None else f"{rate * 100:.3g}%"
    return f"{shown} ({counts.events:.0f}/{counts.trials:.0f})"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}ms"


def _bound(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3g}"


def _w(window: timedelta) -> str:
    return promql_duration(window)
