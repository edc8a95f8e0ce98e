"""Helpers for the reliability tests: an in-process controller with gates the test sets, and
a recorder of every stored version of the VirtualService read straight from the sandbox's store
(so HTTP faults aimed at the controller never blind the test)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from canary.controller.reconcile import Reconciler
from canary.controller.runtime import Controller
from canary.controller.telemetry import Telemetry
from canary.kube.client import KubeCluster
from canary.mesh.istio import IstioRouter
from canary.metrics.port import MetricsSource
from canary_sandbox.apiserver import ApiServer
from canary_sandbox.recorder import StoreRecorder, named

Obj = dict[str, Any]


@contextmanager
def in_process_controller(
    kubeconfig: Path, metrics: MetricsSource, **cluster_options: Any
) -> Iterator[Controller]:
    cluster = KubeCluster.from_kubeconfig(str(kubeconfig), qps=1000, burst=1000, **cluster_options)
    reconciler = Reconciler(cluster=cluster, router=IstioRouter(), metrics=metrics)
    controller = Controller(cluster, reconciler, telemetry=Telemetry())
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield controller
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the controller did not stop"


def store_recorder(api: ApiServer, plural: str, name: str = "ui") -> StoreRecorder:
    """Every stored version of `plural`/`name`, read from the store (see StoreRecorder)."""
    return StoreRecorder(api.store, named(plural, name))


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def traffic_state(vs: Obj) -> tuple[int, float, bool]:
    """(canary weight, mirror percent, header route present) of the ui VirtualService."""
    routes = vs["spec"]["http"]
    managed = next(r for r in routes if r.get("name") == "primary")
    weights = {d["destination"]["subset"]: d.get("weight", 100) for d in managed["route"]}
    assert sum(weights.values()) == 100, weights
    mirror = float(managed.get("mirrorPercentage", {}).get("value", 0.0))
    header = any(r.get("name") == "ui-canary" for r in routes)
    return weights.get("canary", 0), mirror, header


def distinct(states: list[Any]) -> list[Any]:
    return [s for i, s in enumerate(states) if i == 0 or states[i - 1] != s]


def stored_rollout(api: ApiServer, name: str = "ui", namespace: str = "shop") -> Obj:
    """The Rollout as stored, read past the HTTP layer (and so past injected faults)."""
    return api.store.get(("canary.dev", "rollouts"), namespace, name) or {}
