"""Reconciles on VirtualServices other than examples/ui's, on the sandbox and (`ON_BOTH`) on the
real control plane.

Covers: an unnamed single route and a route named `api v2/main` each released to Succeeded by
the controller, claimed in `canary.dev/claims` and handed back on deletion; a second route
appearing mid-release makes the Rollout Invalid and writes nothing; two Rollouts on two routes
of one VirtualService sharing the DestinationRule (issue 14, item 5): the second is Invalid
naming the first, the canary subset never flips, and deleting the second leaves the first's
DestinationRule alone; a claim written by an earlier release (`canary.dev/route.<route>`) is
honoured and migrated.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from controller_helpers import Env
from support.controlplane import ON_BOTH

from canary_sandbox.stack import example_release


def claims(obj: dict[str, Any]) -> dict[str, Any]:
    text = (obj["metadata"].get("annotations") or {}).get("canary.dev/claims")
    parsed: dict[str, Any] = json.loads(text) if text else {}
    return parsed


def rollout_body(route: str | None, name: str = "ui") -> dict[str, Any]:
    rollout = copy.deepcopy(example_release())
    rollout["metadata"]["name"] = name
    spec = rollout["spec"]
    spec["virtualService"] = {"name": "ui"} if route is None else {"name": "ui", "route": route}
    spec["analysis"]["interval"] = "10s"
    for stage in ("mirror", "headerCanary"):
        spec["stages"][stage]["duration"] = "10s"
    spec["stages"]["split"]["interval"] = "10s"
    return rollout


def put_vs(env: Env, http: list[dict[str, Any]]) -> None:
    vs = env.vs()
    vs["spec"]["http"] = http
    env.put(vs)


def primary(**fields: Any) -> dict[str, Any]:
    return {
        **fields,
        "timeout": "10s",
        "route": [{"destination": {"host": "ui", "subset": "stable"}}],
    }


def release_to_the_end(env: Env, name: str = "ui") -> list[int]:
    """Reconcile every 10 s until the release ends; the canary weights seen on the way."""
    weights = []
    for _ in range(40):
        env.clock.advance(10)
        env.reconcile(name)
        status = env.rollout(name)["status"]
        weights.append(status.get("canaryWeight", 0))
        if status["phase"] not in ("Progressing", "Pending"):
            return weights
    raise AssertionError(f"the release did not end: {status}")


@ON_BOTH
def test_an_unnamed_single_route_is_released_and_handed_back(env: Env) -> None:
    put_vs(env, [primary()])
    env.apply(rollout_body(None))
    env.reconcile()
    assert claims(env.vs()) == {
        "unnamedRoutes": {f"ui.{env.namespace}.svc.cluster.local": {"rollout": "ui", "match": None}}
    }
    assert claims(env.dr()) == {"subsets": {"stable": "ui", "canary": "ui"}}
    assert env.vs()["spec"]["http"][0]["mirror"] == {"host": "ui", "subset": "canary"}
    weights = release_to_the_end(env)
    status = env.rollout()["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["stableVersion"] == "v2"
    assert sorted(set(weights) - {0}) == [10, 25, 50, 75, 100]
    assert env.vs()["spec"]["http"] == [primary()]
    env.delete(env.rollout())
    env.reconcile("ui")
    assert "annotations" not in env.vs()["metadata"]
    assert "annotations" not in env.dr()["metadata"]


@ON_BOTH
def test_a_route_named_api_v2_main_is_released(env: Env) -> None:
    put_vs(env, [primary(name="api v2/main")])
    env.apply(rollout_body("api v2/main"))
    env.reconcile()
    assert claims(env.vs()) == {"routes": {"api v2/main": "ui"}}
    release_to_the_end(env)
    status = env.rollout()["status"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert env.vs()["spec"]["http"] == [primary(name="api v2/main")]


@ON_BOTH
def test_a_second_route_appearing_mid_release_is_invalid_and_writes_nothing(env: Env) -> None:
    put_vs(env, [primary()])
    env.apply(rollout_body(None))
    env.reconcile()
    vs = env.vs()
    vs["spec"]["http"].insert(0, primary(match=[{"uri": {"prefix": "/beta"}}]))
    env.put(vs)
    before_vs, before_dr = env.vs(), env.dr()
    env.clock.advance(10)
    env.reconcile()
    status = env.rollout()["status"]
    assert status["phase"] == "Invalid"
    assert "has 2 http routes to host ui" in status["message"]
    assert "give the one to steer a `name`" in status["message"]
    assert (env.vs(), env.dr()) == (before_vs, before_dr)


@ON_BOTH
def test_two_rollouts_sharing_the_destination_rule_the_second_is_invalid(env: Env) -> None:
    vs = env.vs()
    vs["spec"]["http"].insert(1, primary(name="api", match=[{"uri": {"prefix": "/api"}}]))
    env.put(vs)
    env.apply(rollout_body("primary"))
    for _ in range(3):  # mirror -> header canary -> split
        env.reconcile()
        env.clock.advance(10)
    env.reconcile()
    assert env.rollout()["status"]["canaryWeight"] > 0  # mid-split
    dr_before = env.dr()

    second = rollout_body("api", name="api")
    second["spec"]["canary"]["version"] = "v3"  # would re-point the shared canary subset
    env.apply(second)
    for _ in range(3):
        env.reconcile("api")
        env.clock.advance(10)
    status = env.rollout("api")["status"]
    assert status["phase"] == "Invalid"
    ns = env.namespace
    assert status["message"] == (
        f"DestinationRule {ns}/ui subset 'stable' is already steered by Rollout {ns}/ui, and "
        f"two Rollouts never steer one subset: give Rollout {ns}/api subsets of its own "
        f"(spec.stable.subset, spec.canary.subset) or delete Rollout {ns}/ui."
    )
    assert env.dr()["spec"] == dr_before["spec"]  # the canary subset never flipped
    assert env.vs()["spec"]["http"][1] == vs["spec"]["http"][1]  # the api route untouched

    env.delete(env.rollout("api"))
    env.reconcile("api")
    assert env.dr() == dr_before  # deleting the second rewrote nothing of the first's
    env.clock.advance(10)
    env.reconcile()
    assert env.rollout()["status"]["phase"] == "Progressing"


@ON_BOTH
def test_a_claim_written_by_an_earlier_release_is_honoured_and_migrated(env: Env) -> None:
    vs = env.vs()
    vs["metadata"]["annotations"] = {"canary.dev/route.primary": "older"}
    env.put(vs)
    env.apply(rollout_body("primary"))
    env.reconcile()
    status = env.rollout()["status"]
    assert status["phase"] == "Invalid"
    assert f"already managed by Rollout {env.namespace}/older" in status["message"]

    vs = env.vs()
    vs["metadata"]["annotations"] = {"canary.dev/route.primary": "ui"}
    env.put(vs)
    env.patch(env.rollout(), {"spec": {"canary": {"version": "v2"}}})
    env.clock.advance(10)
    env.reconcile()
    annotations = env.vs()["metadata"]["annotations"]
    assert "canary.dev/route.primary" not in annotations
    assert claims(env.vs()) == {"routes": {"primary": "ui"}}
