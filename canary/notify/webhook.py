"""A generic JSON webhook: the notice as one JSON object, field for field."""

from __future__ import annotations

from typing import Any

from canary.core.notices import Notice

NAME = "webhook"


def body(notice: Notice) -> dict[str, Any]:
    return {
        "event": notice.event.value,
        "namespace": notice.namespace,
        "rollout": notice.rollout,
        "message": notice.message,
        "phase": notice.phase,
        "stage": notice.stage,
        "step": notice.step,
        "canaryWeight": notice.canary_weight,
        "stableVersion": notice.stable_version,
        "canaryVersion": notice.canary_version,
        "failedGates": [
            {"name": g.name, "value": g.value, "threshold": g.threshold, "message": g.message}
            for g in notice.failed_gates
        ],
    }
