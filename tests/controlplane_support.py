"""The real control plane under the tests: one per pytest session, a namespace per test.

- `control_plane` (session): a started `canary_sandbox.controlplane.ControlPlane` (etcd,
  kube-apiserver with TLS and RBAC, kube-controller-manager, kube-scheduler, kwok Nodes) with
  crds/, Istio's and Gateway API's CRDs installed. Started on first use only, so a session that
  needs none starts none; stopped at the end of the session whatever happened. Missing binaries
  skip the test locally and fail it under CI=true (`binary_support.require_control_plane`).
- `real_namespace`: a fresh namespace for one test (its `default` ServiceAccount exists), whose
  deletion is requested afterwards; the namespace controller finishes it in the background.
- `ON_BOTH`: runs a test once against the sandbox and once against the real control plane,
  through the tier's own `backend` fixture (tests/kube's and tests/controller's conftest.py);
  `ON_REAL` only against the real one.
- `wait_until`: bounded polling for state another process or thread produces.

Every tier may use them: tests/conftest.py loads this module as a plugin.
"""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable, Iterator

import pytest
from binary_support import require_control_plane

from canary_sandbox.controlplane import ControlPlane

_numbers = itertools.count(1)

# Runs a test once against the sandbox and once against the real control plane (the `backend`
# fixture of the tier): for tests about Kubernetes semantics, which the sandbox must get right.
ON_BOTH = pytest.mark.parametrize("backend", ["sandbox", "real"], indirect=True)
# Only against the real control plane, for what the sandbox does not emulate (its controllers).
ON_REAL = pytest.mark.parametrize("backend", ["real"], indirect=True)


def wait_until(condition: Callable[[], object], what: str, attempts: int = 400) -> None:
    """Poll `condition` (every 25 ms, bounded) for state another thread or process produces."""
    pause = threading.Event()
    for _ in range(attempts):
        if condition():
            return
        pause.wait(0.025)
    raise AssertionError(f"never happened: {what}")


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


@pytest.fixture
def real_namespace(control_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    name = namespace_name(request.node.name)
    control_plane.create_namespace(name)
    control_plane.wait_for_service_account(name)
    try:
        yield name
    finally:
        control_plane.delete_namespace(name)
