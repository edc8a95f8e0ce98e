"""One reconcile against the sandbox over HTTP, with the real `KubeCluster`.

Covers: the first reconcile (finalizer, initialisation, mirror written, DR subset labels);
no API write on a reconcile that changes nothing; status is written before traffic, and a crash
between the two (the traffic write failing) is repaired on the next reconcile, restarting the
step's checks; drift restored with a TrafficRestored Event, unmanaged routes untouched;
rollback in one VirtualService write; an invalid spec, a missing VirtualService and a second
Rollout on the same route become Invalid with a Warning Event and no traffic change; deleting a
Rollout hands the route back to stable.
"""

from __future__ import annotations

import pytest
from controller_support import Env, events, example_rollout, managed, start, weights, writes

from canary.core.status import Verdict
from canary.kube.port import UnavailableError


def test_first_reconcile_takes_over_and_mirrors(env: Env) -> None:
    start(env)
    rollout = env.rollout()
    assert "canary.dev/finalizer" in rollout["metadata"]["finalizers"]
    assert rollout["status"]["phase"] == "Progressing"
    assert rollout["status"]["stage"] == "mirror"
    assert rollout["status"]["stableVersion"] == "v1"
    route = managed(env.vs())
    assert route["mirror"] == {"host": "ui", "subset": "canary"}
    assert route["mirrorPercentage"] == {"value": 100.0}
    assert events(env, "ReleaseStarted")


def test_nothing_to_do_means_no_write(env: Env) -> None:
    start(env)
    env.reconcile()  # settles anything the first reconcile asked to requeue
    env.api.request_log.clear()
    env.reconcile()
    env.clock.advance(1)
    env.reconcile()
    assert writes(env) == 0


def test_a_passing_check_advances_one_step_with_one_vs_write(env: Env) -> None:
    start(env)
    env.clock.advance(10)
    env.api.request_log.clear()
    env.reconcile()
    assert env.rollout()["status"]["stage"] == "headerCanary"
    assert env.api.request_log.count(verb="update", resource="virtualservices") == 1
    assert env.api.request_log.count(verb="patch", resource="rollouts", subresource="status") == 1


def test_a_crash_between_status_and_traffic_is_repaired_and_the_step_restarts(env: Env) -> None:
    start(env)
    env.clock.advance(10)
    env.api.faults.fail_next(5, code=500, resource="virtualservices", writes_only=True)
    with pytest.raises(UnavailableError):
        env.reconcile()
    assert env.rollout()["status"]["stage"] == "headerCanary"  # status went first
    assert "ui-canary" not in [r.get("name") for r in env.vs()["spec"]["http"]]
    env.api.faults.reset()
    env.clock.advance(1)
    env.reconcile()
    assert [r.get("name") for r in env.vs()["spec"]["http"]] == ["health", "ui-canary", "primary"]
    status = env.rollout()["status"]
    assert status["stage"] == "headerCanary"
    assert status["passedChecks"] == 0
    assert events(env, "TrafficRestored")


def test_drift_is_restored_and_unmanaged_routes_are_untouched(env: Env) -> None:
    start(env)
    for _ in range(2):  # mirror -> header canary -> split 10 %
        env.clock.advance(10)
        env.reconcile()
    assert weights(env.vs()) == {"stable": 90, "canary": 10}
    vs = env.vs()
    health_before = vs["spec"]["http"][0]
    for destination in managed(vs)["route"]:
        destination["weight"] = 50
    env.client.request("PUT", env.client.path_of(vs), vs)
    env.clock.advance(1)
    env.reconcile()
    restored = env.vs()
    assert weights(restored) == {"stable": 90, "canary": 10}
    assert restored["spec"]["http"][0] == health_before
    assert events(env, "TrafficRestored")


def test_failing_gates_roll_back_in_one_virtual_service_write(env: Env) -> None:
    start(env)
    for _ in range(2):
        env.clock.advance(10)
        env.reconcile()
    env.metrics.verdict = Verdict.FAIL
    env.clock.advance(10)
    env.reconcile()
    env.api.request_log.clear()
    env.clock.advance(10)
    env.reconcile()
    assert env.api.request_log.count(verb="update", resource="virtualservices") == 1
    route = managed(env.vs())
    assert route["route"] == [{"destination": {"host": "ui", "subset": "stable"}}]
    assert "mirror" not in route
    assert [r.get("name") for r in env.vs()["spec"]["http"]] == ["health", "primary"]
    status = env.rollout()["status"]
    assert status["phase"] == "RolledBack"
    assert "success-rate" in status["message"]
    assert events(env, "RolledBack")[0]["type"] == "Warning"


