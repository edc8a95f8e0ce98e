"""Hypothesis properties of the machine over random specs, verdicts and requests.

Aspects: random stage combinations, steps or stepWeight/maxWeight, intervals, durations,
failureLimit, noData policy and manualBefore, driven by random verdict sequences with random
requests interleaved. Properties: traffic weights lie in 0..100 and stable + canary = 100; a
running release's canary weight never decreases; no position advances without enough passing
checks at that position (a promote moves exactly one position); failureLimit consecutive
failures always end in rollback traffic and RolledBack; `advance` is deterministic; a walk with
passing checks always ends Succeeded within a bounded number of ticks; the status round-trips
through `wire()` and `Rollout.model_validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from core_helpers import STABLE, T0, example, gates, make, tick, with_request, written
from hypothesis import given, settings
from hypothesis import strategies as st

from canary.core.machine import Decision, Observed, advance
from canary.core.model import Rollout
from canary.core.path import Position, analysis_due, next_position, positions, required_checks
from canary.core.requests import Action
from canary.core.spec import Stage
from canary.core.status import RUNNING_PHASES, GateResult, Phase, RolloutStatus, Verdict
from canary.core.traffic import Traffic

SETTINGS = settings(max_examples=60)
ANALYSED = (Stage.MIRROR, Stage.HEADER_CANARY, Stage.SPLIT)
VERDICTS = st.sampled_from(list(Verdict))


@st.composite
def spec_data(draw: st.DrawFn) -> dict[str, Any]:
    data = example()
    seconds = st.integers(min_value=1, max_value=300).map(lambda s: f"{s}s")
    chosen = draw(st.sets(st.sampled_from(["mirror", "headerCanary", "split"]), min_size=1))
    stages: dict[str, Any] = {}
    if "mirror" in chosen:
        stages["mirror"] = {"percent": draw(st.integers(1, 100)), "duration": draw(seconds)}
    if "headerCanary" in chosen:
        stages["headerCanary"] = {
            "match": [{"headers": {"x-beta": {"exact": "1"}}}],
            "duration": draw(seconds),
        }
    if "split" in chosen:
        split: dict[str, Any] = {"interval": draw(seconds)}
        if draw(st.booleans()):
            steps = draw(st.sets(st.integers(1, 100), min_size=1, max_size=6))
            split["steps"] = sorted(steps)
        else:
            max_weight = draw(st.integers(1, 100))
            split["maxWeight"] = max_weight
            split["stepWeight"] = draw(st.integers(max(1, max_weight // 6), max_weight))
        stages["split"] = split
    spec = data["spec"]
    spec["stages"] = stages
    spec["analysis"]["interval"] = f"{draw(st.integers(1, 120))}s"
    spec["analysis"]["failureLimit"] = draw(st.integers(1, 4))
    spec["analysis"]["noData"] = draw(st.sampled_from(["hold", "fail", "pass"]))
    manual = draw(st.sets(st.sampled_from(["mirror", "headerCanary", "split", "release"])))
    spec["promotion"] = {
        "manualBefore": sorted(manual),
        "settleDelay": f"{draw(st.integers(0, 30))}s",
    }
    return data


def _key(status: RolloutStatus) -> tuple[Any, ...]:
    return (status.release_started_at, status.stage, status.step_index)


def check_traffic(decision: Decision) -> None:
    traffic = decision.traffic
    if traffic is None:
        assert decision.status.phase in (None, Phase.INVALID)
        return
    assert 0 <= traffic.canary_weight <= 100
    assert 0 <= traffic.stable_weight <= 100
    assert traffic.canary_weight + traffic.stable_weight == 100
    assert 0 <= traffic.mirror_percent <= 100
    # one way to reach the canary at a time
    ways = [traffic.canary_weight > 0, traffic.mirror_percent > 0, traffic.header_route]
    assert sum(ways) <= 1
    if decision.status.phase not in RUNNING_PHASES:
        assert (traffic.canary_weight, traffic.mirror_percent, traffic.header_route) == (
            0,
            0.0,
            False,
        )


def check_round_trip(rollout: Rollout) -> None:
    again = Rollout.model_validate(rollout.wire())
    assert again == rollout
    assert again.wire() == rollout.wire()


@dataclass
class Run:
    """What a random run saw, for the properties that look across ticks."""

    passes: dict[tuple[Any, ...], int] = field(default_factory=dict)
    streak: int = 0
    last_running_weight: int | None = None
    ticks: int = 0


def observe(
    run: Run,
    *,
    before: Rollout,
    decision: Decision,
    now: Any,
    checked: tuple[GateResult, ...] | None,
    action: Action | None,
) -> None:
    """Every cross-tick property, for one reconcile from `before` to `decision`."""
    spec, old, new = before.spec, before.status, decision.status
    handled = new.handled_request
    fresh = handled is not None and handled != old.handled_request
    acted = fresh and handled is not None and not handled.result.startswith("rejected")
    promoted = acted and action in (Action.PROMOTE, Action.PROMOTE_FULL)
    analysed = new.last_analysis is not None and new.last_analysis.time == now and checked
    counted = new.last_analysis.counted_as if analysed and new.last_analysis else None

    if counted is Verdict.PASS:
        run.passes[_key(old)] = run.passes.get(_key(old), 0) + 1

    moved = (old.stage, old.step_index) != (new.stage, new.step_index)
    from_analysed = old.phase in (Phase.PROGRESSING, Phase.PAUSED) and old.stage in ANALYSED
    if moved and from_analysed and new.phase in RUNNING_PHASES:
        if promoted:
            expected = (
                Position(Stage.RELEASE, 0)
                if action is Action.PROMOTE_FULL
                else next_position(spec, old.stage, old.step_index)
            )
            assert (new.stage, new.step_index) == (expected.stage, expected.step)
        else:
            assert counted is Verdict.PASS, "advanced without a passing check"
            assert old.stage is not None
            needed = required_checks(spec, old.stage)
            assert run.passes.get(_key(old), 0) >= needed, "advanced on too few passes"

    # consecutive failures (conservative: reset on anything that could reset the machine's)
    if fresh or moved or old.phase not in (Phase.PROGRESSING, Phase.PAUSED):
        run.streak = 0
    if counted is Verdict.FAIL and from_analysed:
        run.streak += 1
        if run.streak >= spec.analysis.failure_limit:
            assert new.phase is Phase.ROLLED_BACK
            assert decision.traffic == Traffic(
                0, 0.0, False, new.stable_version or "", new.canary_version or ""
            )
    elif counted is Verdict.PASS:
        run.streak = 0

    # a running release only moves its canary weight up
    if (
        new.phase in RUNNING_PHASES
        and old.phase in RUNNING_PHASES
        and not (fresh and action is Action.RETRY)
    ):
        if run.last_running_weight is not None:
            assert new.canary_weight >= run.last_running_weight
        run.last_running_weight = new.canary_weight
    else:
        run.last_running_weight = new.canary_weight if new.phase in RUNNING_PHASES else None


ACTIONS = st.sampled_from(list(Action))


@SETTINGS
@given(data=spec_data(), choices=st.data())
def test_random_runs_keep_every_invariant(data: dict[str, Any], choices: st.DataObject) -> None:
    rollout = make(data)
    run = Run()
    now = T0
    verdict_mix = choices.draw(st.lists(VERDICTS, min_size=1, max_size=4), label="verdict mix")
    request_rate = choices.draw(st.sampled_from([0.0, 0.1, 0.3]), label="request rate")
    for i in range(120):
        action = None
        if choices.draw(st.floats(0, 1), label="r") < request_rate:
            action = choices.draw(ACTIONS, label="action")
            # sometimes the same id again: it must be applied once
            rid = "same" if choices.draw(st.booleans(), label="dup") else f"id-{i}"
            rollout = with_request(rollout, action, rid)
        checked = None
        if analysis_due(rollout, now):
            verdicts = choices.draw(
                st.lists(st.sampled_from(verdict_mix), min_size=2, max_size=2), label="v"
            )
            checked = gates(rollout, *verdicts)
        ready = choices.draw(st.booleans(), label="ready") or i % 3 == 0
        observed = Observed(canary_ready=ready, stable_version=STABLE, gates=checked)
        decision = advance(rollout, observed, now)
        assert advance(rollout, observed, now) == decision  # deterministic
        check_traffic(decision)
        observe(run, before=rollout, decision=decision, now=now, checked=checked, action=action)
        rollout = written(rollout, decision, now)
        check_round_trip(rollout)
        if decision.status.phase in (Phase.SUCCEEDED,) and decision.requeue_after is None:
            break
        wait = decision.requeue_after
        now += wait if wait is not None else rollout.spec.analysis.interval


def _walk(rollout: Rollout, limit: int) -> tuple[list[Decision], int]:
    """Passing checks whenever due; promote whenever a manual gate holds the release."""
    now, decisions = T0, []
    for count in range(1, limit + 1):
        if rollout.status.paused_reason is not None:
            rollout = with_request(rollout, Action.PROMOTE, f"p{count}")
        due = analysis_due(rollout, now)
        rollout, decision = tick(rollout, now, gate_results=gates(rollout) if due else None)
        decisions.append(decision)
        check_traffic(decision)
        if decision.status.phase not in RUNNING_PHASES:
            return decisions, count
        wait = decision.requeue_after
        now += wait if wait is not None else rollout.spec.analysis.interval
    return decisions, limit


@SETTINGS
@given(data=spec_data())
def test_a_passing_walk_always_succeeds_in_bounded_ticks(data: dict[str, Any]) -> None:
    rollout = make(data)
    path = positions(rollout.spec)
    analysed = [p for p in path if p.stage in ANALYSED]
    bound = (
        2
        + sum(required_checks(rollout.spec, p.stage) for p in analysed)
        + 2 * len(rollout.spec.promotion.manual_before)
        + 4
    )
    decisions, used = _walk(rollout, bound + 10)
    final = decisions[-1].status
    assert final.phase is Phase.SUCCEEDED, final.message
    assert final.stable_version == rollout.spec.canary.version
    assert used <= bound
    weights = [d.status.canary_weight for d in decisions if d.status.phase in RUNNING_PHASES]
    assert weights == sorted(weights)
    stages = [d.status.stage for d in decisions]
    for position in path:
        assert position.stage in stages


@SETTINGS
@given(data=spec_data(), passes=st.integers(0, 30), choices=st.data())
def test_failure_limit_consecutive_failures_always_roll_back(
    data: dict[str, Any], passes: int, choices: st.DataObject
) -> None:
    rollout = make(data)
    now = T0
    rollout, _ = tick(rollout, now)
    for i in range(passes):
        if rollout.status.paused_reason is not None:
            rollout = with_request(rollout, Action.PROMOTE, f"p{i}")
        now += rollout.spec.analysis.interval
        due = analysis_due(rollout, now)
        rollout, _ = tick(rollout, now, gate_results=gates(rollout) if due else None)
    status = rollout.status
    if status.phase not in (Phase.PROGRESSING, Phase.PAUSED) or status.stage not in ANALYSED:
        return
    limit = rollout.spec.analysis.failure_limit
    decision = None
    for _ in range(limit):
        now += rollout.spec.analysis.interval
        assert analysis_due(rollout, now)
        failing = choices.draw(st.lists(VERDICTS, min_size=2, max_size=2), label="gates")
        if Verdict.FAIL not in failing:
            failing[0] = Verdict.FAIL
        assert decision is None or decision.status.phase is not Phase.ROLLED_BACK
        rollout, decision = tick(rollout, now, gate_results=gates(rollout, *failing))
    assert decision is not None
    assert decision.status.phase is Phase.ROLLED_BACK
    assert decision.traffic == Traffic(0, 0.0, False, STABLE, rollout.spec.canary.version)
    assert "fail" in decision.status.message


@SETTINGS
@given(data=spec_data(), ticks=st.integers(0, 25), action=st.none() | ACTIONS)
def test_advance_is_deterministic_and_its_status_reads_back(
    data: dict[str, Any], ticks: int, action: Action | None
) -> None:
    rollout = make(data)
    now = T0
    for i in range(ticks):
        due = analysis_due(rollout, now)
        rollout, _ = tick(rollout, now, gate_results=gates(rollout) if due else None)
        now += timedelta(seconds=7 * (i + 1))
    if action is not None:
        rollout = with_request(rollout, action, "final")
    observed = Observed(stable_version=STABLE, gates=gates(rollout, Verdict.NO_DATA))
    first = advance(rollout, observed, now)
    second = advance(Rollout.model_validate(rollout.wire()), observed, now)
    assert first == second
    written = rollout.model_copy(update={"status": first.status})
    check_round_trip(written)
