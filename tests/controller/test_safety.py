"""Issue 14's safety defects, each replayed through one real reconcile loop, on the sandbox and
(`ON_BOTH`) on the real control plane, where a canary's readiness is the real Deployment
controller's (kwok's Pods; an unready canary's Pods fit no Node).

Aspects: a release after a succeeded one waits for its canary (not ready, missing, scaled to
zero) and rolls back after readyTimeout (defect 1); a stable subset whose version cannot be
read is Invalid and nothing is written (2); a spec that turns invalid mid-release keeps the
checks going on the last valid spec, rolls back a failing canary, and an abort is answered
(3); a new version mid-split takes the traffic away before it re-points the subset, and no
stored mesh state ever sends requests to a version that neither neighbour position sent them
to (4); a crash between the status write and the DestinationRule write of the release step
does not cut the settle (6); an expired request is never acted on (7); leaving Invalid by
recreating the DestinationRule starts the step's checks over (8); a mesh error on the very
first write is Invalid with a message, and fixing it recovers.

The mesh states are recorded through a watch (`MeshRecorder`), the same on both. The crash
test of defect 6 stays on the sandbox: only it can fail one kind of write on demand.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from controller_helpers import Env, MeshRecorder, run_until, start, turn_invalid
from support.controlplane import ON_BOTH
from support.rollouts import quick_rollout
from support.traffic import managed_route, weights

from canary.core.model import REQUEST_ANNOTATION, Rollout
from canary.core.requests import Action, encode_request
from canary.core.status import Verdict
from canary.core.traffic import exposure
from canary.kube.port import ConflictError, UnavailableError
from canary.mesh.istio import observe_traffic


def phase(status: dict) -> str | None:
    return status.get("phase")


def release_v2(env: Env) -> dict:
    start(env)
    return run_until(env, lambda s: phase(s) == "Succeeded")


def bump(env: Env, version: str, workload: str | None = None, **spec: object) -> None:
    """What a pipeline does: a new spec.canary.version (and its Deployment), in one patch."""
    canary = {"version": version, "workloadRef": {"name": workload or f"ui-{version}"}}
    patch: dict = {"canary": canary, **spec}
    env.patch(env.rollout(), {"spec": patch})


def to_split_25(env: Env) -> None:
    start(env)
    run_until(env, lambda s: s.get("canaryWeight") == 25)


def request(env: Env, action: Action, request_id: str, **extra: object) -> None:
    raw = json.loads(encode_request(action, request_id))
    raw.update(extra)
    annotation = {REQUEST_ANNOTATION: json.dumps(raw)}
    env.patch(env.rollout(), {"metadata": {"annotations": annotation}})


# ---------------------------------------------------------------- defect 1: readiness


@ON_BOTH
@pytest.mark.parametrize("workload", ["unready", "missing", "scaled-to-zero"])
def test_a_release_after_a_succeeded_one_waits_for_its_canary(env: Env, workload: str) -> None:
    release_v2(env)
    if workload == "unready":
        env.deploy_version("v3", ready=False)
        bump(env, "v3")
    elif workload == "missing":
        bump(env, "v3", workload="ui-v9")
    else:
        env.deploy_version("v3")
        env.scale("ui-v3", 0)
        bump(env, "v3")
    for _ in range(5):
        env.clock.advance(10)
        env.reconcile()
        status = env.rollout()["status"]
        assert (phase(status), status["stage"]) == ("Pending", "waiting")
        assert "mirror" not in managed_route(env.vs())
        assert weights(env.vs()) == {"stable": 100}
    assert "ui-v" in status["message"]


def assert_no_canary_traffic(versions: list[dict]) -> None:
    """No stored VirtualService mirrors to the canary subset or routes requests to it."""
    for vs in (obj for obj in versions if obj["kind"] == "VirtualService"):
        assert "ui-canary" not in [r.get("name") for r in vs["spec"]["http"]]
        assert "mirror" not in managed_route(vs) and weights(vs) == {"stable": 100}


@ON_BOTH
def test_a_waiting_release_goes_on_once_its_canary_becomes_ready(env: Env) -> None:
    """On the real control plane: ui-v3's Pods fit no Node until its nodeSelector goes, then
    kwok runs them and the Deployment controller reports them ready."""
    release_v2(env)
    env.deploy_version("v3", ready=False)
    with MeshRecorder(env) as recorder:
        bump(env, "v3")
        for _ in range(3):
            env.clock.advance(10)
            env.reconcile()
            status = env.rollout()["status"]
            assert (phase(status), status["stage"]) == ("Pending", "waiting")
        assert f"Deployment {env.namespace}/ui-v3 has 0 of 2 replicas ready" in status["message"]
        while_unready = recorder.versions
    assert_no_canary_traffic(while_unready)
    env.set_ready("ui-v3")
    env.clock.advance(10)
    env.reconcile()
    status = env.rollout()["status"]
    assert (phase(status), status["stage"], status["canaryVersion"]) == (
        "Progressing",
        "mirror",
        "v3",
    )
    assert managed_route(env.vs())["mirror"] == {"host": "ui", "subset": "canary"}


@ON_BOTH
@pytest.mark.parametrize("workload", ["unready", "missing"])
def test_a_canary_never_ready_rolls_back_after_ready_timeout(env: Env, workload: str) -> None:
    """A canary whose Pods never fit a Node, or a workloadRef to a Deployment that does not
    exist: the release waits, then fails at readyTimeout; no traffic ever reached it."""
    release_v2(env)
    if workload == "unready":
        env.deploy_version("v3", ready=False)
    with MeshRecorder(env) as recorder:
        bump(env, "v3", workload="ui-v3" if workload == "unready" else "ui-v9")
        env.patch(env.rollout(), {"spec": {"canary": {"readyTimeout": "1m"}}})
        env.reconcile()
        assert phase(env.rollout()["status"]) == "Pending"
        status = run_until(env, lambda s: phase(s) not in ("Pending", "Progressing"))
        versions = recorder.versions
    assert phase(status) == "RolledBack"
    assert status["stableVersion"] == "v2"
    assert "not ready within" in status["message"]
    assert ("does not exist" if workload == "missing" else "0 of 2 replicas ready") in status[
        "message"
    ]
    assert_no_canary_traffic(versions)


@ON_BOTH
def test_a_canary_with_no_pods_is_never_released_even_with_no_data_pass(env: Env) -> None:
    release_v2(env)
    env.deploy_version("v3")
    env.scale("ui-v3", 0)  # 0 of 0 ready, generation observed
    env.metrics.verdict = Verdict.NO_DATA
    bump(env, "v3", analysis={"noData": "pass"})
    env.patch(env.rollout(), {"spec": {"canary": {"readyTimeout": "1m"}}})
    env.reconcile()
    status = run_until(env, lambda s: phase(s) not in ("Pending", "Progressing"))
    assert phase(status) == "RolledBack"
    assert status["stableVersion"] == "v2"
    assert "scaled to 0 replicas" in status["message"]


@ON_BOTH
def test_pods_of_another_version_hold_the_release(env: Env) -> None:
    """A hurried bump to v3 that still points at ui-v2: its pods are v2, not v3."""
    release_v2(env)
    bump(env, "v3", workload="ui-v2")
    env.clock.advance(10)
    env.reconcile()
    status = env.rollout()["status"]
    assert (phase(status), status["stage"]) == ("Pending", "waiting")
    assert "version=v2, not version=v3" in status["message"]
    assert weights(env.vs()) == {"stable": 100} and "mirror" not in managed_route(env.vs())


# ---------------------------------------------------------------- defect 2: the live version


@ON_BOTH
@pytest.mark.parametrize(
    "labels", [{"app": "ui"}, {"app": "ui", "app.kubernetes.io/version": "v1"}]
)
def test_a_stable_subset_without_the_version_label_is_invalid(env: Env, labels: dict) -> None:
    dr = env.dr()
    for subset in dr["spec"]["subsets"]:
        subset["labels"] = dict(labels)
    env.put(dr)
    before = (env.vs()["spec"], env.dr()["spec"])
    start(env)
    status = env.rollout()["status"]
    assert phase(status) == "Invalid"
    assert status.get("stableVersion") is None
    assert (
        f"DestinationRule {env.namespace}/ui subset 'stable' has no version label"
        in status["message"]
    )
    assert (env.vs()["spec"], env.dr()["spec"]) == before


# ---------------------------------------------------------------- defect 3: an invalid spec


@ON_BOTH
def test_a_spec_turned_invalid_mid_release_still_rolls_back_a_failing_canary(env: Env) -> None:
    to_split_25(env)
    problem = turn_invalid(env)
    env.clock.advance(10)
    env.reconcile()
    status = env.rollout()["status"]
    assert phase(status) == "Progressing" and status["canaryWeight"] == 25
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False" and problem in valid["message"]
    env.metrics.verdict = Verdict.FAIL
    status = run_until(env, lambda s: phase(s) != "Progressing")
    assert phase(status) == "RolledBack"
    assert weights(env.vs()) == {"stable": 100}


@ON_BOTH
def test_a_spec_turned_invalid_mid_release_never_advances(env: Env) -> None:
    to_split_25(env)
    turn_invalid(env)
    for _ in range(6):
        env.clock.advance(10)
        env.reconcile()
        assert env.rollout()["status"]["canaryWeight"] == 25
        assert weights(env.vs()) == {"stable": 75, "canary": 25}


@ON_BOTH
def test_abort_is_answered_while_the_spec_is_invalid(env: Env) -> None:
    to_split_25(env)
    turn_invalid(env)
    request(env, Action.ABORT, "abort-1")
    env.reconcile()
    status = env.rollout()["status"]
    assert status["handledRequest"]["id"] == "abort-1"
    assert phase(status) == "Aborted"
    assert weights(env.vs()) == {"stable": 100}


@ON_BOTH
def test_abort_is_carried_out_once_an_invalid_rollout_can_be_steered(env: Env) -> None:
    to_split_25(env)
    dr = env.dr()
    env.delete(dr)
    request(env, Action.ABORT, "abort-2")
    env.reconcile()
    status = env.rollout()["status"]
    assert phase(status) == "Invalid"
    assert status["handledRequest"]["id"] == "abort-2"
    assert status["handledRequest"]["result"].startswith("aborted")
    del dr["metadata"]["resourceVersion"]
    env.apply(dr)
    env.clock.advance(1)
    env.reconcile()
    assert phase(env.rollout()["status"]) == "Aborted"
    assert weights(env.vs()) == {"stable": 100}


@ON_BOTH
def test_other_requests_are_answered_while_invalid(env: Env) -> None:
    to_split_25(env)
    env.delete(env.dr())
    request(env, Action.PROMOTE, "promote-1")
    env.reconcile()
    handled = env.rollout()["status"]["handledRequest"]
    assert handled["id"] == "promote-1"
    assert handled["result"].startswith("rejected: the Rollout is invalid")


# ---------------------------------------------------------------- defect 4: the write order


def _assert_every_stored_state_safe(env: Env, versions: list[dict], before: dict) -> None:
    """Replay the stored VirtualService/DestinationRule versions in order: each mesh state
    sends requests only to (subset, version) pairs the first or last state sent them to."""
    rollout = Rollout.model_validate(env.rollout())
    vs, dr = before["vs"], before["dr"]
    states = []
    for obj in versions:
        if obj["kind"] == "VirtualService":
            vs = obj
        else:
            dr = obj
        states.append(observe_traffic(vs, dr, "ui", rollout.spec))
    first = observe_traffic(before["vs"], before["dr"], "ui", rollout.spec)
    assert first is not None and all(state is not None for state in states)
    allowed = exposure(first) | exposure(states[-1])
    for state in states:
        assert exposure(state) <= allowed, (state, allowed)


@ON_BOTH
def test_a_new_version_mid_split_takes_the_traffic_away_before_it_moves_the_subset(
    env: Env,
) -> None:
    to_split_25(env)
    env.deploy_version("v3", ready=False)
    before = {"vs": env.vs(), "dr": env.dr()}
    with MeshRecorder(env) as recorder:
        bump(env, "v3")
        env.reconcile()
        run_until(env, lambda s: s.get("canaryVersion") == "v3" and s.get("stage") == "waiting")
        versions = recorder.versions
    kinds = [obj["kind"] for obj in versions]
    assert kinds.index("VirtualService") < kinds.index("DestinationRule")
    _assert_every_stored_state_safe(env, versions, before)
    canary = next(s for s in env.dr()["spec"]["subsets"] if s["name"] == "canary")
    assert canary["labels"]["version"] == "v3" and weights(env.vs()) == {"stable": 100}


@ON_BOTH
def test_a_new_version_during_the_settle_moves_one_subset_at_a_time(env: Env) -> None:
    start(env)
    run_until(env, lambda s: s.get("stableSubsetMovedAt") is not None)
    env.deploy_version("v3")
    before = {"vs": env.vs(), "dr": env.dr()}
    with MeshRecorder(env) as recorder:
        bump(env, "v3")
        env.reconcile()
        run_until(env, lambda s: s.get("canaryVersion") == "v3")
        versions = recorder.versions
    _assert_every_stored_state_safe(env, versions, before)


# ---------------------------------------------------------------- defect 6: the settle


def test_a_crash_before_the_subset_moves_does_not_cut_the_settle(env: Env) -> None:
    start(env)
    run_until(env, lambda s: s.get("stage") == "release")
    env.sandbox.faults.fail_next(20, code=500, resource="destinationrules", writes_only=True)
    status = env.rollout()["status"]
    while (status.get("stage"), status.get("stepIndex")) != ("release", 1):  # subset moved
        env.clock.advance(1)
        with pytest.raises(UnavailableError):
            env.reconcile()
        status = env.rollout()["status"]
    assert status.get("stableSubsetMovedAt") is None  # decided, not yet done
    env.sandbox.faults.reset()
    env.clock.advance(60)  # a long outage, longer than the settle delay
    env.reconcile()  # the DR write that moves the labels happens now
    moved = env.rollout()["status"]
    assert moved["stableSubsetMovedAt"] is not None
    stable = next(s for s in env.dr()["spec"]["subsets"] if s["name"] == "stable")
    assert stable["labels"]["version"] == "v2"
    env.clock.advance(9)
    env.reconcile()
    assert phase(env.rollout()["status"]) == "Progressing"
    assert weights(env.vs()) == {"stable": 0, "canary": 100}
    env.clock.advance(1)
    env.reconcile()
    assert phase(env.rollout()["status"]) == "Succeeded"


# ---------------------------------------------------------------- defect 7: expired requests


@ON_BOTH
def test_an_expired_request_is_never_acted_on(env: Env) -> None:
    to_split_25(env)
    expired = (env.clock() - timedelta(seconds=1)).isoformat()
    request(env, Action.PROMOTE, "late-1", expires=expired)
    env.reconcile()
    status = env.rollout()["status"]
    assert status["handledRequest"]["result"].startswith("expired")
    assert status["canaryWeight"] == 25


@ON_BOTH
def test_a_request_withdrawn_while_the_controller_decides_is_not_acted_on(env: Env) -> None:
    """The controller stores an answer only on the Rollout it read: a request the CLI
    withdrew in between (it gave up) is never acted on, whatever the controller had seen."""
    to_split_25(env)
    request(env, Action.PROMOTE, "raced-1")
    stale = env.rollout()  # the controller's view, with the request
    annotations = {REQUEST_ANNOTATION: None}
    env.patch(stale, {"metadata": {"annotations": annotations}})
    with pytest.raises(ConflictError):
        env.reconciler.reconcile(stale)
    env.reconcile()
    status = env.rollout()["status"]
    assert status.get("handledRequest") is None
    assert status["canaryWeight"] == 25 and weights(env.vs()) == {"stable": 75, "canary": 25}


# ---------------------------------------------------------------- defect 8: leaving Invalid


@ON_BOTH
def test_leaving_invalid_starts_the_step_over(env: Env) -> None:
    to_split_25(env)
    dr = env.dr()
    env.delete(dr)
    env.clock.advance(10)
    env.reconcile()
    assert phase(env.rollout()["status"]) == "Invalid"
    del dr["metadata"]["resourceVersion"]
    env.apply(dr)
    env.clock.advance(10)
    env.reconcile()
    status = env.rollout()["status"]
    assert phase(status) == "Progressing" and status["canaryWeight"] == 25
    assert status["passedChecks"] == 0
    env.clock.advance(1)
    env.reconcile()  # a check right after the outage must not advance the step
    assert env.rollout()["status"]["canaryWeight"] == 25


# ---------------------------------------------------------------- the first write


@ON_BOTH
def test_a_mesh_error_on_the_first_write_is_invalid_and_fixing_it_recovers(env: Env) -> None:
    rollout = quick_rollout()
    rollout["spec"]["host"] = "reviews"
    start(env, rollout)
    status = env.rollout()["status"]
    assert phase(status) == "Invalid"
    assert "not 'reviews'" in status["message"]
    env.patch(env.rollout(), {"spec": {"host": "ui"}})
    env.reconcile()
    status = env.rollout()["status"]
    assert phase(status) in ("Pending", "Progressing"), status
    assert status["message"]
    assert status["stableVersion"] == "v1"


@ON_BOTH
def test_warning_events_are_logged_as_warnings(env: Env) -> None:
    """Issue 14: Warning Events were logged at level info."""
    from structlog.testing import capture_logs

    dr = env.dr()
    for subset in dr["spec"]["subsets"]:
        subset["labels"] = {"app": "ui"}
    env.put(dr)
    with capture_logs() as logs:
        start(env)
    invalid = [line for line in logs if line.get("reason") == "InvalidSpec"]
    assert invalid and all(line["log_level"] == "warning" for line in invalid)


@ON_BOTH
def test_a_mesh_edited_into_one_canary_cannot_steer_holds_the_release_watched(env: Env) -> None:
    """Issue 14: a Rollout whose mesh could not be written mid-release left the mirror on and
    flipped Invalid/Valid every tick. Here a person gives the managed route a match that the
    header canary's contradicts: the release holds at the mirror, its checks go on, and a
    failing canary is still rolled back."""
    rollout = quick_rollout()
    rollout["spec"]["stages"]["headerCanary"]["match"] = [{"uri": {"prefix": "/beta"}}]
    start(env, rollout)
    assert env.rollout()["status"]["stage"] == "mirror"
    vs = env.vs()
    managed_route(vs)["match"] = [{"uri": {"prefix": "/api"}}]
    env.put(vs)
    for _ in range(6):
        env.clock.advance(10)
        env.reconcile()
        status = env.rollout()["status"]
        assert (phase(status), status["stage"]) == ("Progressing", "mirror"), status["message"]
        valid = next(c for c in status["conditions"] if c["type"] == "Valid")
        assert valid["status"] == "False" and "uri" in valid["message"]
    assert (
        len(
            [
                e
                for e in env.cluster.list_events(env.namespace, "ui")
                if e["reason"] == "InvalidSpec"
            ]
        )
        == 1
    )
    env.metrics.verdict = Verdict.FAIL
    status = run_until(env, lambda s: phase(s) != "Progressing")
    assert phase(status) == "RolledBack"
    assert "mirror" not in managed_route(env.vs())
