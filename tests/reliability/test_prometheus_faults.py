"""Prometheus faults never promote a release, follow the noData policy, and say why.

Covers, with the controller running in-process against the sandbox and a real Prometheus
scraping the simulator: Prometheus down, slower than the timeout, answering 401, a gate that
reads NaN, one that reads nothing, one that reads several series. For each: with `noData: hold`
the release stays at its first stage through several checks with a Warning Event naming the
reason; with `noData: fail` the same fault rolls it back after `failureLimit` checks.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from reliability_helpers import stored_rollout
from support.binaries import require_binary
from support.controller import in_process_controller
from support.polling import wait_until
from support.stacks import example_stack

from canary.controller.telemetry import Telemetry
from canary.metrics.prometheus import PrometheusSource
from canary_sandbox.stack import example, example_release


class Slow(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(3)
        self.send_response(200)
        self.end_headers()

    def do_POST(self) -> None:
        self.do_GET()

    def log_message(self, format: str, *args: object) -> None:
        return


class Unauthorized(Slow):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("Content-Length", "0")
        self.end_headers()


@contextlib.contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, str, Telemetry]]:
    require_binary("prometheus")
    workdir = tmp_path_factory.mktemp("stack")
    with contextlib.ExitStack() as exits:
        started = exits.enter_context(example_stack(workdir))
        controller = exits.enter_context(
            in_process_controller(started.kubeconfig, PrometheusSource())
        )
        yield started.api, started.client, started.prometheus.url, controller.telemetry


QUERIES = {
    "nan": 'sum(rate(istio_requests_total{destination_version="nothing"}[10s])) / 0 * 0',
    "empty": "sum(rate(no_such_metric_total[10s]))",
    "several-series": "rate(istio_requests_total[10s])",
}

FAULTS = ["down", "slow", "401", *QUERIES]


@contextlib.contextmanager
def prometheus_for(fault: str, real_url: str) -> Iterator[str]:
    if fault == "down":
        yield "http://127.0.0.1:9"
    elif fault == "slow":
        with serving(Slow) as url:
            yield url
    elif fault == "401":
        with serving(Unauthorized) as url:
            yield url
    else:
        yield real_url


def rollout_with(fault: str, url: str, policy: str) -> dict[str, Any]:
    rollout = example_release()
    rollout["metadata"]["name"] = name = f"ui-{fault}-{policy}"
    rollout["spec"]["virtualService"]["name"] = name
    rollout["spec"]["destinationRule"]["name"] = name
    rollout["spec"]["analysis"].update(interval="1s", failureLimit=3, noData=policy, minRequests=0)
    rollout["spec"]["stages"]["mirror"]["duration"] = "1s"
    rollout["spec"]["prometheus"] = {"url": url, "timeout": "1s"}
    if fault in QUERIES:
        rollout["spec"]["analysis"]["gates"] = [{"name": fault, "query": QUERIES[fault], "max": 1}]
    return rollout


def copy_route_objects(client: Any, name: str) -> None:
    for kind in ("virtualservice", "destinationrule"):
        obj = example(kind)
        obj["metadata"]["name"] = name
        client.apply(obj)


def events_of(client: Any, name: str) -> list[dict[str, Any]]:
    items = client.request("GET", "/api/v1/namespaces/shop/events")["items"]
    return [e for e in items if e["involvedObject"]["name"] == name]


@pytest.mark.parametrize("fault", FAULTS)
def test_hold_policy_holds_and_says_why(stack: Any, fault: str) -> None:
    api, client, real_url, telemetry = stack
    with prometheus_for(fault, real_url) as url:
        rollout = rollout_with(fault, url, "hold")
        name = rollout["metadata"]["name"]
        copy_route_objects(client, name)
        client.apply(rollout)

        def holds() -> float:  # a hold that repeats the stored one is counted, not stored
            labels = {"namespace": "shop", "rollout": name, "counted_as": "noData"}
            return telemetry.registry.get_sample_value("canary_analysis_checks_total", labels) or 0

        wait_until(lambda: holds() >= 3, "three checks", 30, every=0.05)
        time.sleep(3)  # more checks: none of them may advance the release
        status = stored_rollout(api, name)["status"]
    assert status["phase"] == "Progressing"
    assert status["stage"] == "mirror"
    assert status["lastAnalysis"]["countedAs"] == "noData"
    held = wait_until(
        lambda: [e for e in events_of(client, name) if e["reason"] == "AnalysisHeld"],
        "the AnalysisHeld Event",
        10,
        every=0.05,
    )
    assert held[0]["type"] == "Warning"
    assert all(g.get("message") for g in status["lastAnalysis"]["gates"])


@pytest.mark.parametrize("fault", ["down", "empty"])
def test_fail_policy_rolls_back(stack: Any, fault: str) -> None:
    api, client, real_url, _telemetry = stack
    with prometheus_for(fault, real_url) as url:
        rollout = rollout_with(fault, url, "fail")
        name = rollout["metadata"]["name"]
        copy_route_objects(client, name)
        client.apply(rollout)
        wait_until(
            lambda: stored_rollout(api, name).get("status", {}).get("phase") == "RolledBack",
            "the rollback",
            60,
            every=0.05,
        )
        wait_until(  # Events are recorded last, after the status and the traffic
            lambda: any(e["reason"] == "RolledBack" for e in events_of(client, name)),
            "the RolledBack Event",
            10,
            every=0.05,
        )
    status = stored_rollout(api, name)["status"]
    assert status["canaryWeight"] == 0
