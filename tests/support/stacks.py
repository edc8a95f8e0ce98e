"""examples/ui on an API server, the traffic simulator following its VirtualService, and a real
Prometheus scraping the simulator every second: the stack the release tests run on.

`example_stack(workdir)` starts it on the sandbox (examples/ui in `shop`, v1 and v2 ready, a
kubeconfig in `workdir`), or with `plane` on a real control plane, in `namespace`. A missing
Prometheus skips the test locally and fails it under CI=true (`support.binaries`). Everything
stops when the context ends, in reverse order.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from canary_sandbox.apiserver import ApiServer
from canary_sandbox.client import SandboxClient
from canary_sandbox.controlplane import ControlPlane
from canary_sandbox.prometheus import PrometheusProcess
from canary_sandbox.stack import (
    NAMESPACE,
    cluster_with_example,
    sandbox_with_example,
    simulated_traffic,
)
from canary_sandbox.traffic import TrafficSimulator
from support.binaries import require_binary


@dataclass
class ExampleStack:
    """On the sandbox `api` is the ApiServer (its faults and store); on a real control plane
    `plane` is the ControlPlane."""

    client: SandboxClient
    simulator: TrafficSimulator
    prometheus: PrometheusProcess
    workdir: Path
    namespace: str
    api: ApiServer | None = None
    plane: ControlPlane | None = None

    @property
    def kubeconfig(self) -> Path:
        return self.workdir / "kubeconfig"


@contextlib.contextmanager
def example_stack(
    workdir: Path, plane: ControlPlane | None = None, namespace: str = NAMESPACE
) -> Iterator[ExampleStack]:
    require_binary("prometheus")
    kubeconfig = workdir / "kubeconfig"
    with contextlib.ExitStack() as exits:
        api = None
        if plane is None:
            api, client = exits.enter_context(sandbox_with_example(workdir))
        else:
            plane.write_kubeconfig(kubeconfig)
            client = exits.enter_context(cluster_with_example(kubeconfig, namespace))
        simulator = exits.enter_context(simulated_traffic(kubeconfig, namespace=namespace))
        prometheus = exits.enter_context(
            PrometheusProcess(targets=[simulator.address], scrape_interval="1s")
        )
        yield ExampleStack(client, simulator, prometheus, workdir, namespace, api, plane)
