"""Shared pieces of the controller tests (the fixtures live in conftest.py)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

from canary.controller.reconcile import Reconciler
from canary.kube.client import KubeCluster
from canary.testing import FixedVerdicts, ManualClock
from canary_sandbox.apiserver import ApiServer
from canary_sandbox.client import SandboxClient
from canary_sandbox.stack import example_release


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


def managed(vs: dict) -> dict:
    return next(r for r in vs["spec"]["http"] if r.get("name") == "primary")


def weights(vs: dict) -> dict[str, int]:
    return {d["destination"]["subset"]: d.get("weight", 100) for d in managed(vs)["route"]}


def quick_rollout() -> dict:
    """examples/ui/rollout.yaml with every stage and check 10 s long."""
    rollout = copy.deepcopy(example_release())
    rollout["spec"]["analysis"]["interval"] = "10s"
    rollout["spec"]["stages"]["mirror"]["duration"] = "10s"
    rollout["spec"]["stages"]["headerCanary"]["duration"] = "10s"
    rollout["spec"]["stages"]["split"]["interval"] = "10s"
    return rollout


def start(env: Env, rollout: dict | None = None) -> None:
    env.client.apply(rollout if rollout is not None else quick_rollout())
    env.reconcile()


def run_until(env: Env, done: Callable[[dict], bool], seconds: float = 10, ticks: int = 60) -> dict:
    """Reconcile every `seconds` of the manual clock until `done(status)`; the status."""
    for _ in range(ticks):
        status = env.rollout().get("status") or {}
        if done(status):
            return status
        env.clock.advance(seconds)
        env.reconcile()
    raise AssertionError(f"never reached: {env.rollout().get('status')}")


def example_rollout(env: Env) -> dict:
    return example_release()


def writes(env: Env) -> int:
    return sum(
        count
        for (verb, _resource), count in env.api.request_log.counters().items()
        if verb in ("create", "update", "patch", "delete")
    )


def events(env: Env, reason: str) -> list[dict]:
    return [e for e in env.cluster.list_events("shop", "ui") if e.get("reason") == reason]
