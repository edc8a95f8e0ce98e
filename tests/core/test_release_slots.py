"""Release slots (--max-concurrent-releases) in the pure machine.

Aspects: a release that has not begun waits in Pending without a slot (one message, one Event,
a condition reason, no canary traffic, a requeue at the analysis interval, no readyTimeout
while it waits) and begins once it has one, its canary's readyTimeout counted from then; which
statuses hold a slot; and a property over random runs: a release never begins without a slot,
and the slot changes nothing for a release under way, nor for an abort or a rollback.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from core_helpers import CANARY, STABLE, T0, gates, make, status_at, with_request, written
from hypothesis import given, settings
from hypothesis import strategies as st
from test_properties import ACTIONS, VERDICTS, spec_data

from canary.core.machine import Decision, Observed, advance
from canary.core.model import Rollout
from canary.core.path import analysis_due
from canary.core.requests import Action
from canary.core.spec import Stage
from canary.core.status import PauseReason, Phase, RolloutStatus, wire_holds_release_slot
from canary.core.traffic import Traffic

NO_SLOT = Observed(stable_version=STABLE, release_slot=False, running_releases=3, max_releases=3)
WAITING_MESSAGE = (
    "waiting for a release slot: 3 of 3 concurrent releases are running (--max-concurrent-releases)"
)


def stable_only(status: RolloutStatus) -> Traffic:
    return Traffic(0, 0.0, False, status.stable_version or "", status.canary_version or "")


def pending() -> Rollout:
    """A release of v2 that has just started and waits in Pending."""
    return make(status=status_at(Phase.PENDING, stage=Stage.WAITING))


def test_without_a_slot_a_pending_release_waits_with_the_reason_and_no_canary_traffic() -> None:
    decision = advance(pending(), NO_SLOT, T0 + timedelta(seconds=1))
    status = decision.status
    assert (status.phase, status.stage) == (Phase.PENDING, Stage.WAITING)
    assert status.message == WAITING_MESSAGE
    assert status.waiting_for_slot_since == T0 + timedelta(seconds=1)
    assert decision.traffic == stable_only(status)
    assert decision.slot_requested
    assert decision.transitions == ()
    assert [(e.reason, e.message) for e in decision.events] == [
        ("WaitingForReleaseSlot", WAITING_MESSAGE)
    ]
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    assert (progressing.reason, progressing.message) == ("WaitingForReleaseSlot", WAITING_MESSAGE)
    assert decision.requeue_after == pending().spec.analysis.interval


def test_a_waiting_release_says_it_once_and_keeps_its_place() -> None:
    rollout = pending()
    first = advance(rollout, NO_SLOT, T0 + timedelta(seconds=1))
    rollout = written(rollout, first, T0 + timedelta(seconds=1))
    again = advance(rollout, NO_SLOT, T0 + timedelta(minutes=5))
    assert again.events == ()
    assert again.status == rollout.status  # nothing to write while it waits
    assert again.status.waiting_for_slot_since == T0 + timedelta(seconds=1)


def test_a_new_release_of_a_succeeded_rollout_waits_for_a_slot_in_the_same_reconcile() -> None:
    rollout = make(status=status_at(Phase.SUCCEEDED, canary=STABLE), version=CANARY)
    decision = advance(rollout, NO_SLOT, T0)
    assert (decision.status.phase, decision.status.stage) == (Phase.PENDING, Stage.WAITING)
    assert decision.status.message == WAITING_MESSAGE
    assert decision.traffic == stable_only(decision.status)


def test_with_a_slot_the_waiting_release_begins() -> None:
    rollout = pending()
    rollout = written(rollout, advance(rollout, NO_SLOT, T0), T0)
    later = T0 + timedelta(hours=2)
    decision = advance(rollout, Observed(stable_version=STABLE), later)
    assert decision.status.phase is Phase.PROGRESSING
    assert decision.status.stage is not Stage.WAITING
    assert decision.status.waiting_for_slot_since is None
    assert "ReleaseSlotTaken" in [e.reason for e in decision.events]
    progressing = next(c for c in decision.status.conditions if c.type == "Progressing")
    assert progressing.reason == "Progressing"


def test_the_wait_for_a_slot_does_not_count_against_ready_timeout() -> None:
    rollout = pending()
    rollout = written(rollout, advance(rollout, NO_SLOT, T0), T0)
    timeout = rollout.spec.canary.ready_timeout
    granted = T0 + timeout * 3
    decision = advance(rollout, Observed(canary_ready=False, stable_version=STABLE), granted)
    assert (decision.status.phase, decision.status.stage) == (Phase.PENDING, Stage.WAITING)
    assert decision.status.stage_started_at == granted
    rollout = written(rollout, decision, granted)
    late = granted + timeout + timedelta(seconds=1)
    timed_out = advance(rollout, Observed(canary_ready=False, stable_version=STABLE), late)
    assert timed_out.status.phase is Phase.ROLLED_BACK


def test_an_abort_of_a_waiting_release_needs_no_slot() -> None:
    rollout = pending()
    rollout = written(rollout, advance(rollout, NO_SLOT, T0), T0)
    decision = advance(with_request(rollout, Action.ABORT, "a1"), NO_SLOT, T0)
    assert decision.status.phase is Phase.ABORTED
    assert decision.status.waiting_for_slot_since is None
    assert decision.status.message.startswith("release of v2 aborted")


@pytest.mark.parametrize(
    ("status", "holds"),
    [
        (status_at(Phase.PENDING, stage=Stage.WAITING), False),
        (status_at(Phase.PROGRESSING, stage=Stage.WAITING), True),  # a confirmation webhook
        (status_at(Phase.PROGRESSING, stage=Stage.SPLIT, weight=25), True),
        (status_at(Phase.PAUSED, stage=Stage.SPLIT, paused_reason=PauseReason.USER), True),
        (
            status_at(Phase.PAUSED, stage=Stage.WAITING, paused_reason=PauseReason.MANUAL_GATE),
            True,
        ),
        (status_at(Phase.PAUSED, stage=Stage.WAITING, paused_reason=PauseReason.USER), False),
        (status_at(Phase.SUCCEEDED), False),
        (status_at(Phase.ROLLED_BACK), False),
        (status_at(Phase.ABORTED), False),
        (status_at(Phase.INVALID, stage=Stage.SPLIT, suspended_phase=Phase.PROGRESSING), True),
        (status_at(Phase.INVALID, suspended_phase=Phase.SUCCEEDED), False),
        (RolloutStatus(), False),
    ],
)
def test_which_statuses_hold_a_release_slot(status: RolloutStatus, holds: bool) -> None:
    assert status.holds_release_slot is holds
    assert wire_holds_release_slot(status.wire()) is holds  # as the controller's watch reads it


def test_a_stored_status_it_cannot_read_holds_no_slot() -> None:
    assert not wire_holds_release_slot({"phase": "Running", "stage": "split"})


def _check_slot(before: Rollout, with_slot: Decision, without: Decision) -> None:
    if before.status.holds_release_slot:
        assert without == with_slot, "a release under way depends on the slot"
        return
    assert not without.status.holds_release_slot, "a release began without a slot"
    if without != with_slot:
        assert without.slot_requested
        assert (without.status.phase, without.status.stage) == (Phase.PENDING, Stage.WAITING)
        assert without.traffic == stable_only(without.status)
        assert without.status.waiting_for_slot_since is not None


@settings(max_examples=60)
@given(data=spec_data(), choices=st.data())
def test_a_slot_matters_only_to_a_release_that_has_not_begun(
    data: dict[str, Any], choices: st.DataObject
) -> None:
    rollout = make(data)
    now = T0
    verdict_mix = choices.draw(st.lists(VERDICTS, min_size=1, max_size=4), label="verdict mix")
    for i in range(100):
        if choices.draw(st.floats(0, 1), label="r") < 0.2:
            rollout = with_request(rollout, choices.draw(ACTIONS, label="action"), f"id-{i}")
        checked = None
        if analysis_due(rollout, now):
            verdicts = choices.draw(st.lists(st.sampled_from(verdict_mix), min_size=2, max_size=2))
            checked = gates(rollout, *verdicts)
        ready = choices.draw(st.booleans(), label="ready") or i % 3 == 0
        slot = choices.draw(st.booleans(), label="slot")
        base = Observed(canary_ready=ready, stable_version=STABLE, gates=checked)
        with_slot = advance(rollout, base, now)
        without = advance(
            rollout,
            Observed(
                canary_ready=ready,
                stable_version=STABLE,
                gates=checked,
                release_slot=False,
                running_releases=1,
                max_releases=1,
            ),
            now,
        )
        _check_slot(rollout, with_slot, without)
        decision = with_slot if slot else without
        rollout = written(rollout, decision, now)
        if decision.status.phase not in (Phase.PENDING, Phase.PROGRESSING, Phase.PAUSED):
            rollout = make(data, status=rollout.status, version=f"v{i + 3}")
        now += decision.requeue_after or rollout.spec.analysis.interval
