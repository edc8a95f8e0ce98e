"""Shared pieces of the controller tests (the fixtures live in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass

from canary.controller.reconcile import Reconciler
from canary.kube.client import KubeCluster
from canary.sandbox.apiserver import ApiServer
from canary.sandbox.client import SandboxClient
from canary.sandbox.doubles import FixedVerdicts, ManualClock


@dataclass
class Env:
    api: ApiServer
    client: SandboxClient
    cluster: KubeCluster
    metrics: FixedVerdicts
    clock: ManualClock
    reconciler: Reconciler

    def rollout(self) -> dict:
        return self.client.get("canary.dev/v1alpha1", "Rollout", "shop", "ui")

    def vs(self) -> dict:
        return self.client.get("networking.istio.io/v1beta1", "VirtualService", "shop", "ui")

    def dr(self) -> dict:
        return self.client.get("networking.istio.io/v1beta1", "DestinationRule", "shop", "ui")

    def reconcile(self) -> None:
        self.reconciler.reconcile(self.rollout())
