"""The Grafana dashboard against a real Prometheus and the controller's real metrics.

Aspects: the JSON loads and every panel has a query; every PromQL expression in it (panel
targets, template-variable queries, annotations), with the template variables substituted, is
accepted by a real Prometheus that scrapes the traffic simulator and a controller's /metrics;
the canary-versus-stable success rate returns one series per version; every controller metric
the dashboard or the alert rules name is one the controller exports.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from observability_helpers import (
    ALERTS,
    METRIC,
    dashboard,
    dashboard_expressions,
    substitute,
)
from support.binaries import require_binary
from support.polling import wait_until

from canary.controller.telemetry import Telemetry, serve_http
from canary.core.machine import Observed, advance
from canary.core.model import Rollout
from canary_sandbox.prometheus import PrometheusProcess
from canary_sandbox.stack import example_release
from canary_sandbox.traffic import Split, TrafficSimulator

EXAMPLE_NOW = datetime(2030, 1, 1, tzinfo=UTC)


def observed_telemetry() -> Telemetry:
    """A controller's metrics after one decision and one of each counted thing, with a release
    cap (whose gauges exist only with --max-concurrent-releases)."""
    telemetry = Telemetry()
    telemetry.track_release_slots(2, running=lambda: 1, waiting=lambda: 0)
    rollout = Rollout.model_validate(example_release())
    decision = advance(rollout, Observed(stable_version="v1"), EXAMPLE_NOW)
    telemetry.observe_decision(rollout, decision)
    telemetry.reconcile_seconds.observe(0.01)
    telemetry.reconcile_errors.labels("UnavailableError").inc()
    telemetry.api_requests.labels("get", "rollouts", "200").inc()
    telemetry.promql_requests.labels("ok").inc()
    telemetry.notifications.labels("slack", "sent").inc()
    telemetry.webhook_calls.labels("gate", "pass").inc()
    telemetry.rollbacks.labels("shop", "ui").inc()
    telemetry.gate_value.labels("shop", "ui", "success-rate").set(99.5)
    return telemetry


def exported_names(telemetry: Telemetry) -> set[str]:
    return {s.name for family in telemetry.registry.collect() for s in family.samples}


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusProcess]:
    require_binary("prometheus")
    telemetry = observed_telemetry()
    server = serve_http("127.0.0.1:0", telemetry, lambda: True, lambda: True)
    simulator = TrafficSimulator(seed=3)
    simulator.add_service("ui", "shop", versions=("v1", "v2"), rps=50)
    simulator.set_split("shop", "ui", Split({"v1": 50, "v2": 50}))
    controller = f"127.0.0.1:{server.server_address[1]}"
    try:
        with (
            simulator,
            PrometheusProcess(
                targets=[simulator.address, controller], scrape_interval="1s"
            ) as prom,
        ):
            wait_for_series(prom.url, "istio_requests_total")
            yield prom
    finally:
        server.shutdown()


def query(url: str, promql: str) -> dict[str, Any]:
    address = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    try:
        with urllib.request.urlopen(address, timeout=10) as response:
            answer: dict[str, Any] = json.load(response)
    except urllib.error.HTTPError as error:
        answer = json.load(error)
    return answer


def wait_for_series(url: str, metric: str) -> None:
    """Until Prometheus has a rate over two scrapes (a guard, not a measurement)."""
    wait_until(
        lambda: query(url, f"rate({metric}[1m])").get("data", {}).get("result"),
        f"a rate of {metric} in Prometheus",
        60,
        every=0.5,
    )


def test_the_dashboard_loads_and_every_panel_queries_something() -> None:
    board = dashboard()
    assert board["uid"] == "canary-rollouts"
    assert all(panel.get("targets") for panel in board["panels"])
    titles = " ".join(p["title"] for p in board["panels"])
    for topic in ("Phase", "weight", "Success rate", "Latency", "Rollbacks", "Reconcile"):
        assert topic in titles


@pytest.mark.parametrize(("where", "expr"), dashboard_expressions())
def test_every_dashboard_expression_is_accepted(
    prometheus: PrometheusProcess, where: str, expr: str
) -> None:
    answer = query(prometheus.url, expr)
    assert answer["status"] == "success", f"{where}: {answer.get('error')}\n{expr}"


def test_success_rate_by_version_shows_canary_and_stable(prometheus: PrometheusProcess) -> None:
    board = dashboard()
    panel = next(p for p in board["panels"] if p["title"].startswith("Success rate"))
    result = query(prometheus.url, substitute(panel["targets"][0]["expr"]))["data"]["result"]
    assert {series["metric"]["destination_version"] for series in result} == {"v1", "v2"}


def test_controller_series_reach_prometheus(prometheus: PrometheusProcess) -> None:
    result = query(prometheus.url, 'canary_rollout_phase{namespace="shop", rollout="ui"} == 1')
    assert [s["metric"]["phase"] for s in result["data"]["result"]] == ["Progressing"]


def test_every_controller_metric_named_is_exported() -> None:
    exported = exported_names(observed_telemetry())
    texts = [e for _, e in dashboard_expressions()]
    for group in yaml.safe_load(Path(ALERTS).read_text())["groups"]:
        texts += [rule["expr"] for rule in group["rules"]]
    named = {m for text in texts for m in METRIC.findall(text) if m.startswith("canary_")}
    assert named
    assert named <= exported, named - exported
