"""Whole releases of examples/ui by the controller process, against real Prometheus readings.

Aspects: a healthy release walks mirror -> header canary -> every split step -> release with
the VirtualService/DestinationRule states of `canary plan`, in order, none skipped (recorded
from watches); a canary that starts failing at 25 % is rolled back automatically (traffic, phase,
Event, the failing gate's value); a managed route edited mid-split (a GitOps sync) is restored
on the next tick with a TrafficRestored Event, unmanaged routes never touched; deleting a
Rollout mid-release hands the VirtualService back through the finalizer; a canary whose Pods
never become ready (on the real control plane: a node selector no Node matches, so its Pods stay
Pending) never gets a request and is rolled back after `readyTimeout`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_helpers import ROLLOUT, planned_states
from env_helpers import Env
from support.traffic import (
    HEADER_ROUTE,
    MANAGED_ROUTE,
    TrafficState,
    collapse,
    http_route,
    traffic,
    traffic_state,
)

from canary.cli.offline import plan
from canary_sandbox.client import SandboxError
from canary_sandbox.stack import EXAMPLE, SERVICE, deploy_version, example

pytestmark = pytest.mark.slow

STABLE_V1 = TrafficState(0, 0.0, False, "v1")


def slow_split(seconds: int) -> Any:
    """A spec change: each split step needs `seconds` one-second checks."""
    return lambda spec: spec["stages"]["split"].update(interval=f"{seconds}s")


def assert_unmanaged_parts_untouched(virtual_services: list[dict[str, Any]]) -> None:
    """The `health` route byte for byte, and the managed route's own fields, in every version."""
    original = example("virtualservice")["spec"]["http"]
    health, primary = original[0], original[1]
    assert virtual_services
    for vs in virtual_services:
        assert http_route(vs, "health") == health
        assert vs["spec"]["http"][0] == health  # still first: the header route goes below it
        managed = http_route(vs, MANAGED_ROUTE)
        assert managed is not None
        assert (managed["timeout"], managed["retries"]) == (primary["timeout"], primary["retries"])
        assert vs["spec"]["hosts"] == [SERVICE]


def assert_stable_only(vs: dict[str, Any]) -> None:
    managed = http_route(vs, MANAGED_ROUTE)
    assert managed is not None
    assert [e["destination"].get("subset") for e in managed["route"]] == ["stable"]
    assert "mirror" not in managed and "mirrorPercentage" not in managed
    assert http_route(vs, HEADER_ROUTE) is None


def test_a_healthy_release_writes_the_planned_states_in_order(env: Env, tmp_path: Path) -> None:
    body = env.rollout_body("v2")
    rollout_file = tmp_path / "rollout.yaml"
    rollout_file.write_text(yaml.safe_dump(body))
    steps = plan(
        str(rollout_file),
        str(EXAMPLE / "virtualservice.yaml"),
        str(EXAMPLE / "destinationrule.yaml"),
    )
    # the release starts from the objects as in git; the plan lists what is written after that
    planned = collapse([STABLE_V1, *planned_states(steps)])
    assert traffic_state(example("virtualservice"), example("destinationrule")) == STABLE_V1
    # the plan itself goes everywhere the design says, so comparing with it means something
    assert planned[0] == STABLE_V1
    assert planned[1] == TrafficState(0, 100.0, False, "v1")
    assert planned[2] == TrafficState(0, 0.0, True, "v1")
    assert [s.canary_weight for s in planned[3:8]] == [10, 25, 50, 75, 100]
    assert planned[-2:] == [TrafficState(100, 0.0, False, "v2"), TrafficState(0, 0.0, False, "v2")]

    recorder = env.record()
    env.start_controller()
    env.client.apply(body)
    status = env.wait_for_phase("v2", "Succeeded", "RolledBack", "Aborted")
    assert status["phase"] == "Succeeded", status.get("message")
    assert status["stableVersion"] == "v2"
    env.wait_for(lambda: recorder.states()[-1] == planned[-1], what="the final traffic write")

    assert collapse(recorder.states()) == planned
    vs, dr = env.virtual_service(), env.destination_rule()
    assert_stable_only(vs)
    assert [e["destination"]["subset"] for e in http_route(vs, MANAGED_ROUTE)["route"]] == [
        "stable"
    ]
    assert {s["name"]: s["labels"]["version"] for s in dr["spec"]["subsets"]} == {
        "stable": "v2",
        "canary": "v2",
    }
    assert_unmanaged_parts_untouched(recorder.virtual_services())
    stages = [h.get("stage") for h in status["history"] if h["time"] >= status["releaseStartedAt"]]
    assert [s for s in collapse(stages) if s] == [
        "mirror",
        "headerCanary",
        "split",
        "release",
    ]


