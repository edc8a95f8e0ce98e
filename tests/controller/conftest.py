"""Fixtures for the reconcile tests: examples/ui on an API server, the real `KubeCluster` over
HTTP, and a metrics source whose verdicts the test sets (a port implementation, not a mock of
any client).

- `backend`: "sandbox", or "real" for a test parametrised with `ON_BOTH`
  (tests/support/controlplane.py), which runs it once on each.
- `env`: an `Env` (controller_helpers.py) on that backend: the sandbox with examples/ui in
  `shop` (v1 and v2 reported ready), or the real control plane with examples/ui in the test's
  own namespace, its Deployments ui-v1 and ui-v2 really Ready through kwok.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_helpers import Env

from canary.controller.reconcile import Reconciler
from canary.kube.client import KubeCluster
from canary.mesh.istio import IstioRouter
from canary.testing import FixedVerdicts, ManualClock
from canary_sandbox.apiserver import ApiServer
from canary_sandbox.client import SandboxClient
from canary_sandbox.controlplane import ControlPlane
from canary_sandbox.stack import example_objects, sandbox_with_example


@pytest.fixture
def backend(request: pytest.FixtureRequest) -> str:
    return str(getattr(request, "param", "sandbox"))


def _env(
    backend: str,
    namespace: str,
    client: SandboxClient,
    kubeconfig: Path,
    api: ApiServer | None = None,
    plane: ControlPlane | None = None,
) -> Env:
    cluster = KubeCluster.from_kubeconfig(str(kubeconfig), qps=1000, burst=1000)
    metrics, clock = FixedVerdicts(), ManualClock()
    reconciler = Reconciler(cluster=cluster, router=IstioRouter(), metrics=metrics, clock=clock)
    return Env(
        backend, namespace, client, cluster, metrics, clock, reconciler, kubeconfig, api, plane
    )


@pytest.fixture
def env(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    if backend == "real":
        plane = request.getfixturevalue("control_plane")
        namespace = request.getfixturevalue("real_namespace")
        client = plane.client()
        for obj in example_objects(namespace):
            client.apply(obj)
        real = _env(backend, namespace, client, plane.kubeconfig, plane=plane)
        for version in ("v1", "v2"):
            real.set_ready(f"ui-{version}")
        yield real
        real.cluster.close()
        return
    with sandbox_with_example(tmp_path) as (api, client):
        sandbox = _env(backend, "shop", client, tmp_path / "kubeconfig", api=api)
        yield sandbox
        sandbox.cluster.close()
