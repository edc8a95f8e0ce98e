"""The traffic simulator, without Prometheus.

Aspects: splits from a VirtualService and DestinationRule (weights, mirror, header route);
mirrored copies reported only by the destination; the header share; seeded determinism;
the /control endpoint; KubeRouting following the objects on an API server named by a kubeconfig.
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from canary_sandbox.apiserver import ApiServer, bundled_crd_paths
from canary_sandbox.client import SandboxClient
from canary_sandbox.traffic import (
    ISTIO_DURATION_BUCKETS_MS,
    KubeRouting,
    Split,
    TrafficSimulator,
    split_from,
)

DR = {"spec": {"subsets": [{"name": "stable", "labels": {"version": "v1"}},
                           {"name": "canary", "labels": {"version": "v2"}}]}}  # fmt: skip


def virtual_service(**managed: Any) -> dict[str, Any]:
    header = {"name": "app-canary", "match": [{"headers": {"x": {"exact": "y"}}}],
              "route": [{"destination": {"host": "ui", "subset": "canary"}}]}  # fmt: skip
    primary = {"name": "primary", **managed}
    return {"spec": {"http": [header, primary, {"name": "other", "route": []}]}}


def counts(text: str, **labels: str) -> int:
    """The sum of istio_requests_total samples whose labels include `labels`."""
    total = 0
    for line in text.splitlines():
        if line.startswith("istio_requests_total{") and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_a_split_follows_weights_mirror_and_the_header_route() -> None:
    vs = virtual_service(
        route=[{"destination": {"host": "ui", "subset": "stable"}, "weight": 90},
               {"destination": {"host": "ui", "subset": "canary"}, "weight": 10}],
        mirror={"host": "ui", "subset": "canary"},
        mirrorPercentage={"value": 25.0},
    )  # fmt: skip
    assert split_from(vs, DR, "primary") == Split({"v1": 90, "v2": 10}, "v2", 25.0, "v2")


def test_a_mirror_without_percentage_mirrors_everything_and_one_destination_takes_all() -> None:
    primary = {
        "name": "primary",
        "mirror": {"host": "ui", "subset": "canary"},
        "route": [{"destination": {"host": "ui", "subset": "stable"}}],
    }
    vs = {"spec": {"http": [primary]}}
    assert split_from(vs, DR, "primary") == Split({"v1": 100}, "v2", 100.0, None)


def test_a_missing_route_is_an_error() -> None:
    with pytest.raises(ValueError, match="no http route named 'primary'"):
        split_from({"spec": {"http": []}}, DR, "primary")


def test_mirrored_copies_are_reported_only_by_the_destination() -> None:
    simulator = TrafficSimulator(seed=1)
    simulator.add_service("ui", "shop", versions=("v1", "v2"), rps=100, header_share=0)
    simulator.set_split("shop", "ui", Split({"v1": 100, "v2": 0}, "v2", 100.0))
    simulator.advance(10)
    text = simulator.metrics_text()
    assert counts(text, reporter="destination", destination_version="v2") == 1000
    assert counts(text, reporter="source", destination_version="v2") == 0
    assert counts(text, reporter="source", destination_version="v1") == 1000


def test_the_header_share_reaches_the_header_route() -> None:
    simulator = TrafficSimulator(seed=1)
    simulator.add_service("ui", "shop", versions=("v1", "v2"), rps=1000, header_share=0.05)
    simulator.set_split("shop", "ui", Split({"v1": 100}, header_version="v2"))
    simulator.advance(10)
    canary = counts(simulator.metrics_text(), reporter="source", destination_version="v2")
    assert 350 < canary < 650


def test_errors_and_histograms_follow_the_version_profile() -> None:
    simulator = TrafficSimulator(seed=1)
    simulator.add_service("ui", "shop", versions=("v1",), rps=1000)
    simulator.set_version("shop", "ui", "v1", error_rate=0.1, p50_ms=20, p99_ms=800)
    simulator.advance(10)
    text = simulator.metrics_text()
    errors = counts(text, reporter="destination", response_code="503")
    assert 800 < errors < 1200
    buckets = re.findall(r'_bucket\{[^}]*le="([^"]+)"', text)
    assert buckets[: len(ISTIO_DURATION_BUCKETS_MS) + 1] == [
        *(f"{b:g}" for b in ISTIO_DURATION_BUCKETS_MS),
        "+Inf",
    ]


def test_the_same_seed_gives_the_same_metrics() -> None:
    def run() -> str:
        simulator = TrafficSimulator(seed=42)
        simulator.add_service("ui", "shop", versions=("v1", "v2"), rps=77)
        simulator.set_split("shop", "ui", Split({"v1": 70, "v2": 30}, "v2", 50.0, "v2"))
        simulator.advance(5)
        return simulator.metrics_text()

    assert run() == run()


def post(url: str, body: object) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


def test_the_control_endpoint_changes_and_shows_the_state() -> None:
    with TrafficSimulator(seed=1) as simulator:
        status, body = post(
            f"{simulator.url}/control",
            {"service": "ui", "namespace": "shop", "version": "v2", "errorRate": 0.1,
             "latencyMs": {"p50": 20, "p99": 800}, "weights": {"v1": 90, "v2": 10}},
        )  # fmt: skip
        assert status == 200
        assert body["versions"]["v2"] == {"errorRate": 0.1, "latencyMs": {"p50": 20, "p99": 800}}
        assert body["routing"]["weights"] == {"v1": 90, "v2": 10}
        too_much = {"service": "ui", "namespace": "shop", "version": "v2", "errorRate": 2}
        bad_status, bad = post(f"{simulator.url}/control", too_much)
        assert bad_status == 400 and "errorRate is a fraction" in bad["error"]
        no_version, bad = post(f"{simulator.url}/control", {"service": "ui", "errorRate": 0.5})
        assert no_version == 400 and 'give "version"' in bad["error"]
        with urllib.request.urlopen(f"{simulator.url}/control", timeout=5) as response:
            assert json.load(response)["services"][0]["service"] == "ui"


def test_kube_routing_follows_the_objects_it_reads_through_a_kubeconfig(tmp_path: Path) -> None:
    def istio(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "networking.istio.io/v1beta1", "kind": kind,
                "metadata": {"name": "ui", "namespace": "shop"}, **spec}  # fmt: skip

    vs = virtual_service(
        route=[{"destination": {"host": "ui", "subset": "stable"}, "weight": 75},
               {"destination": {"host": "ui", "subset": "canary"}, "weight": 25}]
    )  # fmt: skip
    dr = {"spec": {"host": "ui", **DR["spec"]}}
    with ApiServer() as api:
        api.install_crd_files(bundled_crd_paths())
        client = SandboxClient(api.url)
        client.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
        for obj in (istio("VirtualService", vs), istio("DestinationRule", dr)):
            client.apply(obj)
        routing = KubeRouting.from_kubeconfig(api.write_kubeconfig(tmp_path / "kubeconfig"),
                                              "shop", "ui")  # fmt: skip
        try:
            assert routing.refresh() == Split({"v1": 75, "v2": 25}, None, 0.0, "v2")
            client.delete(client.path_of(istio("DestinationRule", dr)))
            assert routing.refresh() == Split({"v1": 75, "v2": 25}, None, 0.0, "v2")
            assert routing.last_error is not None and "not found" in routing.last_error
        finally:
            routing.stop()
