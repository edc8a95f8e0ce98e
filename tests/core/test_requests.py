"""People and pipelines steering a release, spec changes mid-run, and the status bookkeeping.

Aspects: requests promote / promote-full / pause / resume / retry / abort, each applied once
per id and before anything else; malformed annotations; promote skips the current wait (and
never skips a check or undoes the release sequence); promote-full goes through the release
sequence; pause holds weights while checks continue and still rolls back; resume continues but
does not pass a manual gate; retry restarts from the first stage; abort mid-split;
promotion.manualBefore; a new canary.version restarts from stable; reverting to the stable
version succeeds; bounded history; conditions with observedGeneration; `invalid()` and
recovery; the Events of the main transitions.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from core_helpers import (
    CANARY,
    STABLE,
    T0,
    example,
    gates,
    make,
    run_passing,
    spec_dict,
    status_at,
    tick,
    with_annotation,
    with_request,
    with_spec,
)

from canary.core.machine import Decision, invalid
from canary.core.model import Rollout
from canary.core.requests import Action, parse_request
from canary.core.spec import Stage
from canary.core.status import HISTORY_LIMIT, PauseReason, Phase, Verdict
from canary.core.traffic import Traffic

INTERVAL = timedelta(seconds=30)
STABLE_ONLY = Traffic(0, 0.0, False, STABLE, CANARY)


def reasons(decision: Decision) -> list[str]:
    return [e.reason for e in decision.events]


def at_split(step: int = 1, weight: int = 25, **extra: Any) -> Rollout:
    status = status_at(Phase.PROGRESSING, stage=Stage.SPLIT, step=step, weight=weight, **extra)
    return make(status=status)


def request(
    rollout: Rollout, action: Action, rid: str = "r1", **kw: Any
) -> tuple[Rollout, Decision]:
    return tick(with_request(rollout, action, rid), T0 + INTERVAL, **kw)


# ---------------------------------------------------------------- once per id


def test_the_same_request_id_is_applied_once() -> None:
    rollout, first = request(at_split(), Action.PROMOTE, "same")
    assert first.status.step_index == 2
    assert "RequestHandled" in reasons(first)
    _, second = tick(rollout, T0 + 2 * INTERVAL)
    assert second.status.step_index == 2
    assert "RequestHandled" not in reasons(second)
    assert second.status.handled_request == first.status.handled_request


def test_a_new_id_is_a_new_request() -> None:
    rollout, _ = request(at_split(), Action.PROMOTE, "a")
    _, decision = request(rollout, Action.PROMOTE, "b")
    assert decision.status.step_index == 3
    assert decision.status.handled_request is not None
    assert decision.status.handled_request.id == "b"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("promote", "must be JSON"),
        ('{"action": "promote"}', "must be JSON"),
        ('{"action": "promote", "id": ""}', "must be JSON"),
        ('{"action": "ship-it", "id": "x1"}', "unknown action 'ship-it'"),
        ("[1, 2]", "must be JSON"),
    ],
)
def test_malformed_requests_are_rejected_with_the_fix(raw: str, problem: str) -> None:
    rollout = with_annotation(at_split(), raw)
    _, decision = tick(rollout, T0 + INTERVAL)
    handled = decision.status.handled_request
    assert handled is not None
    assert handled.result.startswith("rejected")
    assert problem in handled.result
    assert handled.action == "unknown"
    assert reasons(decision) == ["RequestRejected"]
    assert decision.status.step_index == 1
    assert parse_request(raw).action is None


def test_requests_come_before_the_gates() -> None:
    rollout = make(
        status=status_at(Phase.PROGRESSING, stage=Stage.SPLIT, weight=10), failure_limit=1
    )
    _, decision = request(rollout, Action.ABORT, gate_results=gates(rollout, Verdict.FAIL))
    assert decision.status.phase is Phase.ABORTED
    rollout = at_split(passed_checks=1)
    _, decision = request(rollout, Action.PAUSE, gate_results=gates(rollout))
    assert decision.status.phase is Phase.PAUSED
    assert decision.status.step_index == 1  # the pass did not advance a paused release


# ---------------------------------------------------------------- promote


def test_promote_skips_the_current_wait() -> None:
    rollout, _ = tick(make(), T0)
    assert rollout.status.stage is Stage.MIRROR
    _, decision = request(rollout, Action.PROMOTE)
    assert decision.status.phase is Phase.PROGRESSING
    assert decision.status.stage is Stage.HEADER_CANARY
    assert decision.traffic == Traffic(0, 0.0, True, STABLE, CANARY)
    assert decision.status.handled_request is not None
    assert decision.status.handled_request.result == "promoted to stage headerCanary"


def test_promote_with_gates_in_the_same_reconcile_does_not_skip_a_check() -> None:
    """Gates measured before the promote describe the old position, not the new one."""
    data = spec_dict(
        mirror={"percent": 100, "duration": "30s"},
        headerCanary={"match": [{"headers": {"b": {"exact": "1"}}}], "duration": "30s"},
    )
    rollout, _ = tick(make(data), T0)
    assert rollout.status.stage is Stage.MIRROR
    _, decision = request(rollout, Action.PROMOTE, gate_results=gates(rollout))
    assert decision.status.stage is Stage.HEADER_CANARY
    assert decision.status.passed_checks == 0


def test_promote_during_the_release_sequence_never_goes_backwards() -> None:
    status = status_at(
        Phase.PROGRESSING,
        stage=Stage.RELEASE,
        step=1,
        weight=100,
        stable_subset_moved_at=T0,
    )
    rollout = make(status=status)
    mid_settle = T0 + timedelta(seconds=5)
    for action in (Action.PROMOTE, Action.PROMOTE_FULL):
        promoted, decision = tick(with_request(rollout, action, action.value), mid_settle)
        assert decision.status.stage is Stage.RELEASE, action
        assert decision.status.stable_subset_moved, action
        assert decision.traffic == Traffic(100, 0.0, False, CANARY, CANARY), action
        assert decision.status.handled_request is not None
        assert not decision.status.handled_request.result.startswith("rejected")
        _, done = tick(promoted, T0 + rollout.spec.promotion.settle_delay)
        assert done.status.phase is Phase.SUCCEEDED, action


def test_promote_full_goes_through_the_release_sequence() -> None:
    rollout, _ = tick(make(), T0)
    rollout, decision = request(rollout, Action.PROMOTE_FULL)
    assert decision.status.phase is Phase.PROGRESSING
    assert (decision.status.stage, decision.status.step_index) == (Stage.RELEASE, 0)
    assert decision.traffic == Traffic(100, 0.0, False, STABLE, CANARY)
    assert decision.requeue_after == timedelta(0)
    now = T0 + INTERVAL
    rollout, decision = tick(rollout, now)
    assert decision.status.stable_subset_moved
    assert decision.status.phase is Phase.PROGRESSING
    _, decision = tick(rollout, now + rollout.spec.promotion.settle_delay)
    assert decision.status.phase is Phase.SUCCEEDED
    assert decision.status.stable_version == CANARY


def test_promote_is_refused_while_waiting_for_the_canary() -> None:
    rollout, _ = tick(make(), T0, ready=False)
    _, decision = request(rollout, Action.PROMOTE, ready=False)
    assert decision.status.handled_request is not None
    assert decision.status.handled_request.result.startswith("rejected")
    assert decision.status.stage is Stage.WAITING


# ---------------------------------------------------------------- pause / resume


def test_pause_holds_weights_while_checks_continue() -> None:
    rollout, decision = request(at_split(), Action.PAUSE)
    assert decision.status.phase is Phase.PAUSED
    assert decision.status.paused_reason is PauseReason.USER
    for i in range(2, 8):
        rollout, decision = tick(rollout, T0 + INTERVAL * i, gate_results=gates(rollout))
        assert decision.status.phase is Phase.PAUSED
        assert decision.status.canary_weight == 25
        assert decision.status.last_analysis is not None
        assert decision.status.last_analysis.time == T0 + INTERVAL * i
    _, decision = request(rollout, Action.RESUME, rid="r2")
    assert decision.status.phase is Phase.PROGRESSING
    assert decision.status.paused_reason is None


def test_a_paused_release_still_rolls_back() -> None:
    rollout, _ = request(at_split(), Action.PAUSE)
    for i in (2, 3):
        rollout, decision = tick(
            rollout, T0 + INTERVAL * i, gate_results=gates(rollout, Verdict.FAIL)
        )
    assert decision.status.phase is Phase.ROLLED_BACK
    assert decision.traffic == STABLE_ONLY


def test_resume_continues_counting_checks() -> None:
    rollout, _ = request(at_split(), Action.PAUSE)
    rollout, _ = tick(rollout, T0 + 2 * INTERVAL, gate_results=gates(rollout))
    rollout, _ = tick(with_request(rollout, Action.RESUME, "r2"), T0 + 2 * INTERVAL)
    assert rollout.status.phase is Phase.PROGRESSING
    for i in (3, 4):
        rollout, decision = tick(rollout, T0 + INTERVAL * i, gate_results=gates(rollout))
    assert decision.status.step_index == 2


def test_pause_and_resume_while_waiting_for_the_canary() -> None:
    rollout, _ = tick(make(), T0, ready=False)
    rollout, decision = request(rollout, Action.PAUSE, ready=False)
    assert decision.status.phase is Phase.PAUSED
    rollout, decision = tick(rollout, T0 + timedelta(minutes=1), ready=True)
    assert decision.status.stage is Stage.WAITING  # a paused release does not start a stage
    _, decision = tick(with_request(rollout, Action.RESUME, "r2"), T0 + timedelta(minutes=2))
    assert decision.status.phase is Phase.PROGRESSING
    assert decision.status.stage is Stage.MIRROR


# ---------------------------------------------------------------- manualBefore


@pytest.mark.parametrize(
    ("gate", "held_at", "entered"),
    [
        ("mirror", Stage.WAITING, Stage.MIRROR),
        ("headerCanary", Stage.MIRROR, Stage.HEADER_CANARY),
        ("split", Stage.HEADER_CANARY, Stage.SPLIT),
        ("release", Stage.SPLIT, Stage.RELEASE),
    ],
)
def test_manual_before_waits_for_promote(gate: str, held_at: Stage, entered: Stage) -> None:
    data = example()
    data["spec"]["promotion"]["manualBefore"] = [gate]
    rollout, decision = tick(make(data), T0)
    now = T0
    for _ in range(200):
        if decision.status.phase is Phase.PAUSED:
            break
        now += INTERVAL
        rollout, decision = tick(rollout, now, gate_results=gates(rollout))
    status = decision.status
    assert status.phase is Phase.PAUSED
    assert status.paused_reason is PauseReason.MANUAL_GATE
    assert status.stage is held_at
    assert "WaitingForPromotion" in reasons(decision)
    held_traffic = decision.traffic
    # passing checks and resume do not pass the gate
    for _ in range(3):
        now += INTERVAL
        rollout, decision = tick(rollout, now, gate_results=gates(rollout))
        assert decision.status.stage is held_at
        assert decision.traffic == held_traffic
    rollout, decision = tick(with_request(rollout, Action.RESUME, "r"), now)
    assert decision.status.handled_request is not None
    assert decision.status.handled_request.result.startswith("rejected")
    assert decision.status.phase is Phase.PAUSED
    _, decision = tick(with_request(rollout, Action.PROMOTE, "p"), now)
    assert decision.status.phase is Phase.PROGRESSING
    assert decision.status.stage is entered


# ---------------------------------------------------------------- abort / retry


def test_abort_mid_split_puts_all_traffic_on_stable() -> None:
    _, decision = request(at_split(step=3, weight=75), Action.ABORT)
    assert decision.status.phase is Phase.ABORTED
    assert decision.traffic == STABLE_ONLY
    assert decision.status.stage is None
    assert "Aborted" in reasons(decision)
    assert "aborted" in decision.status.message


@pytest.mark.parametrize("how", ["abort", "rollback"])
def test_retry_restarts_from_the_first_stage(how: str) -> None:
    rollout = make(
        status=status_at(Phase.PROGRESSING, stage=Stage.SPLIT, step=3, weight=75), failure_limit=1
    )
    if how == "abort":
        rollout, _ = request(rollout, Action.ABORT, rid="a")
    else:
        rollout, _ = tick(rollout, T0 + INTERVAL, gate_results=gates(rollout, Verdict.FAIL))
    assert rollout.status.phase in (Phase.ABORTED, Phase.ROLLED_BACK)
    rollout, decision = tick(
        with_request(rollout, Action.RETRY, "again"), T0 + timedelta(hours=1), ready=False
    )
    status = decision.status
    assert (status.phase, status.stage, status.step_index, status.canary_weight) == (
        Phase.PENDING,
        Stage.WAITING,
        0,
        0,
    )
    assert (status.failed_checks, status.passed_checks, status.last_analysis) == (0, 0, None)
    _, decision = tick(rollout, T0 + timedelta(hours=1, seconds=2))
    assert decision.status.stage is Stage.MIRROR


# ---------------------------------------------------------------- spec changes


def test_a_new_version_mid_run_restarts_from_stable() -> None:
    rollout = with_spec(at_split(step=3, weight=75), **{"canary.version": "v3"})
    _, decision = tick(rollout, T0 + INTERVAL, ready=False)
    status = decision.status
    assert (status.phase, status.stage, status.canary_weight) == (Phase.PENDING, Stage.WAITING, 0)
    assert (status.stable_version, status.canary_version) == (STABLE, "v3")
    assert decision.traffic == Traffic(0, 0.0, False, STABLE, "v3")
    assert reasons(decision)[:2] == ["Superseded", "ReleaseStarted"]


@pytest.mark.parametrize(
    "status",
    [
        status_at(Phase.PROGRESSING, stage=Stage.SPLIT, step=3, weight=75),
        status_at(Phase.PAUSED, stage=Stage.HEADER_CANARY, header_route=True),
        status_at(Phase.PENDING, stage=Stage.WAITING),
        status_at(Phase.ROLLED_BACK),
    ],
    ids=["progressing", "paused", "pending", "rolled-back"],
)
def test_reverting_to_the_stable_version_succeeds(status: Any) -> None:
    rollout = make(status=status, version=STABLE)
    _, decision = tick(rollout, T0 + INTERVAL)
    assert decision.status.phase is Phase.SUCCEEDED
    assert decision.status.canary_version == STABLE
    assert decision.traffic == Traffic(0, 0.0, False, STABLE, STABLE)


# ---------------------------------------------------------------- bookkeeping


def test_history_is_bounded() -> None:
    rollout = at_split()
    for i in range(HISTORY_LIMIT + 5):
        action = Action.PAUSE if i % 2 == 0 else Action.RESUME
        rollout, _ = tick(with_request(rollout, action, f"r{i}"), T0 + timedelta(seconds=i))
    history = rollout.status.history
    assert len(history) == HISTORY_LIMIT
    assert history[-1].time == T0 + timedelta(seconds=HISTORY_LIMIT + 4)
    assert [h.time for h in history] == sorted(h.time for h in history)


def test_conditions_carry_the_observed_generation() -> None:
    rollout = make(generation=7)
    rollout, decision = tick(rollout, T0)
    assert decision.status.observed_generation == 7
    by_type = {c.type: c for c in decision.status.conditions}
    assert set(by_type) == {"Valid", "Progressing"}
    assert all(c.observed_generation == 7 for c in decision.status.conditions)
    assert by_type["Valid"].status == "True"
    assert by_type["Progressing"].status == "True"
    assert by_type["Progressing"].reason == "Progressing"
    since = by_type["Progressing"].last_transition_time
    _, later = tick(rollout, T0 + INTERVAL)
    again = {c.type: c for c in later.status.conditions}
    assert again["Progressing"].last_transition_time == since


def test_invalid_keeps_traffic_and_recovers_to_the_suspended_phase() -> None:
    rollout = at_split()
    decision = invalid(rollout, "spec.stages.split.steps must strictly increase", T0)
    status = decision.status
    assert status.phase is Phase.INVALID
    assert status.suspended_phase is Phase.PROGRESSING
    assert decision.traffic is None
    assert reasons(decision) == ["InvalidSpec"]
    valid = {c.type: c for c in status.conditions}["Valid"]
    assert (valid.status, valid.reason) == ("False", "InvalidSpec")
    assert "strictly increase" in valid.message
    rollout = rollout.model_copy(update={"status": status})
    same = invalid(rollout, "spec.stages.split.steps must strictly increase", T0 + INTERVAL)
    assert same.status == status
    assert same.events == ()
    other = invalid(rollout, "another problem", T0 + INTERVAL)
    assert other.status.suspended_phase is Phase.PROGRESSING
    rollout, back = tick(rollout, T0 + 2 * INTERVAL)
    assert back.status.phase is Phase.PROGRESSING
    assert back.status.suspended_phase is None
    assert (back.status.stage, back.status.step_index) == (Stage.SPLIT, 1)
    assert back.traffic == Traffic(25, 0.0, False, STABLE, CANARY)
    assert "Valid" in reasons(back)


def test_invalid_before_initialisation_recovers_by_initialising() -> None:
    decision = invalid(make(), "bad", T0)
    assert decision.status.phase is Phase.INVALID
    rollout = make(status=decision.status)
    _, back = tick(rollout, T0 + INTERVAL, ready=False)
    assert back.status.phase is Phase.PENDING
    assert back.status.stable_version == STABLE


def test_main_transitions_emit_events() -> None:
    rollout, first = tick(make(), T0, ready=False)
    assert reasons(first) == ["Initialised", "ReleaseStarted"]
    rollout, ready = tick(rollout, T0 + timedelta(seconds=2))
    assert reasons(ready) == ["StageStarted"]
    _, _, decisions = run_passing(rollout, T0 + timedelta(seconds=2))
    seen = [r for d in decisions for r in reasons(d)]
    assert seen.count("StageStarted") == 3  # headerCanary, split, release
    assert seen.count("StepAdvanced") == 4
    assert seen[-1] == "Succeeded"
    assert all(e.type == "Normal" for d in decisions for e in d.events)
