"""Fixtures for tests that talk to an API server over real HTTP: the sandbox, or the real one.

- `api_server`: a started sandbox `ApiServer` with the Istio CRDs and the `widgets` test CRD.
- `backend`: the API server a test runs against: the sandbox (`api_server`) by default, or the
  real control plane when the test is parametrised with `ON_BOTH` (cluster_helpers), which runs
  it once against each, so that the sandbox is held to the real thing.
- `kubeconfig`: a kubeconfig file pointing at the backend (for kubectl and `load_kube_config`).
- `api_client`: a `kubernetes.client.ApiClient` configured from that kubeconfig.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import NAMESPACE, Backend
from kubernetes import client, config
from sandbox_helpers import WIDGET_CRD

from canary_sandbox.apiserver import ApiServer, bundled_crd_paths


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
