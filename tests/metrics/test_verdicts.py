"""Readings → verdicts, pure.

Aspects: pass/fail per gate kind at and around the threshold; empty, NaN, ±Inf and too few
requests are noData; several series are an error naming the differing labels; threshold text;
combine's precedence.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from canary.core.spec import Gate
from canary.core.status import GateResult, Verdict
from canary.metrics.verdicts import Measurement, Series, combine, judge, threshold_text

SUCCESS = Gate.model_validate({"name": "sr", "successRate": {"min": 99.0}})
LATENCY = Gate.model_validate({"name": "lat", "latency": {"quantile": 0.99, "maxMs": 500}})
CUSTOM = Gate.model_validate({"name": "c", "query": "q", "min": 1, "max": 2})


def measured(value: float | None, requests: float | None = 100, *series: Series) -> Measurement:
    reading = series or ((Series({}, value),) if value is not None else ())
    return Measurement("q", tuple(reading), requests, min_requests=50, window="1m")


@pytest.mark.parametrize(
    ("gate", "value", "verdict"),
    [
        (SUCCESS, 99.0, Verdict.PASS), (SUCCESS, 98.99, Verdict.FAIL), (SUCCESS, 100, Verdict.PASS),
        (LATENCY, 500, Verdict.PASS), (LATENCY, 500.01, Verdict.FAIL), (LATENCY, 3, Verdict.PASS),
        (CUSTOM, 1, Verdict.PASS), (CUSTOM, 2, Verdict.PASS), (CUSTOM, 0.9, Verdict.FAIL),
        (CUSTOM, 2.1, Verdict.FAIL),
    ],
)  # fmt: skip
def test_thresholds(gate: Gate, value: float, verdict: Verdict) -> None:
    result = judge(gate, measured(value))
    assert result.verdict is verdict
    assert (result.value, result.samples, result.query) == (value, 100, "q")
    assert result.threshold in (result.message or "")


@pytest.mark.parametrize("value", [None, math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("gate", [SUCCESS, LATENCY, CUSTOM])
def test_no_value_is_no_data(gate: Gate, value: float | None) -> None:
    result = judge(gate, measured(value))
    assert result.verdict is Verdict.NO_DATA
    assert result.value is None


@given(st.floats(allow_nan=True, allow_infinity=True), st.floats(min_value=0, max_value=49.9))
def test_too_few_requests_is_no_data_whatever_the_value(value: float, requests: float) -> None:
    result = judge(SUCCESS, measured(value, requests))
    assert result.verdict is Verdict.NO_DATA
    assert "fewer than minRequests 50" in (result.message or "")


def test_unknown_request_count_is_no_data() -> None:
    assert judge(SUCCESS, measured(100.0, None)).verdict is Verdict.NO_DATA


def test_several_series_are_an_error_naming_the_labels_that_differ() -> None:
    reading = (
        Series({"version": "v1", "pod": "a", "ns": "x"}, 1.0),
        Series({"version": "v2", "pod": "a", "ns": "x"}, 2.0),
    )
    result = judge(CUSTOM, measured(None, 100, *reading))
    assert result.verdict is Verdict.ERROR
    assert "version ('v1', 'v2')" in (result.message or "")
    assert "pod" not in (result.message or "")


def test_threshold_texts() -> None:
    assert threshold_text(SUCCESS) == ">= 99.0%"
    assert threshold_text(LATENCY) == "<= 500ms"
    assert threshold_text(CUSTOM) == ">= 1 and <= 2"
    only_max = Gate.model_validate({"name": "m", "query": "q", "max": 0.5})
    assert threshold_text(only_max) == "<= 0.5"


def result(verdict: Verdict) -> GateResult:
    return GateResult(name="g", verdict=verdict)


@pytest.mark.parametrize(
    ("verdicts", "combined"),
    [
        ([Verdict.PASS, Verdict.PASS], Verdict.PASS),
        ([Verdict.PASS, Verdict.NO_DATA], Verdict.NO_DATA),
        ([Verdict.NO_DATA, Verdict.ERROR], Verdict.ERROR),
        ([Verdict.ERROR, Verdict.FAIL, Verdict.NO_DATA], Verdict.FAIL),
        ([], Verdict.NO_DATA),
    ],
)
def test_combine(verdicts: list[Verdict], combined: Verdict) -> None:
    assert combine(result(v) for v in verdicts) is combined


@given(st.lists(st.sampled_from(list(Verdict)), min_size=1))
def test_combine_never_passes_unless_every_gate_passed(verdicts: list[Verdict]) -> None:
    combined = combine(result(v) for v in verdicts)
    assert (combined is Verdict.PASS) == all(v is Verdict.PASS for v in verdicts)
