"""Shared pieces of the notification tests: a sandbox with examples/ui and Secrets holding the
receivers' URLs, a reconciler wired with the real notifier, and a release driven tick by tick
on a fake clock (so two runs can be compared step for step)."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from support.rollouts import quick_rollout

from canary.controller.integrations import secret_reader
from canary.controller.reconcile import Reconciler
from canary.kube.client import KubeCluster
from canary.mesh.istio import IstioRouter
from canary.notify.dispatcher import Dispatcher, RateLimit, RetryPolicy
from canary.notify.notifier import Notifier
from canary.testing import FixedVerdicts, ManualClock
from canary_sandbox.client import SandboxClient, SandboxError
from canary_sandbox.stack import NAMESPACE, SERVICE

ROLLOUT = ("canary.dev/v1alpha1", "Rollout")
ENDED = ("Succeeded", "RolledBack", "Aborted")
FAST_RETRY = RetryPolicy(attempts=3, base_seconds=0.05, cap_seconds=0.2, timeout_seconds=1.0)
PATIENT = RetryPolicy(attempts=3, base_seconds=0.05, cap_seconds=0.2, timeout_seconds=120.0)


def fast_rate() -> RateLimit:
    return RateLimit(per_second=1000.0, burst=1000)


def put_secret(client: SandboxClient, name: str, url: str, key: str = "address") -> None:
    """Create (or replace) Secret shop/<name> holding `url` under `key`."""
    collection = f"/api/v1/namespaces/{NAMESPACE}/secrets"
    with contextlib.suppress(SandboxError):
        client.request("DELETE", f"{collection}/{name}")
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {key: base64.b64encode(url.encode()).decode()},
    }
    client.request("POST", collection, secret)


def notified_rollout(receivers: dict[str, str]) -> dict[str, Any]:
    """examples/ui with a 10s interval, every stage one check long, notifying `receivers`
    ({provider: secret name})."""
    body = quick_rollout(settle="10s")
    spec = body["spec"]
    spec["stages"]["split"]["steps"] = [50, 100]
    spec["notifications"] = [
        {"name": f"to-{provider}", "provider": provider, "secretRef": {"name": secret}}
        for provider, secret in receivers.items()
    ]
    return body


@dataclass
class Release:
    client: SandboxClient
    reconciler: Reconciler
    clock: ManualClock
    metrics: FixedVerdicts
    notifier: Notifier
    outcomes: list[tuple[str, str]]

    def rollout(self) -> dict[str, Any]:
        return self.client.get(*ROLLOUT, NAMESPACE, SERVICE)

    def run(self, max_ticks: int = 60) -> list[tuple[Any, ...]]:
        """Reconcile every 10 fake seconds until the release ends; the positions it took."""
        positions: list[tuple[Any, ...]] = []
        for _ in range(max_ticks):
            self.reconciler.reconcile(self.rollout())
            status = self.rollout().get("status") or {}
            positions.append(
                (
                    self.clock.now,
                    status.get("phase"),
                    status.get("stage"),
                    status.get("stepIndex"),
                    status.get("canaryWeight"),
                )
            )
            if positions[0][1] not in ENDED and status.get("phase") in ENDED:
                return positions
            self.clock.now += timedelta(seconds=10)
        raise AssertionError(f"the release did not end: {positions[-3:]}")


def wired(
    client: SandboxClient, kubeconfig: Path, retry: RetryPolicy = FAST_RETRY
) -> Iterator[Release]:
    cluster = KubeCluster.from_kubeconfig(str(kubeconfig), qps=1000, burst=1000)
    outcomes: list[tuple[str, str]] = []
    dispatcher = Dispatcher(
        on_delivery=lambda provider, outcome: outcomes.append((provider, outcome)),
        retry=retry,
        rate=fast_rate,
    )
    notifier = Notifier(dispatcher, secret_reader(cluster))
    clock, metrics = ManualClock(), FixedVerdicts(failing_value=80.0)
    reconciler = Reconciler(
        cluster=cluster, router=IstioRouter(), metrics=metrics, clock=clock, notifier=notifier
    )
    try:
        yield Release(client, reconciler, clock, metrics, notifier, outcomes)
    finally:
        notifier.close(timeout=0.0)
