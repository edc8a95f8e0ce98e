"""The runtime of `canary controller` on a thread of the test's process.

`in_process_controller(kubeconfig, metrics)` wires it as `canary.controller.main.compose` does
(the Reconciler reports its decisions to the telemetry; the release slots of
`max_concurrent_releases` put the Rollouts a freed slot may begin into the work queue), with the
test's metrics source, and runs it until the context ends; then it must stop within 30 s.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from canary.controller.main import release_slots
from canary.controller.reconcile import Reconciler
from canary.controller.runtime import Controller
from canary.controller.telemetry import Telemetry
from canary.controller.workqueue import WorkQueue
from canary.kube.client import KubeCluster
from canary.mesh.istio import IstioRouter
from canary.metrics.port import MetricsSource


@contextmanager
def in_process_controller(
    kubeconfig: Path,
    metrics: MetricsSource,
    *,
    max_concurrent_releases: int = 0,
    **cluster_options: Any,
) -> Iterator[Controller]:
    cluster = KubeCluster.from_kubeconfig(str(kubeconfig), qps=1000, burst=1000, **cluster_options)
    telemetry = Telemetry()
    queue = WorkQueue()
    slots = release_slots(max_concurrent_releases, queue)
    reconciler = Reconciler(
        cluster=cluster,
        router=IstioRouter(),
        metrics=metrics,
        on_decision=telemetry.observe_decision,
        slots=slots,
    )
    controller = Controller(cluster, reconciler, telemetry=telemetry, slots=slots, queue=queue)
    stop = threading.Event()
    thread = threading.Thread(target=controller.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield controller
    finally:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the controller did not stop"
        cluster.close()
