"""Escaping proven by a real Prometheus.

Aspects: a service or version named `ui"} or vector(1) #` is queried literally (the query is
accepted, measures exactly that series, and `vector(1)` never makes a pass); a weird version
label matches exactly its own series; any string round-trips through Prometheus's parser.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from metrics_helpers import INJECTION, WEIRD_VERSION, rollout
from support.scraped import Sandbox
from test_prometheus_gates import instant

from canary.core.status import Verdict
from canary.metrics.prometheus import PrometheusSource
from canary.metrics.promql import escape_label_value, quoted


def test_an_injected_service_name_measures_exactly_that_service(sandbox: Sandbox) -> None:
    success, latency = PrometheusSource().evaluate(rollout(INJECTION, sandbox.url))
    assert success.verdict is Verdict.FAIL  # the 50 % errors of the service named like that
    assert success.value is not None and 35 < success.value < 65
    assert latency.verdict is Verdict.PASS


def test_an_injected_version_is_no_data_never_a_pass(sandbox: Sandbox) -> None:
    injected = rollout("healthy", sandbox.url, status_canary_version=INJECTION, min_requests=0)
    results = PrometheusSource().evaluate(injected)
    assert [r.verdict for r in results] == [Verdict.NO_DATA, Verdict.NO_DATA]
    assert all(r.samples == 0 for r in results)


def test_an_injected_namespace_in_a_custom_query_is_harmless(sandbox: Sandbox) -> None:
    gate = {"name": "anything", "query": 'count(up{job="{{ namespace }}"}) or vector(0)', "min": 1}
    probe = rollout("healthy", sandbox.url, gates=[gate], namespace=INJECTION, min_requests=0)
    (result,) = PrometheusSource().evaluate(probe)
    assert result.verdict is Verdict.FAIL
    assert result.value == 0


def test_a_weird_version_label_matches_exactly_its_own_series(sandbox: Sandbox) -> None:
    series = instant(
        sandbox.url, f"istio_requests_total{{destination_version={quoted(WEIRD_VERSION)}}}"
    )
    assert series
    assert {s["metric"]["destination_version"] for s in series} == {WEIRD_VERSION}  # type: ignore[index]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[
        *settings.default.suppress_health_check,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(value=st.text(max_size=40))
def test_any_string_round_trips_through_prometheus(sandbox: Sandbox, value: str) -> None:
    replacement = escape_label_value(value.replace("$", "$$"))
    promql = f'label_replace(vector(1), "probe", "{replacement}", "", "")'
    result = instant(sandbox.url, promql)
    labels = result[0]["metric"] if result else {}
    assert labels == ({"probe": value} if value else {})
