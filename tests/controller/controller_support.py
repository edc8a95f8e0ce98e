"""Shared pieces of the controller tests (the fixtures live in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from canary.controller.reconcile import Reconciler
from canary.core.model import GateResult, Rollout, Verdict
from canary.kube.client import KubeCluster
from canary.sandbox.apiserver import ApiServer
from canary.sandbox.client import SandboxClient


@dataclass
class SetVerdicts:
    """A MetricsSource that answers every gate with `verdict` and counts its calls."""

    verdict: Verdict = Verdict.PASS
    calls: int = 0

    def evaluate(self, rollout: Rollout) -> tuple[GateResult, ...]:
        self.calls += 1
        value = 100.0 if self.verdict is Verdict.PASS else 50.0
        return tuple(
            GateResult(name=g.name, verdict=self.verdict, value=value, threshold=">= 99.0%")
            for g in rollout.spec.analysis.gates
        )


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2030, 1, 1, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Env:
    api: ApiServer
    client: SandboxClient
    cluster: KubeCluster
    metrics: SetVerdicts
    clock: Clock
    reconciler: Reconciler

    def rollout(self) -> dict:
        return self.client.get("canary.dev/v1alpha1", "Rollout", "shop", "ui")

    def vs(self) -> dict:
        return self.client.get("networking.istio.io/v1beta1", "VirtualService", "shop", "ui")

    def dr(self) -> dict:
        return self.client.get("networking.istio.io/v1beta1", "DestinationRule", "shop", "ui")

    def reconcile(self) -> None:
        self.reconciler.reconcile(self.rollout())