def test_a_canary_failing_at_25_percent_is_rolled_back(env: Env) -> None:
    version = env.new_version()
    recorder = env.record()
    env.start_controller()
    env.release(version, slow_split(8))
    env.wait_for_status(
        lambda s: s.get("canaryVersion") == version and s.get("canaryWeight") == 25,
        what="the 25 % split step",
    )
    env.stack.simulator.set_version(env.namespace, SERVICE, version, error_rate=0.5)

    status = env.wait_for_phase(version, "RolledBack", "Succeeded", "Aborted")
    assert status["phase"] == "RolledBack", status.get("message")
    env.wait_for(lambda: recorder.states()[-1] == STABLE_V1, what="the rollback's traffic write")
    assert recorder.weights() == [0, 10, 25, 0]  # never beyond the failing step
    assert_stable_only(env.virtual_service())
    assert (status["canaryWeight"], status.get("mirrorPercent", 0), status.get("stage")) == (
        0,
        0,
        None,
    )

    gate = next(g for g in status["lastAnalysis"]["gates"] if g["name"] == "success-rate")
    assert gate["verdict"] == "fail"
    assert gate["value"] < 99.0
    assert "success-rate" in status["message"]
    assert f"{gate['value']:.4g}" in status["message"]
    events = env.events("RolledBack")
    assert [e["type"] for e in events] == ["Warning"]
    assert f"{gate['value']:.4g}" in events[0]["message"]
    assert_unmanaged_parts_untouched(recorder.virtual_services())


def test_a_managed_route_edited_mid_split_is_restored_on_the_next_tick(env: Env) -> None:
    version = env.new_version()
    recorder = env.record()
    env.start_controller()
    env.release(version, slow_split(3))
    env.wait_for(
        lambda: recorder.states() and recorder.states()[-1].canary_weight == 10,
        what="the 10 % split written to the VirtualService",
    )
    before = env.status()

    # a GitOps sync puts the VirtualService back as git has it: primary all on stable
    synced = env.client.merge_patch(
        env.client.path_of(example("virtualservice", env.namespace)),
        {"spec": example("virtualservice")["spec"]},
    )
    drift_rv = int(synced["metadata"]["resourceVersion"])
    assert traffic(synced).canary_weight == 0

    def first_write_after_drift() -> Any:
        later = [s for s in recorder.seen("virtualservices") if s.resource_version > drift_rv]
        return later[0] if later else None

    restore = env.wait_for(first_write_after_drift, what="the controller's next VS write")
    assert traffic(restore.obj).canary_weight == before["canaryWeight"] == 10
    analyses = {
        (s.obj.get("status", {}).get("lastAnalysis") or {}).get("time")
        for s in recorder.seen("rollouts")
        if drift_rv < s.resource_version < restore.resource_version
    }
    previous = (before.get("lastAnalysis") or {}).get("time")
    assert len(analyses - {previous, None}) <= 1  # restored within one tick

    restored = env.wait_for(lambda: env.events("TrafficRestored"), what="a TrafficRestored Event")
    assert restored[0]["type"] == "Warning"
    assert "starts over" in restored[0]["message"]

    status = env.wait_for_phase(version, "Succeeded", "RolledBack", "Aborted")
    assert status["phase"] == "Succeeded", status.get("message")
    env.wait_for(lambda: recorder.states()[-1].stable_version == version, what="the release")
    assert_unmanaged_parts_untouched(recorder.virtual_services())


def test_deleting_a_rollout_mid_release_hands_the_route_back(env: Env) -> None:
    version = env.new_version()
    recorder = env.record()
    controller = env.start_controller()
    env.release(version, slow_split(4))
    env.wait_for(
        lambda: recorder.states() and recorder.states()[-1].canary_weight > 0,
        what="a split step written to the VirtualService",
    )
    assert "canary.dev/finalizer" in env.rollout()["metadata"]["finalizers"]

    env.client.delete(env.client.path(*ROLLOUT, env.namespace, SERVICE))

    def gone() -> bool:
        try:
            env.rollout()
        except SandboxError as error:
            return error.code == 404
        return False

    env.wait_for(gone, what="the Rollout to disappear")
    vs, dr = env.virtual_service(), env.destination_rule()
    assert vs["spec"] == example("virtualservice")["spec"]
    annotations = vs["metadata"].get("annotations") or {}
    assert not [key for key in annotations if key.startswith("canary.dev/")]
    assert {s["name"]: s["labels"]["version"] for s in dr["spec"]["subsets"]}["stable"] == "v1"
    assert recorder.states()[-1] == STABLE_V1
    assert "route handed back to stable" in controller.logs()
    assert_unmanaged_parts_untouched(recorder.virtual_services())


def test_a_canary_that_never_becomes_ready_gets_no_traffic_and_rolls_back(env: Env) -> None:
    version = env.stack.next_version()
    deploy_version(env.client, version, ready=False, namespace=env.namespace)
    recorder = env.record()
    env.start_controller()
    env.release(version, lambda spec: spec["canary"].update(readyTimeout="4s"))
    status = env.wait_for_phase(version, "RolledBack", "Succeeded", "Aborted")
    assert status["phase"] == "RolledBack", status.get("message")
    assert f"ui-{version}" in status["message"] and "not ready within 4s" in status["message"]
    assert set(recorder.states()) == {STABLE_V1}  # not one request was sent to it
    assert [e["type"] for e in env.events("RolledBack")] == ["Warning"]
    deployment = env.client.get("apps/v1", "Deployment", env.namespace, f"ui-{version}")
    assert not deployment.get("status", {}).get("readyReplicas")
    if env.stack.kind == "real":  # the Deployment controller made its Pods; none could run
        pods = env.client.request(
            "GET", f"/api/v1/namespaces/{env.namespace}/pods?labelSelector=version%3D{version}"
        )["items"]
        assert len(pods) == 2 and {p["status"]["phase"] for p in pods} == {"Pending"}
