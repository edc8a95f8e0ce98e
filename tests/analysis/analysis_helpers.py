"""Builders shared by the analysis tests: Rollouts with compare gates."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from canary.core.model import Rollout

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
