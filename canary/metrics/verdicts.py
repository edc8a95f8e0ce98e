"""Readings → verdicts. Pure: plain values in, `GateResult`s out.

An empty result, NaN, ±Inf or too few requests is `noData`, never a pass by accident; several
series where one is expected is an `error` that names the labels that differ.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from canary.core.spec import Gate
from canary.core.status import GateResult, Verdict
from canary.metrics.promql import promql_duration


@dataclass(frozen=True)
class Series:
    """One element of an instant query's result: its labels and its value."""

    labels: Mapping[str, str] = field(default_factory=dict)
    value: float = math.nan


Reading = tuple[Series, ...]


@dataclass(frozen=True)
class SingleValue:
    """A reading reduced to the one number a gate compares, or why it cannot be."""

    value: float | None
    problem: str | None = None


def single_value(reading: Reading) -> SingleValue:
    """The value of a one-series reading; None when empty; a problem when several series."""
    if not reading:
        return SingleValue(None)
    if len(reading) > 1:
        return SingleValue(None, several_series_problem(reading))
    return SingleValue(reading[0].value)


def several_series_problem(reading: Reading) -> str:
    differing = differing_labels(reading)
    described = (
        ", ".join(f"{name} ({', '.join(values)})" for name, values in differing.items())
        or "no label"
    )
    return (
        f"the query returned {len(reading)} series where one is expected, "
        f"differing in {described}; aggregate it, e.g. with sum(...), to one series"
    )


def differing_labels(reading: Reading) -> dict[str, list[str]]:
    """Label name → the sorted distinct values, for every label not equal across the series."""
    names = sorted({name for series in reading for name in series.labels})
    differing: dict[str, list[str]] = {}
    for name in names:
        values = {series.labels.get(name, "") for series in reading}
        if len(values) > 1:
            differing[name] = sorted(repr(value) for value in values)
    return differing


def is_number(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


# ---------------------------------------------------------------- thresholds


def threshold_text(gate: Gate) -> str:
    if gate.compare is not None:
        compare = gate.compare
        what = "error rate" if compare.metric == "errorRate" else "latency"
        return f"{what} <= stable +{compare.max_increase:g}% at {compare.confidence:g}"
    if gate.success_rate is not None:
        return f">= {gate.success_rate.min}%"
    if gate.latency is not None:
        return f"<= {gate.latency.max_ms:g}ms"
    bounds = [
        f">= {gate.min:g}" if gate.min is not None else "",
        f"<= {gate.max:g}" if gate.max is not None else "",
    ]
    return " and ".join(bound for bound in bounds if bound)


def within_threshold(gate: Gate, value: float) -> bool:
    if gate.success_rate is not None:
        return value >= gate.success_rate.min
    if gate.latency is not None:
        return value <= gate.latency.max_ms
    above_min = gate.min is None or value >= gate.min
    below_max = gate.max is None or value <= gate.max
    return above_min and below_max


def unit_of(gate: Gate) -> str:
    if gate.success_rate is not None:
        return "%"
    if gate.latency is not None:
        return "ms"
    return ""


# ---------------------------------------------------------------- judging one gate


@dataclass(frozen=True)
class Measurement:
    """What one check saw for one gate: its query, its reading, and the canary's requests."""

    query: str
    reading: Reading
    requests: float | None
    min_requests: int
    window: str


def judge(gate: Gate, measurement: Measurement) -> GateResult:
    """The verdict of one gate on one measurement."""
    single = single_value(measurement.reading)
    if single.problem is not None:
        message = f"{gate.name}: {single.problem}"
        return _result(gate, measurement, Verdict.ERROR, None, message)
    too_few = too_few_requests(measurement)
    if too_few is not None:
        return _result(gate, measurement, Verdict.NO_DATA, _finite(single.value), too_few)
    if single.value is None or not is_number(single.value):
        return _result(gate, measurement, Verdict.NO_DATA, None, no_value_message(gate, single))
    passed = within_threshold(gate, single.value)
    verdict = Verdict.PASS if passed else Verdict.FAIL
    return _result(gate, measurement, verdict, single.value, compared_message(gate, single.value))


def judge_reading(
    gate: Gate,
    query: str,
    reading: Reading,
    requests: float | None,
    min_requests: int,
    window: timedelta,
) -> GateResult:
    """`judge` of one gate on what a provider read: `query`'s reading, and the `requests` the
    canary served in `window` (None when unknown) against `min_requests`."""
    measurement = Measurement(query, reading, requests, min_requests, promql_duration(window))
    return judge(gate, measurement)


def _result(
    gate: Gate, measurement: Measurement, verdict: Verdict, value: float | None, message: str
) -> GateResult:
    return GateResult(
        name=gate.name,
        verdict=verdict,
        value=value,
        threshold=threshold_text(gate),
        samples=measurement.requests,
        query=measurement.query,
        message=message,
    )


def compared_message(gate: Gate, value: float) -> str:
    verb = "meets" if within_threshold(gate, value) else "breaks"
    shown = f"{value:.4g}{unit_of(gate)}"
    return f"{gate.name} is {shown}, which {verb} the threshold {threshold_text(gate)}"


def too_few_requests(measurement: Measurement) -> str | None:
    """Why the canary's traffic is too thin to judge, or None when it is enough."""
    requests = measurement.requests
    seen = requests if requests is not None and math.isfinite(requests) else 0.0
    if seen >= measurement.min_requests:
        return None
    return (
        f"the canary served {seen:.0f} requests in the last {measurement.window}, "
        f"fewer than minRequests {measurement.min_requests}: no data yet"
    )


def no_value_message(gate: Gate, single: SingleValue) -> str:
    if single.value is None:
        return f"{gate.name}: the query returned no data"
    return f"{gate.name}: the query returned {single.value}, which is not a measurement"


def _finite(value: float | None) -> float | None:
    return value if is_number(value) else None


def error_result(gate: Gate, message: str, query: str | None = None) -> GateResult:
    """An `error` verdict for a gate that could not be measured."""
    return GateResult(
        name=gate.name,
        verdict=Verdict.ERROR,
        threshold=threshold_text(gate),
        query=query,
        message=message,
    )


# ---------------------------------------------------------------- one check


def combine(results: Iterable[GateResult]) -> Verdict:
    """One verdict for a check: fail beats error beats noData beats pass (no gates: noData)."""
    verdicts = {result.verdict for result in results}
    for verdict in (Verdict.FAIL, Verdict.ERROR, Verdict.NO_DATA):
        if verdict in verdicts:
            return verdict
    return Verdict.PASS if verdicts else Verdict.NO_DATA
