"""The real control plane under the tests: one per pytest session, a namespace per test.

- `control_plane` (session): a started `canary_sandbox.controlplane.ControlPlane` (etcd,
  kube-apiserver with TLS and RBAC, kube-controller-manager, kube-scheduler, kwok Nodes) with
  crds/, Istio's and Gateway API's CRDs installed. Started on first use only, so a session that
  needs none starts none; stopped at the end of the session whatever happened. Missing binaries
  skip the test locally and fail it under CI=true (`support.binaries.require_control_plane`).
- `real_namespace`: a fresh namespace for one test (its `default` ServiceAccount exists), whose
  deletion is requested afterwards; the namespace controller finishes it in the background.
- `ON_BOTH`: runs a test once against the sandbox and once against the real control plane,
  through the tier's own `backend` fixture (tests/kube's and tests/controller's conftest.py);
  `ON_REAL` only against the real one.
- `own_plane` (module): a control plane of the test module's own (one kwok Node), for tests
  that stop, kill or compact parts of it: doing that to the session's one would disturb others.

Every tier may use them: tests/conftest.py loads this module as a plugin.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator

import pytest

from canary_sandbox.controlplane import ControlPlane
from support.binaries import require_control_plane

_numbers = itertools.count(1)

# Runs a test once against the sandbox and once against the real control plane (the `backend`
# fixture of the tier): for tests about Kubernetes semantics, which the sandbox must get right.
ON_BOTH = pytest.mark.parametrize("backend", ["sandbox", "real"], indirect=True)
# Only against the real control plane, for what the sandbox does not emulate (its controllers).
ON_REAL = pytest.mark.parametrize("backend", ["real"], indirect=True)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    plane = ControlPlane(assets=require_control_plane())
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


def namespace_name(test_name: str) -> str:
    """A valid, unique namespace name (a DNS label) derived from the test's name."""
    stem = re.sub(r"[^a-z0-9]+", "-", test_name.lower()).strip("-")[:48].strip("-")
    return f"t{next(_numbers)}-{stem}"


@pytest.fixture(scope="module")
def own_plane() -> Iterator[ControlPlane]:
    plane = ControlPlane(assets=require_control_plane(), nodes=1)
    plane.start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture
def real_namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = namespace_name(request.node.name)
    control_plane.create_namespace(name)
    control_plane.wait_for_service_account(name)
    try:
        yield name
    finally:
        control_plane.delete_namespace(name)
