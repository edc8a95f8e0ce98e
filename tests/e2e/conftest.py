"""Fixtures for the end-to-end tests: the whole local stack, one per module, and a clean
release environment per test.

- `stack` (module): the sandbox API with examples/ui, the traffic simulator following the
  sandbox's VirtualService, and a real Prometheus scraping the simulator every second. Starting
  Prometheus takes seconds, so tests of one module share it; each test releases its own canary
  version (`Env.new_version`), so one test's 5xx never show up in another's gate windows.
- `env` (function): the sandbox reset to examples/ui (no Rollout, the VirtualService and
  DestinationRule as in git, stable v1), every version healthy again, controllers started on
  demand and stopped afterwards, a watch recorder, and `wait_for`.

A missing `prometheus` skips these tests locally and fails them when CI=true.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from binary_support import require_binary
from e2e_support import Env, Stack, reset_sandbox

from canary.sandbox.prometheus import PrometheusProcess
from canary.sandbox.stack import (
    sandbox_with_example,
    simulated_traffic,
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_binary("prometheus")
    workdir = tmp_path_factory.mktemp("stack")
    with contextlib.ExitStack() as exits:
        api, client = exits.enter_context(sandbox_with_example(workdir))
        simulator = exits.enter_context(simulated_traffic(workdir / "kubeconfig"))
        prometheus = exits.enter_context(
            PrometheusProcess(targets=[simulator.address], scrape_interval="1s")
        )
        yield Stack(api, client, simulator, prometheus, workdir)


@pytest.fixture
def env(stack: Stack, tmp_path: Path) -> Iterator[Env]:
    reset_sandbox(stack)
    environment = Env(stack, tmp_path)
    try:
        yield environment
    finally:
        environment.close()
