"""The TRANSITIONS table, entry by entry (h11 style).

Aspects: for every (phase, trigger) in the table, a status in that phase and the inputs that
fire the trigger through `advance` (or a request, or `invalid`) end in the table's phase;
every pair outside the table raises `IllegalTransitionError` from `fire`; requests outside the
table are rejected (`handledRequest.result` starts with "rejected") and leave the position, the
weights and the message untouched; non-request triggers outside the table change nothing.
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
    status_at,
    tick,
    with_request,
    with_status,
)

from canary.core.machine import (
    TRANSITIONS,
    Decision,
    IllegalTransitionError,
    Trigger,
    fire,
    invalid,
)
from canary.core.model import Rollout
from canary.core.requests import Action
from canary.core.spec import Stage
from canary.core.status import PauseReason, Phase, RolloutStatus, Verdict

PHASES: list[Phase | None] = [None, *Phase]
NOW = T0 + timedelta(minutes=1)


def in_phase(phase: Phase | None, **overrides: object) -> RolloutStatus:
    """A representative status in `phase` (a release of v2 over stable v1)."""
    if phase is None:
        return RolloutStatus()
    split_25: dict[str, Any] = {"stage": Stage.SPLIT, "step": 1, "weight": 25}
    base: dict[Phase, RolloutStatus] = {
        Phase.PENDING: status_at(
            Phase.PENDING,
            stage=Stage.WAITING,
            unready_since=T0,
            message="waiting for the canary before stage mirror: the canary workload",
        ),
        Phase.PROGRESSING: status_at(Phase.PROGRESSING, **split_25),
        Phase.PAUSED: status_at(Phase.PAUSED, **split_25, paused_reason=PauseReason.USER),
        Phase.SUCCEEDED: status_at(Phase.SUCCEEDED, canary=STABLE),
        Phase.ROLLED_BACK: status_at(Phase.ROLLED_BACK, message="rolled back: gate x fail"),
        Phase.ABORTED: status_at(Phase.ABORTED, message="aborted"),
        Phase.INVALID: status_at(
            Phase.INVALID,
            **split_25,
            suspended_phase=Phase.PROGRESSING,
            message="spec.x is wrong",
        ),
    }
    return base[phase].model_copy(update=overrides)


def _at(phase: Phase | None, version: str | None = None, **overrides: object) -> Rollout:
    """A rollout in `phase`; its spec asks for what the status already runs unless told."""
    if version is None:
        version = STABLE if phase is Phase.SUCCEEDED else CANARY
    return make(status=in_phase(phase, **overrides), version=version)


REQUEST_OF = {
    Trigger.PAUSE: Action.PAUSE,
    Trigger.RESUME: Action.RESUME,
    Trigger.PROMOTE: Action.PROMOTE,
    Trigger.PROMOTE_FULL: Action.PROMOTE_FULL,
    Trigger.ABORT: Action.ABORT,
    Trigger.RETRY: Action.RETRY,
}


def drive(phase: Phase | None, trigger: Trigger) -> Decision:
    """Put a rollout in `phase` and make `trigger` fire."""
    if trigger is Trigger.INITIALISED:
        return tick(make(version=CANARY), NOW, stable_version=CANARY)[1]
    if trigger is Trigger.RELEASE_STARTED:
        return tick(_at(phase, version="v3"), NOW, ready=False)[1]
    if trigger is Trigger.VERSION_REVERTED:
        overrides = {"canary_version": CANARY} if phase is Phase.SUCCEEDED else {}
        return tick(_at(phase, version=STABLE, **overrides), NOW)[1]
    if trigger is Trigger.CANARY_READY:
        return tick(_at(phase), NOW, ready=True)[1]
    if trigger is Trigger.READY_TIMEOUT:
        rollout = _at(phase, passed_checks=1, unready_since=T0)  # Progressing: the next step waits
        late = T0 + rollout.spec.canary.ready_timeout + timedelta(seconds=1)
        return tick(rollout, late, ready=False, gate_results=gates(rollout))[1]
    if trigger is Trigger.MANUAL_GATE:
        data = example()
        data["spec"]["stages"]["split"]["interval"] = "30s"
        data["spec"]["promotion"]["manualBefore"] = ["split"]
        status = in_phase(phase, stage=Stage.HEADER_CANARY, step_index=0, canary_weight=0)
        rollout = make(data, status=status.model_copy(update={"passed_checks": 9}))
        return tick(rollout, NOW, gate_results=gates(rollout))[1]
    if trigger is Trigger.STEP_PASSED:
        rollout = _at(phase, passed_checks=1)
        return tick(rollout, NOW, gate_results=gates(rollout))[1]
    if trigger is Trigger.RELEASED:
        rollout = _at(
            phase,
            stage=Stage.RELEASE,
            step_index=1,
            canary_weight=100,
            stable_subset_moved_at=T0,
        )
        return tick(rollout, T0 + rollout.spec.promotion.settle_delay)[1]
    if trigger is Trigger.GATES_FAILED:
        rollout = _at(phase, failed_checks=1)
        return tick(rollout, NOW, gate_results=gates(rollout, Verdict.FAIL))[1]
    if trigger in REQUEST_OF:
        overrides: dict[str, object] = {}
        if trigger is Trigger.RESUME:
            overrides["paused_reason"] = PauseReason.USER
        rollout = with_request(_at(phase, **overrides), REQUEST_OF[trigger], "req-1")
        # A promotion sends the canary more traffic: it needs a ready canary.
        promotes = trigger in (Trigger.PROMOTE, Trigger.PROMOTE_FULL)
        return tick(rollout, NOW, ready=promotes)[1]
    if trigger is Trigger.RESUME_WAITING:
        waiting = _at(phase, stage=Stage.WAITING, step_index=0, canary_weight=0)
        waiting = with_status(waiting, waiting.status.model_copy(update={"paused_reason": "user"}))
        return tick(with_request(waiting, Action.RESUME, "req-1"), NOW, ready=False)[1]
    if trigger is Trigger.INVALID:
        return invalid(_at(phase), "spec.stages.split.steps must strictly increase", NOW)
    raise AssertionError(f"no driver for {trigger}")


@pytest.mark.parametrize(
    ("phase", "trigger", "target"),
    [
        pytest.param(p, t, target, id=f"{p}-{t.value}->{target}")
        for (p, t), target in TRANSITIONS.items()
    ],
)
def test_every_transition_of_the_table(
    phase: Phase | None, trigger: Trigger, target: Phase
) -> None:
    decision = drive(phase, trigger)
    assert decision.status.phase is target, decision.status.message
    if trigger in (*REQUEST_OF, Trigger.RESUME_WAITING):
        handled = decision.status.handled_request
        assert handled is not None
        assert handled.id == "req-1"
        assert not handled.result.startswith("rejected"), handled.result


def test_the_table_is_only_about_known_phases_and_triggers() -> None:
    for (phase, trigger), target in TRANSITIONS.items():
        assert phase is None or isinstance(phase, Phase)
        assert isinstance(trigger, Trigger)
        assert isinstance(target, Phase)
    used = {t for _, t in TRANSITIONS}
    assert used == set(Trigger)


ILLEGAL = [(p, t) for p in PHASES for t in Trigger if (p, t) not in TRANSITIONS]


@pytest.mark.parametrize(
    ("phase", "trigger"), [pytest.param(p, t, id=f"{p}-{t.value}") for p, t in ILLEGAL]
)
def test_fire_refuses_pairs_outside_the_table(phase: Phase | None, trigger: Trigger) -> None:
    with pytest.raises(IllegalTransitionError, match=trigger.value):
        fire(phase, trigger)


ILLEGAL_REQUESTS = [
    (p, t) for p, t in ILLEGAL if t in REQUEST_OF and p not in (None, Phase.INVALID)
]
# Requests that the table allows in a phase but that the machine still refuses there.
REFUSED_ANYWAY = [
    (Phase.PENDING, Trigger.PROMOTE, "pending-promote-while-waiting"),
    (Phase.PAUSED, Trigger.RESUME, "resume-does-not-pass-a-manual-gate"),
]


def _refused_rollout(phase: Phase, trigger: Trigger) -> Rollout:
    overrides: dict[str, object] = {}
    if phase is Phase.PAUSED and trigger is Trigger.RESUME:
        overrides["paused_reason"] = PauseReason.MANUAL_GATE
    return with_request(_at(phase, **overrides), REQUEST_OF[trigger], "req-9")


def _unchanged(before: RolloutStatus, after: RolloutStatus) -> None:
    for name in (
        "phase",
        "stage",
        "step_index",
        "canary_weight",
        "mirror_percent",
        "header_route",
        "stable_subset_moved",
        "stable_version",
        "canary_version",
        "paused_reason",
        "message",
        "failed_checks",
        "passed_checks",
        "step_started_at",
    ):
        assert getattr(after, name) == getattr(before, name), name


@pytest.mark.parametrize(
    ("phase", "trigger"),
    [pytest.param(p, t, id=f"{p}-{t.value}") for p, t in ILLEGAL_REQUESTS]
    + [pytest.param(p, t, id=name) for p, t, name in REFUSED_ANYWAY],
)
def test_requests_outside_the_table_are_rejected_and_change_nothing(
    phase: Phase, trigger: Trigger
) -> None:
    rollout = _refused_rollout(phase, trigger)
    # A not-ready canary keeps a waiting release where it is.
    _, decision = tick(rollout, NOW, ready=False)
    handled = decision.status.handled_request
    assert handled is not None
    assert handled.id == "req-9"
    assert handled.action == REQUEST_OF[trigger].value
    assert handled.result.startswith("rejected"), handled.result
    assert any(e.reason == "RequestRejected" for e in decision.events)
    _unchanged(rollout.status, decision.status)


@pytest.mark.parametrize(
    ("phase", "verdict"),
    [
        (Phase.PENDING, Verdict.FAIL),
        (Phase.SUCCEEDED, Verdict.FAIL),
        (Phase.ROLLED_BACK, Verdict.FAIL),
        (Phase.ABORTED, Verdict.FAIL),
        (Phase.SUCCEEDED, Verdict.PASS),
        (Phase.ROLLED_BACK, Verdict.PASS),
        (Phase.ABORTED, Verdict.PASS),
    ],
)
def test_gate_readings_outside_an_analysed_stage_change_nothing(
    phase: Phase, verdict: Verdict
) -> None:
    """gatesFailed / stepPassed are not in the table for these phases."""
    rollout = _at(phase, failed_checks=5)
    _, decision = tick(rollout, NOW, gate_results=gates(rollout, verdict), ready=False)
    _unchanged(rollout.status, decision.status)
    assert decision.status.last_analysis is None


@pytest.mark.parametrize(
    "phase",
    [Phase.PROGRESSING, Phase.PAUSED, Phase.SUCCEEDED, Phase.ROLLED_BACK, Phase.ABORTED],
)
def test_readiness_matters_only_while_pending(phase: Phase) -> None:
    """canaryReady is only in the table for Pending; readyTimeout in Progressing only ends a
    wait for readiness before an advance, which no check asked for here."""
    rollout = _at(phase)
    late = T0 + timedelta(days=1)
    _, decision = tick(rollout, late, ready=False)
    assert decision.status.phase is phase
    _unchanged(rollout.status, decision.status)
