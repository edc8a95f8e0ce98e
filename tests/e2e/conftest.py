"""Fixtures for the end-to-end tests: the whole local stack, one per module and API server, and
a clean release environment per test.

- `stack` (module), once on each API server a module runs on: `sandbox` (the sandbox API with
  examples/ui in `shop`) and `real` (the session's real control plane, `control_plane`, with
  examples/ui in a namespace of the module's own, its Deployments made ready by kwok's Pods);
  the traffic simulator following that server's VirtualService through a kubeconfig, and a
  real Prometheus scraping the simulator every second. Starting Prometheus takes seconds, so
  tests of one module share it; each test releases its own canary version
  (`Env.new_version`), so one test's 5xx never show up in another's gate windows. A module
  that must stay on the sandbox sets `STACKS = ("sandbox",)` and says why in its docstring.
- `env` (function): examples/ui reset (no Rollout, the VirtualService and DestinationRule as
  in git, stable v1), every version healthy again, controllers started on demand and stopped
  afterwards, a watch recorder, and `wait_for`.

A missing `prometheus` or control plane skips these tests locally and fails them when CI=true.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from env_helpers import Env, Stack, reset_stack
from support.binaries import require_binary
from support.controlplane import namespace_name
from support.stacks import example_stack

from canary_sandbox.controlplane import ControlPlane
from canary_sandbox.stack import NAMESPACE

STACKS = ("sandbox", "real")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "stack" in metafunc.fixturenames:
        kinds = getattr(metafunc.module, "STACKS", STACKS)
        metafunc.parametrize("stack", kinds, indirect=True, scope="module")


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    require_binary("prometheus")
    kind: str = request.param
    workdir = tmp_path_factory.mktemp(f"stack-{kind}")
    plane, namespace = None, NAMESPACE
    if kind == "real":
        plane = request.getfixturevalue("control_plane")
        assert isinstance(plane, ControlPlane)
        namespace = namespace_name(request.module.__name__.rsplit(".", 1)[-1])
    with example_stack(workdir, plane, namespace) as started:
        yield Stack(**vars(started))


@pytest.fixture
def env(stack: Stack, tmp_path: Path) -> Iterator[Env]:
    reset_stack(stack)
    environment = Env(stack, tmp_path)
    try:
        yield environment
    finally:
        environment.close()
