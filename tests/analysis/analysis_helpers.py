"""Builders shared by the analysis tests: Rollouts with compare gates, the simulated scenarios."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from canary.core.model import Rollout
from canary_sandbox.traffic import Split, TrafficSimulator

NAMESPACE = "shop"
ERROR_RATE = {
    "name": "errors-vs-stable",
    "compare": {"against": "stable", "metric": "errorRate", "maxIncrease": 50},
}
LATENCY = {
    "name": "p99-vs-stable",
    "compare": {"against": "stable", "metric": "latency", "maxIncrease": 100, "quantile": 0.99},
}


def rollout(
    service: str,
    prometheus_url: str,
    *,
    gates: list[dict[str, Any]] | None = None,
    stage_started_at: datetime | None = None,
    min_requests: int = 50,
    interval: str = "1s",
    split: dict[str, Any] | None = None,
) -> Rollout:
    """A Rollout of `service` (stable v1, canary v2) in its split stage since `stage_started_at`."""
    status: dict[str, Any] = {"stableVersion": "v1", "canaryVersion": "v2"}
    if stage_started_at is not None:
        status |= {"phase": "Progressing", "stage": "split", "stageStartedAt": stage_started_at}
    return Rollout.model_validate(
        {
            "metadata": {"name": service, "namespace": NAMESPACE},
            "spec": {
                "host": service,
                "virtualService": {"name": service, "route": "primary"},
                "destinationRule": {"name": service},
                "stable": {"subset": "stable"},
                "canary": {"subset": "canary", "version": "v2"},
                "stages": {"split": split or {"steps": [10, 50], "interval": "5s"}},
                "analysis": {
                    "interval": interval,
                    "window": "10s",
                    "minRequests": min_requests,
                    "failureLimit": 2,
                    "gates": gates or [ERROR_RATE, LATENCY],
                },
                "prometheus": {"url": prometheus_url, "timeout": "5s"},
            },
            "status": status,
        }
    )


SETTLE_SECONDS = 8.0  # a few scrapes of every scenario before the first test reads them
SCENARIOS: dict[str, tuple[float, dict[str, float]]] = {
    # service: (requests per second, canary behaviour); stable answers 0.5 % 5xx
    "healthy": (200, {"error_rate": 0.005}),
    "tenfold": (200, {"error_rate": 0.05}),
    "slow": (200, {"error_rate": 0.005, "p50_ms": 60, "p99_ms": 900}),
    "thin": (2, {"error_rate": 0.005}),
}


def add_scenarios(simulator: TrafficSimulator) -> None:
    for name, (rps, canary) in SCENARIOS.items():
        simulator.add_service(name, NAMESPACE, versions=("v1", "v2"), rps=rps)
        simulator.set_version(NAMESPACE, name, "v1", error_rate=0.005)
        simulator.set_version(NAMESPACE, name, "v2", **canary)
        simulator.set_split(NAMESPACE, name, Split({"v1": 50, "v2": 50}))
