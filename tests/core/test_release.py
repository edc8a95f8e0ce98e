"""A release without people: initialisation, waiting, the stages, the analysis and rollback.

Aspects: initialisation from the DestinationRule's stable version and "already live";
waiting for canary readiness (no canary traffic, requeue, readyTimeout -> RolledBack);
mirror -> headerCanary -> each split step -> release (canary 100, stable subset moved, settle,
Succeeded, stableVersion updated) with the traffic at each position; omitted stages;
stepWeight/maxWeight; verdict combination and noData policy; consecutive failureLimit (a pass
resets, a hold does not); an error never passes; checks needed per step; rollback traffic and
the failing gate in the message; `analysis_due` spacing and tolerance; Events; requeue_after.
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
    with_request,
)

from canary.core.machine import WAITING_REQUEUE, Decision, combine, count_as
from canary.core.model import Rollout
from canary.core.path import (
    CHECK_HEARTBEAT,
    Position,
    analysis_due,
    next_position,
    positions,
    repeats_stored_check,
    required_checks,
)
from canary.core.requests import Action
from canary.core.simulate import walk
from canary.core.spec import NoDataPolicy, Stage
from canary.core.status import GateResult, Phase, Verdict
from canary.core.traffic import Traffic

INTERVAL = timedelta(seconds=30)


def reasons(decision: Decision) -> list[str]:
    return [e.reason for e in decision.events]


# ---------------------------------------------------------------- initialisation


def test_initialises_from_the_destination_rules_stable_version_and_starts_the_release() -> None:
    _, decision = tick(make(), T0, ready=False, stable_version=STABLE)
    status = decision.status
    assert status.phase is Phase.PENDING
    assert status.stage is Stage.WAITING
    assert (status.stable_version, status.canary_version) == (STABLE, CANARY)
    assert status.release_started_at == T0
    assert reasons(decision)[:2] == ["Initialised", "ReleaseStarted"]
    assert decision.traffic == Traffic(0, 0.0, False, STABLE, CANARY)
    assert [h.phase for h in status.history] == [Phase.PENDING]


def test_a_version_already_live_is_succeeded_at_once() -> None:
    _, decision = tick(make(), T0, stable_version=CANARY)
    assert decision.status.phase is Phase.SUCCEEDED
    assert decision.status.stable_version == CANARY
    assert decision.status.canary_version == CANARY
    assert "ReleaseStarted" not in reasons(decision)
    assert decision.traffic == Traffic(0, 0.0, False, CANARY, CANARY)


def test_an_unknown_live_version_is_invalid_and_changes_nothing() -> None:
    """Issue 14, defect 2: a stable subset without the version label must not make the new
    version live (it once did: `live = observed or wanted`)."""
    rollout = make()
    _, decision = tick(rollout, T0, stable_version=None)
    assert decision.status.phase is Phase.INVALID
    assert decision.traffic is None
    assert decision.status.stable_version is None
    message = decision.status.message
    assert "shop/ui" in message and "'stable'" in message and "version label" in message
    assert reasons(decision) == ["InvalidSpec"]
    again = tick(rollout.model_copy(update={"status": decision.status}), T0, stable_version=None)
    assert again[1].status.phase is Phase.INVALID and again[1].events == ()


def test_a_succeeded_rollout_stays_put() -> None:
    rollout, first = tick(make(), T0, stable_version=CANARY)
    again = tick(rollout, T0 + timedelta(hours=1), gate_results=gates(rollout, Verdict.FAIL))[1]
    assert again.status.phase is Phase.SUCCEEDED
    assert again.events == ()
    assert again.status.history == first.status.history


# ---------------------------------------------------------------- waiting for readiness


def test_no_canary_traffic_until_the_canary_is_ready() -> None:
    rollout, decision = tick(make(), T0, ready=False)
    for seconds in (2, 4, 60, 599):
        rollout, decision = tick(rollout, T0 + timedelta(seconds=seconds), ready=False)
        assert decision.status.phase is Phase.PENDING
        assert decision.status.stage is Stage.WAITING
        assert decision.traffic is not None
        assert decision.traffic.canary_weight == 0
        assert decision.traffic.mirror_percent == 0
        assert not decision.traffic.header_route
        assert decision.requeue_after == WAITING_REQUEUE
    rollout, decision = tick(rollout, T0 + timedelta(minutes=10), ready=True)
    assert decision.status.phase is Phase.PROGRESSING
    assert decision.status.stage is Stage.MIRROR
    assert "StageStarted" in reasons(decision)


def test_ready_timeout_rolls_back_with_a_clear_message() -> None:
    rollout, _ = tick(make(), T0, ready=False)
    at_deadline = T0 + rollout.spec.canary.ready_timeout
    rollout, decision = tick(rollout, at_deadline, ready=False)
    assert decision.status.phase is Phase.PENDING
    _, decision = tick(rollout, at_deadline + timedelta(seconds=1), ready=False)
    status = decision.status
    assert status.phase is Phase.ROLLED_BACK
    assert "not ready within" in status.message
    assert "canary retry" in status.message
    assert "RolledBack" in reasons(decision)
    assert decision.traffic == Traffic(0, 0.0, False, STABLE, CANARY)


# ---------------------------------------------------------------- the whole walk


def _trace(decisions: list[Decision]) -> list[tuple[Any, ...]]:
    """Distinct (stage, step, traffic) positions in the order they were written."""
    seen: list[tuple[Any, ...]] = []
    for d in decisions:
        t = d.traffic
        assert t is not None
        key = (
            d.status.stage,
            d.status.step_index,
            t.canary_weight,
            t.mirror_percent,
            t.header_route,
            t.stable_version,
        )
        if not seen or seen[-1] != key:
            seen.append(key)
    return seen


def test_the_ui_release_walks_every_position_with_its_traffic() -> None:
    rollout, waiting = tick(make(), T0 - timedelta(seconds=2), ready=False)
    _, end, decisions = run_passing(rollout, T0)
    decisions.insert(0, waiting)
    assert decisions[-1].status.phase is Phase.SUCCEEDED
    assert _trace(decisions) == [
        (Stage.WAITING, 0, 0, 0.0, False, STABLE),
        (Stage.MIRROR, 0, 0, 100.0, False, STABLE),
        (Stage.HEADER_CANARY, 0, 0, 0.0, True, STABLE),
        (Stage.SPLIT, 0, 10, 0.0, False, STABLE),
        (Stage.SPLIT, 1, 25, 0.0, False, STABLE),
        (Stage.SPLIT, 2, 50, 0.0, False, STABLE),
        (Stage.SPLIT, 3, 75, 0.0, False, STABLE),
        (Stage.SPLIT, 4, 100, 0.0, False, STABLE),
        (Stage.RELEASE, 0, 100, 0.0, False, STABLE),
        (Stage.RELEASE, 1, 100, 0.0, False, CANARY),
        (None, 0, 0, 0.0, False, CANARY),
    ]
    final = decisions[-1].status
    assert final.stable_version == CANARY
    assert final.message == f"{CANARY} is live"
    # mirror 2m + header 5m + 5 split steps of 1m, then the 10s settle delay
    assert end - T0 == timedelta(minutes=12, seconds=10)
    assert "Succeeded" in reasons(decisions[-1])


def test_the_release_sequence_requeues_and_settles() -> None:
    status = status_at(Phase.PROGRESSING, stage=Stage.RELEASE, step=0, weight=100)
    rollout = make(status=status)
    rollout, moved = tick(rollout, T0)
    assert moved.status.stage is Stage.RELEASE
    assert moved.status.stable_subset_moved
    assert moved.requeue_after == rollout.spec.promotion.settle_delay
    assert moved.traffic == Traffic(100, 0.0, False, CANARY, CANARY)
    early = T0 + timedelta(seconds=4)
    rollout, waiting = tick(rollout, early)
    assert waiting.status.phase is Phase.PROGRESSING
    assert waiting.requeue_after == timedelta(seconds=6)
    _, done = tick(rollout, T0 + timedelta(seconds=10))
    assert done.status.phase is Phase.SUCCEEDED
    assert done.status.stable_version == CANARY
    assert done.traffic == Traffic(0, 0.0, False, CANARY, CANARY)


MIRROR = {"percent": 50, "duration": "30s"}
HEADER = {"match": [{"headers": {"x-beta": {"exact": "1"}}}], "duration": "30s"}
SPLIT = {"steps": [20, 60], "interval": "30s"}


@pytest.mark.parametrize(
    ("mirror", "header", "split", "expected"),
    [
        (MIRROR, None, None, [(Stage.MIRROR, 0, 50.0, False)]),
        (None, HEADER, None, [(Stage.HEADER_CANARY, 0, 0.0, True)]),
        (None, None, SPLIT, [(Stage.SPLIT, 20, 0.0, False), (Stage.SPLIT, 60, 0.0, False)]),
        (MIRROR, HEADER, None, [(Stage.MIRROR, 0, 50.0, False), (Stage.HEADER_CANARY, 0, 0, True)]),
        (MIRROR, None, SPLIT, [(Stage.MIRROR, 0, 50.0, False), (Stage.SPLIT, 20, 0, False)]),
        (None, HEADER, SPLIT, [(Stage.HEADER_CANARY, 0, 0.0, True), (Stage.SPLIT, 20, 0, False)]),
    ],
)
def test_any_stage_may_be_omitted(
    mirror: Any, header: Any, split: Any, expected: list[tuple[Any, ...]]
) -> None:
    rollout = make(spec_dict(mirror=mirror, headerCanary=header, split=split))
    _, _, decisions = run_passing(rollout, T0)
    visited = [
        (d.status.stage, d.traffic.canary_weight, d.traffic.mirror_percent, d.traffic.header_route)
        for d in decisions
        if d.traffic is not None
        and d.status.stage in (Stage.MIRROR, Stage.HEADER_CANARY, Stage.SPLIT)
    ]
    distinct = [v for i, v in enumerate(visited) if i == 0 or visited[i - 1] != v]
    assert distinct[: len(expected)] == expected
    assert {v[0] for v in distinct} == {e[0] for e in expected}
    assert decisions[-1].status.phase is Phase.SUCCEEDED


def test_step_weight_and_max_weight_expand_into_steps() -> None:
    rollout = make(
        spec_dict(mirror=None, headerCanary=None, split={"stepWeight": 30, "maxWeight": 80})
    )
    _, _, decisions = run_passing(rollout, T0)
    weights = [d.status.canary_weight for d in decisions if d.status.stage is Stage.SPLIT]
    assert sorted(set(weights)) == [30, 60, 80]
    assert [p.stage for p in positions(rollout.spec)] == [Stage.SPLIT] * 3 + [Stage.RELEASE]


def test_simulate_walk_agrees_with_the_release() -> None:
    ticks = list(walk(make(), T0, STABLE))
    assert ticks[-1].decision.status.phase is Phase.SUCCEEDED
    assert ticks[-1].time - T0 == timedelta(minutes=12, seconds=10)


# ---------------------------------------------------------------- verdicts


@pytest.mark.parametrize(
    ("verdicts", "outcome"),
    [
        ((), Verdict.NO_DATA),
        ((Verdict.PASS, Verdict.PASS), Verdict.PASS),
        ((Verdict.PASS, Verdict.NO_DATA), Verdict.NO_DATA),
        ((Verdict.NO_DATA, Verdict.ERROR), Verdict.ERROR),
        ((Verdict.ERROR, Verdict.FAIL), Verdict.FAIL),
        ((Verdict.PASS, Verdict.FAIL), Verdict.FAIL),
    ],
)
def test_one_check_combines_its_gates(verdicts: tuple[Verdict, ...], outcome: Verdict) -> None:
    results = tuple(GateResult(name=f"g{i}", verdict=v) for i, v in enumerate(verdicts))
    assert combine(results) is outcome


@pytest.mark.parametrize(
    ("outcome", "policy", "counted"),
    [
        (Verdict.PASS, NoDataPolicy.FAIL, Verdict.PASS),
        (Verdict.FAIL, NoDataPolicy.PASS, Verdict.FAIL),
        (Verdict.NO_DATA, NoDataPolicy.HOLD, Verdict.NO_DATA),
        (Verdict.NO_DATA, NoDataPolicy.FAIL, Verdict.FAIL),
        (Verdict.NO_DATA, NoDataPolicy.PASS, Verdict.PASS),
        (Verdict.ERROR, NoDataPolicy.HOLD, Verdict.NO_DATA),
        (Verdict.ERROR, NoDataPolicy.FAIL, Verdict.FAIL),
        (Verdict.ERROR, NoDataPolicy.PASS, Verdict.NO_DATA),
    ],
)
def test_how_a_check_counts(outcome: Verdict, policy: NoDataPolicy, counted: Verdict) -> None:
    assert count_as(outcome, policy) is counted


def _at_split(**kw: Any) -> Rollout:
    status = status_at(Phase.PROGRESSING, stage=Stage.SPLIT, step=1, weight=25)
    return make(status=status, **kw)


def _feed(rollout: Rollout, *verdicts: Verdict) -> tuple[Rollout, list[Decision]]:
    decisions = []
    for i, verdict in enumerate(verdicts, start=1):
        rollout, d = tick(rollout, T0 + INTERVAL * i, gate_results=gates(rollout, verdict))
        decisions.append(d)
    return rollout, decisions


@pytest.mark.parametrize(
    ("limit", "verdicts", "rolled_back_at"),
    [
        (2, [Verdict.FAIL, Verdict.FAIL], 2),
        (1, [Verdict.FAIL], 1),
        (3, [Verdict.FAIL, Verdict.FAIL, Verdict.FAIL], 3),
        (2, [Verdict.FAIL, Verdict.NO_DATA, Verdict.FAIL], 3),  # a hold does not reset
        (2, [Verdict.FAIL, Verdict.ERROR, Verdict.FAIL], 3),
        (2, [Verdict.FAIL, Verdict.PASS, Verdict.FAIL], None),  # a pass resets
        (3, [Verdict.FAIL, Verdict.FAIL, Verdict.PASS, Verdict.FAIL, Verdict.FAIL], None),
    ],
)
def test_consecutive_failures_roll_back(
    limit: int, verdicts: list[Verdict], rolled_back_at: int | None
) -> None:
    data = example()
    data["spec"]["stages"]["split"]["interval"] = "10m"  # passes never finish the step
    status = status_at(Phase.PROGRESSING, stage=Stage.SPLIT, step=1, weight=25)
    rollout = make(data, status=status, failure_limit=limit)
    _, decisions = _feed(rollout, *verdicts)
    phases = [d.status.phase for d in decisions]
    if rolled_back_at is None:
        assert Phase.ROLLED_BACK not in phases
    else:
        assert phases.index(Phase.ROLLED_BACK) == rolled_back_at - 1


def test_rollback_traffic_and_the_failing_gate_in_status() -> None:
    rollout = make(
        status=status_at(
            Phase.PROGRESSING, stage=Stage.HEADER_CANARY, header_route=True, mirror_percent=0
        )
    )
    results = (
        GateResult(name="success-rate", verdict=Verdict.FAIL, value=91.25, threshold=">= 99"),
        GateResult(name="p99-latency", verdict=Verdict.PASS, value=120.0, threshold="<= 500ms"),
    )
    rollout, first = tick(rollout, T0 + INTERVAL, gate_results=results)
    assert first.status.phase is Phase.PROGRESSING
    assert first.status.failed_checks == 1
    assert "AnalysisFailed" in reasons(first)
    _, second = tick(rollout, T0 + 2 * INTERVAL, gate_results=results)
    status = second.status
    assert status.phase is Phase.ROLLED_BACK
    assert second.traffic == Traffic(0, 0.0, False, STABLE, CANARY)
    assert "success-rate" in status.message
    assert "91.25" in status.message
    assert ">= 99" in status.message
    assert "p99-latency" not in status.message
    assert status.last_analysis is not None
    assert status.last_analysis.outcome is Verdict.FAIL
    assert status.last_analysis.gates[0].value == 91.25
    assert status.last_analysis.gates[0].threshold == ">= 99"
    assert "RolledBack" in reasons(second)
    # a failing outcome that repeats is not announced twice
    assert "AnalysisFailed" not in reasons(second)


@pytest.mark.parametrize(
    "stage", [Stage.MIRROR, Stage.HEADER_CANARY, Stage.SPLIT], ids=lambda s: s.value
)
def test_rollback_from_every_analysed_stage_clears_mirror_and_header(stage: Stage) -> None:
    status = status_at(
        Phase.PROGRESSING,
        stage=stage,
        weight=10 if stage is Stage.SPLIT else 0,
        mirror_percent=100.0 if stage is Stage.MIRROR else 0.0,
        header_route=stage is Stage.HEADER_CANARY,
    )
    rollout = make(status=status, failure_limit=1)
    _, decision = tick(rollout, T0 + INTERVAL, gate_results=gates(rollout, Verdict.FAIL))
    assert decision.status.phase is Phase.ROLLED_BACK
    assert decision.traffic == Traffic(0, 0.0, False, STABLE, CANARY)


@pytest.mark.parametrize(
    ("policy", "verdict", "advances", "fails"),
    [
        ("hold", Verdict.NO_DATA, False, False),
        ("fail", Verdict.NO_DATA, False, True),
        ("pass", Verdict.NO_DATA, True, False),
        ("hold", Verdict.ERROR, False, False),
        ("fail", Verdict.ERROR, False, True),
        ("pass", Verdict.ERROR, False, False),  # an error never passes
    ],
)
def test_no_data_policy(policy: str, verdict: Verdict, advances: bool, fails: bool) -> None:
    rollout = _at_split(no_data=policy, failure_limit=5)
    rollout, decisions = _feed(rollout, verdict, verdict)
    status = decisions[-1].status
    assert (status.step_index == 2) is advances
    assert status.failed_checks == (2 if fails else 0)
    assert status.last_analysis is not None
    assert status.last_analysis.outcome is verdict


def test_hold_is_announced_once_per_change() -> None:
    rollout = _at_split()
    _, decisions = _feed(rollout, Verdict.NO_DATA, Verdict.NO_DATA, Verdict.ERROR)
    assert [reasons(d) for d in decisions] == [["AnalysisHeld"], [], ["AnalysisHeld"]]


def test_at_least_one_passing_check_before_any_advance() -> None:
    data = spec_dict(mirror={"percent": 100, "duration": "1s"}, headerCanary=None, split=None)
    rollout, decision = tick(make(data), T0)
    assert decision.status.stage is Stage.MIRROR
    assert required_checks(rollout.spec, Stage.MIRROR) == 1
    # time alone never advances
    for minutes in (1, 5, 60):
        rollout, decision = tick(rollout, T0 + timedelta(minutes=minutes))
        assert decision.status.stage is Stage.MIRROR
    rollout, decision = tick(rollout, T0 + timedelta(hours=2), gate_results=gates(rollout))
    assert decision.status.stage is Stage.RELEASE


@pytest.mark.parametrize(
    ("duration", "needed"), [("30s", 1), ("31s", 2), ("2m", 4), ("70s", 3), ("1s", 1)]
)
def test_a_position_needs_ceil_duration_over_interval_passes(duration: str, needed: int) -> None:
    data = spec_dict(mirror={"percent": 100, "duration": duration}, headerCanary=None, split=None)
    rollout, _ = tick(make(data), T0)
    assert required_checks(rollout.spec, Stage.MIRROR) == needed
    for i in range(1, needed + 1):
        rollout, decision = tick(rollout, T0 + INTERVAL * i, gate_results=gates(rollout))
        expected = Stage.RELEASE if i == needed else Stage.MIRROR
        assert decision.status.stage is expected, i


def test_passes_count_per_step_and_reset_on_entering_the_next() -> None:
    rollout = _at_split()
    rollout, decisions = _feed(rollout, Verdict.PASS)
    assert decisions[-1].status.passed_checks == 1
    rollout, decisions = _feed(rollout, Verdict.PASS)
    status = decisions[-1].status
    assert (status.step_index, status.canary_weight, status.passed_checks) == (2, 50, 0)
    assert reasons(decisions[-1]) == ["StepAdvanced"]


# ---------------------------------------------------------------- checks worth storing


def checked(rollout: Rollout, now: Any, *verdicts: Verdict) -> Rollout:
    """`rollout` after one check with `verdicts`, at `now`."""
    return tick(rollout, now, gate_results=gates(rollout, *verdicts))[0]


def held_in_mirror() -> Rollout:
    rollout, _ = tick(make(), T0)
    return checked(rollout, T0 + INTERVAL, Verdict.NO_DATA)


def test_a_hold_that_repeats_the_stored_hold_need_not_be_stored() -> None:
    stored = held_in_mirror()
    again = checked(stored, T0 + 2 * INTERVAL, Verdict.NO_DATA)
    assert again.status.last_analysis != stored.status.last_analysis
    assert repeats_stored_check(stored.status, again.status)


def test_a_repeated_hold_is_stored_again_after_the_heartbeat() -> None:
    stored = held_in_mirror()
    later = T0 + INTERVAL + CHECK_HEARTBEAT
    again = checked(stored, later, Verdict.NO_DATA)
    assert not repeats_stored_check(stored.status, again.status)


@pytest.mark.parametrize(
    "verdicts",
    [
        (Verdict.PASS,),  # counts toward the step
        (Verdict.FAIL,),  # counts toward failureLimit
        (Verdict.NO_DATA, Verdict.ERROR),  # the same outcome, another gate's verdict
        (Verdict.ERROR,),
    ],
)
def test_a_check_that_says_something_new_is_stored(verdicts: tuple[Verdict, ...]) -> None:
    stored = held_in_mirror()
    again = checked(stored, T0 + 2 * INTERVAL, *verdicts)
    assert not repeats_stored_check(stored.status, again.status)


def test_a_pass_while_paused_repeats_the_stored_pass() -> None:
    rollout, _ = tick(make(), T0)
    rollout = checked(rollout, T0 + INTERVAL, Verdict.PASS)
    paused, _ = tick(with_request(rollout, Action.PAUSE, "pause-1"), T0 + INTERVAL)
    assert paused.status.phase is Phase.PAUSED
    again = checked(paused, T0 + 2 * INTERVAL, Verdict.PASS)
    assert again.status.passed_checks == paused.status.passed_checks
    assert repeats_stored_check(paused.status, again.status)


def test_no_check_at_all_repeats_nothing_new() -> None:
    stored = held_in_mirror()
    assert repeats_stored_check(stored.status, stored.status)


# ---------------------------------------------------------------- analysis_due


def test_analysis_due_is_spaced_by_the_interval_from_the_step_start() -> None:
    rollout, _ = tick(make(), T0)  # enters mirror at T0
    assert not analysis_due(rollout, T0)
    assert not analysis_due(rollout, T0 + timedelta(seconds=28, milliseconds=900))
    assert analysis_due(rollout, T0 + timedelta(seconds=29))  # 1s tolerance
    assert analysis_due(rollout, T0 + INTERVAL)
    rollout, _ = tick(rollout, T0 + INTERVAL, gate_results=gates(rollout))
    assert not analysis_due(rollout, T0 + INTERVAL + timedelta(seconds=10))
    assert analysis_due(rollout, T0 + 2 * INTERVAL)


def test_analysis_due_tolerance_is_a_tenth_of_a_short_interval() -> None:
    data = example()
    data["spec"]["analysis"]["interval"] = "5s"
    rollout, _ = tick(make(data), T0)
    assert not analysis_due(rollout, T0 + timedelta(seconds=4, milliseconds=400))
    assert analysis_due(rollout, T0 + timedelta(seconds=4, milliseconds=500))


@pytest.mark.parametrize(
    ("phase", "stage"),
    [
        (Phase.PENDING, Stage.WAITING),
        (Phase.PROGRESSING, Stage.RELEASE),
        (Phase.SUCCEEDED, None),
        (Phase.ROLLED_BACK, None),
        (Phase.ABORTED, None),
        (Phase.INVALID, Stage.SPLIT),
        (None, None),
    ],
)
def test_analysis_is_never_due_outside_an_analysed_stage(
    phase: Phase | None, stage: Stage | None
) -> None:
    rollout = make(status=status_at(phase, stage=stage))
    assert not analysis_due(rollout, T0 + timedelta(days=1))


def test_analysis_continues_while_paused() -> None:
    rollout = make(status=status_at(Phase.PAUSED, stage=Stage.SPLIT, weight=10))
    assert analysis_due(rollout, T0 + INTERVAL)


def test_analysis_is_due_when_the_status_has_no_marks() -> None:
    status = status_at(Phase.PROGRESSING, stage=Stage.SPLIT, step_started_at=None)
    assert analysis_due(make(status=status), T0)


def test_steps_edited_under_a_running_release_never_move_it_backwards() -> None:
    """Cutting split steps mid-run carries on from the first position that exposes the canary
    more than it is now, instead of falling back to the first stage."""
    spec = make(spec_dict(mirror=None, headerCanary=None, split={"steps": [10, 50, 100]})).spec
    assert next_position(spec, Stage.SPLIT, 3, weight=75) == Position(Stage.SPLIT, 2)
    assert next_position(spec, Stage.SPLIT, 4, weight=100) == Position(Stage.RELEASE, 0)
    assert next_position(spec, Stage.MIRROR, 0, weight=0) == Position(Stage.SPLIT, 0)