def test_missing_virtual_service_is_invalid_and_changes_nothing(env: Env) -> None:
    rollout = example_rollout(env)
    rollout["spec"]["virtualService"]["name"] = "nope"
    env.client.apply(rollout)
    dr_before = env.dr()
    env.reconcile()
    status = env.rollout()["status"]
    assert status["phase"] == "Invalid"
    assert "VirtualService shop/nope" in status["message"]
    assert env.dr()["spec"] == dr_before["spec"]
    assert events(env, "InvalidSpec")[0]["type"] == "Warning"


def test_an_invalid_spec_is_one_sentence_and_no_traffic_change(env: Env) -> None:
    rollout = example_rollout(env)
    env.client.apply(rollout)
    vs_before = env.vs()
    # The CRD schema lets this through; the models do not (strictly increasing steps).
    env.client.merge_patch(
        env.client.path_of(rollout), {"spec": {"stages": {"split": {"steps": [50, 10]}}}}
    )
    env.reconcile()
    status = env.rollout()["status"]
    assert status["phase"] == "Invalid"
    assert "spec.stages.split.steps: steps must strictly increase" in status["message"]
    assert env.vs()["spec"] == vs_before["spec"]


def test_a_secondexample_rollout_on_the_same_route_is_invalid(env: Env) -> None:
    start(env)
    second = example_rollout(env)
    second["metadata"]["name"] = "ui-copy"
    env.client.apply(second)
    env.reconciler.reconcile(env.client.get("canary.dev/v1alpha1", "Rollout", "shop", "ui-copy"))
    status = env.client.get("canary.dev/v1alpha1", "Rollout", "shop", "ui-copy")["status"]
    assert status["phase"] == "Invalid"
    assert "already managed by Rollout" in status["message"]


def test_deleting_aexample_rollout_hands_the_route_back_to_stable(env: Env) -> None:
    start(env)
    for _ in range(2):
        env.clock.advance(10)
        env.reconcile()
    env.client.delete(env.client.path_of(env.rollout()))
    env.reconcile()
    vs = env.vs()
    assert [r.get("name") for r in vs["spec"]["http"]] == ["health", "primary"]
    assert managed(vs)["route"] == [{"destination": {"host": "ui", "subset": "stable"}}]
    assert not any(k.startswith("canary.dev/route") for k in vs["metadata"].get("annotations", {}))
    from canary.sandbox.client import SandboxError

    with pytest.raises(SandboxError):
        env.rollout()


def test_missing_destination_rule_subset_is_invalid(env: Env) -> None:
    dr = env.dr()
    dr["spec"]["subsets"] = [s for s in dr["spec"]["subsets"] if s["name"] != "canary"]
    env.client.request("PUT", env.client.path_of(dr), dr)
    vs_before = env.vs()
    env.client.apply(example_rollout(env))
    env.reconcile()
    status = env.rollout()["status"]
    assert status["phase"] == "Invalid"
    assert "canary" in status["message"] and "DestinationRule shop/ui" in status["message"]
    assert env.vs()["spec"] == vs_before["spec"]


def test_a_canary_that_never_becomes_ready_fails_after_its_deadline(env: Env) -> None:
    env.client.set_deployment_ready("shop", "ui-v2", ready=False)
    rollout = example_rollout(env)
    rollout["spec"]["canary"]["readyTimeout"] = "30s"
    env.client.apply(rollout)
    env.reconcile()
    assert env.rollout()["status"]["phase"] == "Pending"
    assert "mirror" not in managed(env.vs())
    env.clock.advance(31)
    env.reconcile()
    status = env.rollout()["status"]
    assert status["phase"] == "RolledBack"
    assert "ui-v2" in status["message"] and "not ready within" in status["message"]
    assert managed(env.vs())["route"] == [{"destination": {"host": "ui", "subset": "stable"}}]


def test_a_missing_route_is_invalid_and_changes_nothing(env: Env) -> None:
    rollout = example_rollout(env)
    rollout["spec"]["virtualService"]["route"] = "main"
    env.client.apply(rollout)
    dr_before, vs_before = env.dr(), env.vs()
    env.reconcile()
    status = env.rollout()["status"]
    assert status["phase"] == "Invalid"
    assert "no http route named 'main'" in status["message"]
    assert (env.vs()["spec"], env.dr()["spec"]) == (vs_before["spec"], dr_before["spec"])
    assert events(env, "InvalidSpec")
