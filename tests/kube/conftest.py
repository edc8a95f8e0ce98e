"""Fixtures for tests that talk to an API server over real HTTP: the sandbox, or the real one.

- `api_server`: a started sandbox `ApiServer` with the Istio CRDs and the `widgets` test CRD.
- `backend`: the API server a test runs against: the sandbox (`api_server`) by default, or the
  real control plane when the test is parametrised with `ON_BOTH` (support.controlplane), which runs
  it once against each, so that the sandbox is held to the real thing.
- `kubeconfig`: a kubeconfig file pointing at the backend (for kubectl and `load_kube_config`).
- `api_client`: a `kubernetes.client.ApiClient` configured from that kubeconfig; `custom`, its
  CustomObjectsApi.

For the `KubeCluster` tests:

- `namespace`: the test's namespace on the backend, with the Rollout CRD installed.
- `server`: the sandbox's own handles (request log, fault injection), for sandbox-only tests.
- `cluster`: a `KubeCluster` talking to the backend over HTTP, sleeping through `fake_sleep`.
- `ui_objects`: the `ui` example VirtualService and DestinationRule in the namespace.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import ISTIO_GROUP, NAMESPACE, ROLLOUT_CRD, Backend, FakeSleep
from kubernetes import client, config
from sandbox_helpers import WIDGET_CRD

from canary.kube.client import KubeCluster
from canary_sandbox.apiserver import ApiServer, bundled_crd_paths
from canary_sandbox.stack import example


@pytest.fixture
def api_server() -> Iterator[ApiServer]:
    server = ApiServer(history=1000).start()
    server.install_crd_files(bundled_crd_paths())
    server.install_crds([copy.deepcopy(WIDGET_CRD)])
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if getattr(request, "param", "sandbox") == "real":
        plane = request.getfixturevalue("control_plane")
        real = Backend("real", plane.kubeconfig, request.getfixturevalue("real_namespace"),
                       plane=plane)  # fmt: skip
        yield real
        for name in real.more_namespaces:
            plane.delete_namespace(name)
        return
    server: ApiServer = request.getfixturevalue("api_server")
    kubeconfig = server.write_kubeconfig(tmp_path / "kubeconfig")
    yield Backend("sandbox", kubeconfig, NAMESPACE, sandbox=server)


@pytest.fixture
def kubeconfig(backend: Backend) -> Path:
    return backend.kubeconfig


@pytest.fixture
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig), client_configuration=configuration)
    api = client.ApiClient(configuration)
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def custom(api_client: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


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
