"""One reconcile over HTTP with the real `KubeCluster`, on the sandbox and (`ON_BOTH`) on the
real control plane.

Covers: the first reconcile (finalizer, initialisation, mirror written, DR subset labels);
no API write on a reconcile that changes nothing; status is written before traffic, and a crash
between the two (the traffic write failing) is repaired on the next reconcile, restarting the
step's checks; drift restored with a TrafficRestored Event, unmanaged routes untouched;
rollback in one VirtualService write; an invalid spec, a missing VirtualService and a second
Rollout on the same route become Invalid with a Warning Event and no traffic change; deleting a
Rollout hands the route back to stable; a canary Deployment that never becomes ready (on the real
control plane: its Pods fit no Node) rolls back after readyTimeout with no traffic sent to it.

Requests are counted by the controller's own client (`KubeCluster.request_counts`), the same on
both. The crash test stays on the sandbox: only it can fail one kind of write on demand.
"""

from __future__ import annotations

import pytest
from controller_helpers import Env, events, example_rollout, sent, start, turn_invalid, writes
from support.controlplane import ON_BOTH
from support.traffic import managed_route, weights

from canary.core.status import Verdict
from canary.kube.port import UnavailableError
from canary_sandbox.client import SandboxError


@ON_BOTH
def test_first_reconcile_takes_over_and_mirrors(env: Env) -> None:
    start(env)
    rollout = env.rollout()
    assert "canary.dev/finalizer" in rollout["metadata"]["finalizers"]
    assert rollout["status"]["phase"] == "Progressing"
    assert rollout["status"]["stage"] == "mirror"
    assert rollout["status"]["stableVersion"] == "v1"
    route = managed_route(env.vs())
    assert route["mirror"] == {"host": "ui", "subset": "canary"}
    assert route["mirrorPercentage"] == {"value": 100.0}
    assert events(env, "ReleaseStarted")


@ON_BOTH
def test_nothing_to_do_means_no_write(env: Env) -> None:
    start(env)
    env.reconcile()  # settles anything the first reconcile asked to requeue
    env.cluster.request_counts.clear()
    env.reconcile()
    env.clock.advance(1)
    env.reconcile()
    assert writes(env) == 0


@ON_BOTH
def test_a_passing_check_advances_one_step_with_one_vs_write(env: Env) -> None:
    start(env)
    env.clock.advance(10)
    env.cluster.request_counts.clear()
    env.reconcile()
    assert env.rollout()["status"]["stage"] == "headerCanary"
    assert sent(env, "update", "virtualservices") == 1
    assert sent(env, "patch", "rollouts/status") == 1


def test_a_crash_between_status_and_traffic_is_repaired_and_the_step_restarts(env: Env) -> None:
    start(env)
    env.clock.advance(10)
    env.sandbox.faults.fail_next(5, code=500, resource="virtualservices", writes_only=True)
    with pytest.raises(UnavailableError):
        env.reconcile()
    assert env.rollout()["status"]["stage"] == "headerCanary"  # status went first
    assert "ui-canary" not in [r.get("name") for r in env.vs()["spec"]["http"]]
    env.sandbox.faults.reset()
    env.clock.advance(1)
    env.reconcile()
    assert [r.get("name") for r in env.vs()["spec"]["http"]] == ["health", "ui-canary", "primary"]
    status = env.rollout()["status"]
    assert status["stage"] == "headerCanary"
    assert status["passedChecks"] == 0
    assert events(env, "TrafficRestored")


@ON_BOTH
def test_drift_is_restored_and_unmanaged_routes_are_untouched(env: Env) -> None:
    start(env)
    for _ in range(2):  # mirror -> header canary -> split 10 %
        env.clock.advance(10)
        env.reconcile()
    assert weights(env.vs()) == {"stable": 90, "canary": 10}
    vs = env.vs()
    health_before = vs["spec"]["http"][0]
    for destination in managed_route(vs)["route"]:
        destination["weight"] = 50
    env.put(vs)
    env.clock.advance(1)
    env.reconcile()
    restored = env.vs()
    assert weights(restored) == {"stable": 90, "canary": 10}
    assert restored["spec"]["http"][0] == health_before
    assert events(env, "TrafficRestored")


@ON_BOTH
def test_failing_gates_roll_back_in_one_virtual_service_write(env: Env) -> None:
    start(env)
    for _ in range(2):
        env.clock.advance(10)
        env.reconcile()
    env.metrics.verdict = Verdict.FAIL
    env.clock.advance(10)
    env.reconcile()
    env.cluster.request_counts.clear()
    env.clock.advance(10)
    env.reconcile()
    assert sent(env, "update", "virtualservices") == 1
    route = managed_route(env.vs())
    assert route["route"] == [{"destination": {"host": "ui", "subset": "stable"}}]
    assert "mirror" not in route
    assert [r.get("name") for r in env.vs()["spec"]["http"]] == ["health", "primary"]
    status = env.rollout()["status"]
    assert status["phase"] == "RolledBack"
    assert "success-rate" in status["message"]
    assert events(env, "RolledBack")[0]["type"] == "Warning"


