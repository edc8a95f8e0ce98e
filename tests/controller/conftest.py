"""Fixtures for the reconcile tests: the sandbox with examples/ui, the real `KubeCluster`
over HTTP, and a metrics source whose verdicts the test sets (a port implementation, not a
mock of any client)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from controller_support import Env

from canary.controller.reconcile import Reconciler
from canary.kube.client import KubeCluster
from canary.mesh.istio import IstioRouter
from canary.testing import FixedVerdicts, ManualClock
from canary_sandbox.stack import sandbox_with_example


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with sandbox_with_example(tmp_path) as (api, client):
        cluster = KubeCluster.from_kubeconfig(str(tmp_path / "kubeconfig"), qps=1000, burst=1000)
        metrics, clock = FixedVerdicts(), ManualClock()
        reconciler = Reconciler(cluster=cluster, router=IstioRouter(), metrics=metrics, clock=clock)
        yield Env(api, client, cluster, metrics, clock, reconciler)
