"""Fixtures for the `KubeCluster` tests: an API server (the `backend`: the sandbox, or the real
control plane for tests marked `ON_BOTH`) with the Rollout CRD and a test namespace, the `ui`
example objects, and a `KubeCluster` talking to it over HTTP.

Test modules load these with `pytest_plugins = ["cluster_fixtures"]`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import ISTIO_GROUP, NAMESPACE, ROLLOUT_CRD, Backend, FakeSleep
from kubernetes import client

from canary.kube.client import KubeCluster
from canary_sandbox.apiserver import ApiServer
from canary_sandbox.stack import example


@pytest.fixture
def namespace(backend: Backend) -> str:
    """The test's namespace, with the Rollout CRD installed (the real control plane has it)."""
    if backend.sandbox is not None:
        backend.sandbox.install_crd_files([ROLLOUT_CRD])
        backend.sandbox.create_namespace(NAMESPACE)
    return backend.namespace


@pytest.fixture
def server(backend: Backend, namespace: str) -> ApiServer:
    """The sandbox with the Istio CRDs, the Rollout CRD and the `shop` namespace, for the tests
    that need its own handles (request log, fault injection)."""
    assert backend.sandbox is not None, "this test needs the sandbox's handles"
    return backend.sandbox


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def cluster(namespace: str, kubeconfig: Path, fake_sleep: FakeSleep) -> Iterator[KubeCluster]:
    cluster = KubeCluster.from_kubeconfig(
        str(kubeconfig), qps=0, retry_base_seconds=0.001, sleep=fake_sleep
    )
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def ui_objects(backend: Backend, namespace: str, custom: client.CustomObjectsApi) -> str:
    """The ui VirtualService and DestinationRule, created over HTTP (the sandbox's request log
    cleared); the namespace."""
    for plural, name in (
        ("virtualservices", "virtualservice"),
        ("destinationrules", "destinationrule"),
    ):
        body = example(name)
        body["apiVersion"] = f"{ISTIO_GROUP}/v1"
        body["metadata"]["namespace"] = namespace
        custom.create_namespaced_custom_object(ISTIO_GROUP, "v1", namespace, plural, body)
    if backend.sandbox is not None:
        backend.sandbox.request_log.clear()
    return namespace