@ON_BOTH
def test_missing_virtual_service_is_invalid_and_changes_nothing(env: Env) -> None:
    rollout = example_rollout(env)
    rollout["spec"]["virtualService"]["name"] = "nope"
    env.apply(rollout)
    dr_before = env.dr()
    env.reconcile()
    status = env.rollout()["status"]
    assert status["phase"] == "Invalid"
    assert f"VirtualService {env.namespace}/nope" in status["message"]
    assert env.dr()["spec"] == dr_before["spec"]
    assert events(env, "InvalidSpec")[0]["type"] == "Warning"


@ON_BOTH
def test_an_invalid_spec_is_one_sentence_and_no_traffic_change(env: Env) -> None:
    rollout = example_rollout(env)
    env.apply(rollout)
    vs_before = env.vs()
    problem = turn_invalid(env)  # the CRD lets it through, the models do not
    env.reconcile()
    status = env.rollout()["status"]
    assert status["phase"] == "Invalid"
    assert f"spec.analysis.webhooks[0]: {problem}" in status["message"]  # the field, then why
    assert env.vs()["spec"] == vs_before["spec"]


@ON_BOTH
def test_a_secondexample_rollout_on_the_same_route_is_invalid(env: Env) -> None:
    start(env)
    second = example_rollout(env)
    second["metadata"]["name"] = "ui-copy"
    env.apply(second)
    env.reconcile("ui-copy")
    status = env.rollout("ui-copy")["status"]
    assert status["phase"] == "Invalid"
    assert "already managed by Rollout" in status["message"]


@ON_BOTH
def test_deleting_a_rollout_mid_split_hands_the_route_back_then_it_is_gone(env: Env) -> None:
    """The finalizer: the VirtualService as it was before the release, both subsets on the
    stable version, every claim removed; then the finalizer goes and the apiserver removes the
    object (on the real one: a DELETE answered 200 with a deletionTimestamp, until then)."""
    vs_before = env.vs()
    start(env)
    for _ in range(2):  # mirror -> header canary -> split 10 %
        env.clock.advance(10)
        env.reconcile()
    assert weights(env.vs()) == {"stable": 90, "canary": 10}
    env.delete(env.rollout())
    deleting = env.rollout()
    assert deleting["metadata"]["deletionTimestamp"]
    assert deleting["metadata"]["finalizers"] == ["canary.dev/finalizer"]
    env.reconcile()
    vs, dr = env.vs(), env.dr()
    assert vs["spec"] == vs_before["spec"]
    assert [s["labels"] for s in dr["spec"]["subsets"]] == [{"version": "v1"}] * 2
    for obj in (vs, dr):
        assert not any(k.startswith("canary.dev/") for k in obj["metadata"].get("annotations", {}))
    with pytest.raises(SandboxError) as gone:
        env.rollout()
    assert gone.value.code == 404


@ON_BOTH
def test_missing_destination_rule_subset_is_invalid(env: Env) -> None:
    dr = env.dr()
    dr["spec"]["subsets"] = [s for s in dr["spec"]["subsets"] if s["name"] != "canary"]
    env.put(dr)
    vs_before = env.vs()
    env.apply(example_rollout(env))
    env.reconcile()
    status = env.rollout()["status"]
    assert status["phase"] == "Invalid"
    assert (
        "canary" in status["message"] and f"DestinationRule {env.namespace}/ui" in status["message"]
    )
    assert env.vs()["spec"] == vs_before["spec"]


@ON_BOTH
def test_a_canary_that_never_becomes_ready_fails_after_its_deadline(env: Env) -> None:
    env.set_ready("ui-v2", ready=False)
    rollout = example_rollout(env)
    rollout["spec"]["canary"]["readyTimeout"] = "30s"
    env.apply(rollout)
    env.reconcile()
    assert env.rollout()["status"]["phase"] == "Pending"
    assert "mirror" not in managed_route(env.vs())
    env.clock.advance(31)
    env.reconcile()
    status = env.rollout()["status"]
    assert status["phase"] == "RolledBack"
    assert "ui-v2" in status["message"] and "not ready within" in status["message"]
    assert managed_route(env.vs())["route"] == [{"destination": {"host": "ui", "subset": "stable"}}]


@ON_BOTH
def test_a_missing_route_is_invalid_and_changes_nothing(env: Env) -> None:
    rollout = example_rollout(env)
    rollout["spec"]["virtualService"]["route"] = "main"
    env.apply(rollout)
    dr_before, vs_before = env.dr(), env.vs()
    env.reconcile()
    status = env.rollout()["status"]
    assert status["phase"] == "Invalid"
    assert "no http route named 'main'" in status["message"]
    assert (env.vs()["spec"], env.dr()["spec"]) == (vs_before["spec"], dr_before["spec"])
    assert events(env, "InvalidSpec")
