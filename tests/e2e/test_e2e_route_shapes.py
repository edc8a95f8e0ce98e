"""Whole releases by the controller process on VirtualServices people write (issue 15).

Aspects: with an unnamed single http route (and no `virtualService.route` in the Rollout), and
with a route named `api v2/main`, a release walks every stage to Succeeded on real Prometheus
readings of simulated traffic that follows the route the controller finds (by the same rule);
every split weight is written to that route, in order, and the route is given back as it was
written, with the claims in `canary.dev/claims` only while the Rollout exists.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from e2e_helpers import ROLLOUT
from env_helpers import Env
from support.traffic import collapse

from canary.mesh.istio import route_index
from canary_sandbox.client import SandboxError
from canary_sandbox.stack import SERVICE, example
from canary_sandbox.traffic import KubeRouting, route_weights

pytestmark = pytest.mark.slow

SHAPES = {
    "unnamed single route": (
        None,
        lambda http: [{k: v for k, v in http[1].items() if k != "name"}],
    ),
    "route named 'api v2/main'": (
        "api v2/main",
        lambda http: [http[0], {**http[1], "name": "api v2/main"}],
    ),
}


@pytest.fixture
def routing(env: Env) -> Iterator[KubeRouting]:
    found = env.stack.simulator.service(env.namespace, SERVICE).routing
    assert isinstance(found, KubeRouting)
    try:
        yield found
    finally:
        found.route = "primary"  # the other modules' examples/ui


def canary_weights(vs: dict[str, Any], route: str | None) -> int:
    managed = vs["spec"]["http"][route_index(vs, SERVICE, route)]
    return int(route_weights(managed, {"canary": "canary"}).get("canary", 0.0))


@pytest.mark.parametrize("shape", SHAPES)
def test_a_release_on_the_route_found_by_the_rule(
    env: Env, routing: KubeRouting, shape: str
) -> None:
    route, rewrite = SHAPES[shape]
    vs = env.virtual_service()
    vs["spec"]["http"] = rewrite(example("virtualservice")["spec"]["http"])
    env.client.request("PUT", env.client.path_of(vs), vs)
    written_http = env.virtual_service()["spec"]["http"]
    routing.route = route
    env.wait_for(
        lambda: routing.refresh() is not None and routing.last_error is None, what="routing"
    )

    version = env.new_version()
    recorder = env.record()
    env.start_controller()

    def reference(spec: dict[str, Any]) -> None:
        spec["virtualService"] = (
            {"name": SERVICE} if route is None else {"name": SERVICE, "route": route}
        )

    env.release(version, reference)
    status = env.wait_for_phase(version, "Succeeded", "RolledBack", "Aborted", "Invalid")
    assert status["phase"] == "Succeeded", status.get("message")
    env.wait_for(
        lambda: (
            recorder.virtual_services()
            and canary_weights(recorder.virtual_services()[-1], route) == 0
            and "mirror" not in recorder.virtual_services()[-1]["spec"]["http"][-1]
        ),
        what="stable 100 again",
    )
    weights = collapse(canary_weights(v, route) for v in recorder.virtual_services())
    assert [w for w in weights if w] == [10, 25, 50, 75, 100]
    gates = status["lastAnalysis"]["gates"]
    assert gates and all(g["verdict"] == "pass" for g in gates)  # the canary had its traffic

    current = env.virtual_service()
    assert current["spec"]["http"] == written_http
    assert json.loads(current["metadata"]["annotations"]["canary.dev/claims"])
    env.client.delete(env.client.path(*ROLLOUT, env.namespace, SERVICE))

    def gone() -> bool:
        try:
            env.rollout()
        except SandboxError as error:
            return error.code == 404
        return False

    env.wait_for(gone, what="the Rollout to disappear")
    handed_back = env.virtual_service()
    assert handed_back["spec"]["http"] == written_http
    assert not [
        k for k in handed_back["metadata"].get("annotations") or {} if k.startswith("canary.dev/")
    ]
