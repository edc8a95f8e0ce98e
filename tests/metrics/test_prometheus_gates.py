"""Gates measured by a real Prometheus scraping the traffic simulator.

Aspects: healthy canary passes; 5xx and slow canaries fail their gates; no traffic and too
little traffic are noData; a mirrored-only canary is measured on the destination reporter;
custom gates end to end; several series are an error naming the differing labels.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

from metrics_helpers import NAMESPACE, P99_LATENCY, SUCCESS_RATE, rollout
from support.scraped import Sandbox

from canary.core.status import Verdict
from canary.metrics.prometheus import PrometheusSource
from canary.metrics.verdicts import combine


def instant(url: str, promql: str) -> list[dict[str, object]]:
    query = urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    result: list[dict[str, object]] = body["data"]["result"]
    return result


def test_a_healthy_canary_passes_both_gates(sandbox: Sandbox) -> None:
    success, latency = PrometheusSource().evaluate(rollout("healthy", sandbox.url))
    assert (success.verdict, latency.verdict) == (Verdict.PASS, Verdict.PASS)
    assert success.value == 100.0
    assert success.threshold == ">= 99.0%"
    assert latency.threshold == "<= 500ms"
    assert latency.value is not None and latency.value < 500
    assert success.samples is not None and success.samples >= 20
    assert success.query is not None and 'destination_version="v2"' in success.query
    assert combine((success, latency)) is Verdict.PASS


def test_ten_percent_5xx_fails_the_success_rate_gate(sandbox: Sandbox) -> None:
    success, latency = PrometheusSource().evaluate(rollout("errors", sandbox.url))
    assert success.verdict is Verdict.FAIL
    assert success.value is not None and 80 < success.value < 97
    assert latency.verdict is Verdict.PASS
    assert "breaks the threshold >= 99.0%" in (success.message or "")


def test_a_p99_of_800ms_fails_a_500ms_latency_gate(sandbox: Sandbox) -> None:
    success, latency = PrometheusSource().evaluate(rollout("slow", sandbox.url))
    assert success.verdict is Verdict.PASS
    assert latency.verdict is Verdict.FAIL
    assert latency.value is not None and latency.value > 500


def test_a_canary_without_traffic_is_no_data(sandbox: Sandbox) -> None:
    results = PrometheusSource().evaluate(rollout("idle", sandbox.url))
    assert [r.verdict for r in results] == [Verdict.NO_DATA, Verdict.NO_DATA]
    assert all(r.samples == 0 for r in results)
    assert "fewer than minRequests 20" in (results[0].message or "")


def test_fewer_requests_than_min_requests_is_no_data(sandbox: Sandbox) -> None:
    results = PrometheusSource().evaluate(rollout("trickle", sandbox.url, min_requests=20))
    assert [r.verdict for r in results] == [Verdict.NO_DATA, Verdict.NO_DATA]
    assert results[0].samples is not None and 0 < results[0].samples < 20


def test_no_data_even_with_zero_min_requests_when_the_canary_has_no_series(
    sandbox: Sandbox,
) -> None:
    results = PrometheusSource().evaluate(rollout("idle", sandbox.url, min_requests=0))
    assert [r.verdict for r in results] == [Verdict.NO_DATA, Verdict.NO_DATA]


def test_a_mirrored_only_canary_is_still_measured(sandbox: Sandbox) -> None:
    success, latency = PrometheusSource().evaluate(rollout("mirrored", sandbox.url))
    assert (success.verdict, latency.verdict) == (Verdict.PASS, Verdict.PASS)
    assert success.samples is not None and success.samples >= 20
    source_side = 'istio_requests_total{reporter="source",destination_service_name="mirrored",destination_version="v2"}'  # noqa: E501
    assert instant(sandbox.url, source_side) == []


def test_a_custom_gate_works_end_to_end(sandbox: Sandbox) -> None:
    server_errors = {
        "name": "server-errors-per-second",
        "query": 'sum(rate(istio_requests_total{reporter="destination", '
        'destination_service_name="{{service}}", destination_workload_namespace="{{ namespace }}", '
        'destination_version="{{ canary.version }}", response_code=~"5.."}[{{ window }}]))',
        "max": 0.5,
    }
    canary_rate = {
        "name": "canary-rps",
        "query": "sum(rate(istio_requests_total{reporter='destination', "
        "destination_version='{{ canary.version }}', destination_service_name='{{ service }}'}"
        "[{{ window }}]))",
        "min": 10,
    }
    gates = [server_errors, canary_rate]
    failing = PrometheusSource().evaluate(rollout("errors", sandbox.url, gates=gates))
    assert [r.verdict for r in failing] == [Verdict.FAIL, Verdict.PASS]
    assert failing[0].threshold == "<= 0.5"
    assert failing[0].query is not None and "[10s]" in failing[0].query
    healthy = PrometheusSource().evaluate(rollout("healthy", sandbox.url, gates=gates))
    assert [r.verdict for r in healthy] == [Verdict.NO_DATA, Verdict.PASS]


def test_several_series_are_an_error_naming_the_labels_that_differ(sandbox: Sandbox) -> None:
    by_reporter = {
        "name": "by-reporter",
        "query": 'sum by (reporter) (rate(istio_requests_total{destination_service_name="healthy",'
        'destination_version="{{ canary.version }}"}[{{ window }}]))',
        "min": 1,
    }
    (result,) = PrometheusSource().evaluate(rollout("healthy", sandbox.url, gates=[by_reporter]))
    assert result.verdict is Verdict.ERROR
    assert "2 series" in (result.message or "")
    assert "reporter ('destination', 'source')" in (result.message or "")


def test_a_bad_custom_query_is_an_error_naming_prometheus_and_the_fix(sandbox: Sandbox) -> None:
    broken = {"name": "broken", "query": "sum(rate(istio_requests_total[{{ window }}]", "max": 1}
    (result,) = PrometheusSource().evaluate(rollout("healthy", sandbox.url, gates=[broken]))
    assert result.verdict is Verdict.ERROR
    message = result.message or ""
    assert f"Prometheus at {sandbox.url} rejected the query" in message
    assert "fix the query" in message


def test_an_unknown_placeholder_is_an_error_before_any_query(sandbox: Sandbox) -> None:
    gate = {"name": "typo", "query": 'up{job="{{ canary.versoin }}"}', "max": 1}
    (result,) = PrometheusSource().evaluate(rollout("healthy", sandbox.url, gates=[gate]))
    assert result.verdict is Verdict.ERROR
    assert "unknown placeholder {{ canary.versoin }}" in (result.message or "")


def test_every_gate_is_answered_in_spec_order(sandbox: Sandbox) -> None:
    gates = [P99_LATENCY, SUCCESS_RATE]
    results = PrometheusSource().evaluate(rollout("healthy", sandbox.url, gates=gates))
    assert [r.name for r in results] == ["p99-latency", "success-rate"]
    assert NAMESPACE in (results[0].query or "")
