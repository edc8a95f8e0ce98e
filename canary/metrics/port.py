"""The metrics port: what the controller asks of any metrics backend."""

from __future__ import annotations

from typing import Protocol

from canary.core.model import Rollout
from canary.core.status import GateResult


class MetricsSource(Protocol):
    """Measures a Rollout's canary against its gates.

    `evaluate` returns one `GateResult` per gate, in spec order, and never raises for a
    backend problem (unreachable, timeout, HTTP error, bad query): those are `error` verdicts
    whose message names the backend and the fix.
    """

    def evaluate(self, rollout: Rollout) -> tuple[GateResult, ...]: ...
