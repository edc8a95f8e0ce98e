"""Fixtures for the `KubeCluster` tests: the sandbox API server with the `shop` namespace,
the Rollout CRD and the `ui` example objects, and a `KubeCluster` talking to it over HTTP.

Test modules load these with `pytest_plugins = ["cluster_fixtures"]`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import ISTIO_GROUP, NAMESPACE, ROLLOUT_CRD, FakeSleep
from kubernetes import client

from canary.kube.client import KubeCluster
from canary.sandbox.apiserver import ApiServer
from canary.sandbox.stack import example


@pytest.fixture
def server(api_server: ApiServer) -> ApiServer:
    """The sandbox with the Istio CRDs, the Rollout CRD and the `shop` namespace."""
    api_server.install_crd_files([ROLLOUT_CRD])
    api_server.create_namespace(NAMESPACE)
    return api_server


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def cluster(server: ApiServer, kubeconfig: Path, fake_sleep: FakeSleep) -> Iterator[KubeCluster]:
    cluster = KubeCluster.from_kubeconfig(
        str(kubeconfig), qps=0, retry_base_seconds=0.001, sleep=fake_sleep
    )
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def ui_objects(server: ApiServer, custom: client.CustomObjectsApi) -> ApiServer:
    """The ui VirtualService and DestinationRule, created over HTTP; the request log cleared."""
    for plural, name in (
        ("virtualservices", "virtualservice"),
        ("destinationrules", "destinationrule"),
    ):
        body = example(name)
        body["apiVersion"] = f"{ISTIO_GROUP}/v1"
        custom.create_namespaced_custom_object(ISTIO_GROUP, "v1", NAMESPACE, plural, body)
    server.request_log.clear()
    return server
