"""Fixtures for tests that talk to the sandbox API server over real HTTP.

- `api_server`: a started `ApiServer` with the Istio CRDs and the `widgets` test CRD installed.
- `kubeconfig`: a kubeconfig file pointing at it (for kubectl and `load_kube_config`).
- `api_client`: a `kubernetes.client.ApiClient` configured from that kubeconfig.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config
from sandbox_helpers import WIDGET_CRD

from canary.sandbox.apiserver import ApiServer, bundled_crd_paths


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
def kubeconfig(api_server: ApiServer, tmp_path: Path) -> Path:
    return api_server.write_kubeconfig(tmp_path / "kubeconfig")


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
