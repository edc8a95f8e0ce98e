"""Issue 14's two safety properties, over random specs, observations and requests.

Aspects: no sequence of observations without a passing check makes a version live, whatever
the readiness, the failing, missing or erroneous readings and the requests of people (pause,
resume, abort, retry); only a person's promotion is the exception, and the property shows it
is the only one; the canary's traffic goes up (a release's first stage, a step, a promotion)
only in a reconcile that observed the canary ready; and `write_plan` never puts the mesh, at
any moment between two of its writes, in a state that sends requests to a subset selecting a
version the positions before and after did not send them to.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core_helpers import STABLE, T0, gates, make, with_request, written
from hypothesis import given, settings
from hypothesis import strategies as st
from test_properties import spec_data

from canary.core.machine import TRANSITIONS, Observed, advance, invalid
from canary.core.model import Rollout
from canary.core.path import analysis_due
from canary.core.requests import Action
from canary.core.spec import Stage
from canary.core.status import RUNNING_PHASES, Phase, Verdict
from canary.core.traffic import Traffic, exposure, write_plan

SETTINGS = settings(max_examples=80)
NOT_PASSING = st.sampled_from([Verdict.FAIL, Verdict.NO_DATA, Verdict.ERROR])
NO_PROMOTION = st.sampled_from([Action.PAUSE, Action.RESUME, Action.ABORT, Action.RETRY])
RANK = {Stage.WAITING: 0, Stage.MIRROR: 1, Stage.HEADER_CANARY: 2, Stage.SPLIT: 3, Stage.RELEASE: 4}


def exposure_rank(rollout: Rollout) -> tuple[int, int]:
    """How far a running release exposes its canary: the stage, then the weight."""
    status = rollout.status
    if status.phase not in RUNNING_PHASES or status.stage is None:
        return (0, 0)
    return (RANK[status.stage], status.canary_weight)


def run(
    rollout: Rollout,
    choices: st.DataObject,
    verdicts: st.SearchStrategy[Verdict],
    actions: st.SearchStrategy[Action],
    ticks: int = 80,
) -> list[tuple[Rollout, Observed, Rollout]]:
    """Random reconciles: (rollout before, what was observed, rollout after) each."""
    steps = []
    now = T0
    for i in range(ticks):
        if choices.draw(st.integers(0, 9), label="request?") == 0:
            rollout = with_request(rollout, choices.draw(actions, label="action"), f"r{i}")
        readings = None
        if analysis_due(rollout, now):
            pair = choices.draw(st.lists(verdicts, min_size=2, max_size=2), label="verdicts")
            readings = gates(rollout, *pair)
        ready = choices.draw(st.booleans(), label="ready")
        observed = Observed(canary_ready=ready, stable_version=STABLE, gates=readings)
        decision = advance(rollout, observed, now)
        after = written(rollout, decision, now)
        steps.append((rollout, observed, after))
        rollout = after
        wait = decision.requeue_after
        now += wait if wait else timedelta(seconds=choices.draw(st.integers(1, 120), label="dt"))
    return steps


@SETTINGS
@given(data=spec_data(), choices=st.data(), no_data=st.sampled_from(["hold", "fail", "pass"]))
def test_without_a_passing_check_no_version_becomes_live(
    data: dict[str, Any], choices: st.DataObject, no_data: str
) -> None:
    """Even with `noData: pass` (no data counts as a pass, but an error never does), unless
    every reading passes or is no data, the new version never becomes live."""
    verdicts = NOT_PASSING if no_data != "pass" else st.sampled_from([Verdict.FAIL, Verdict.ERROR])
    rollout = make(data, no_data=no_data)
    for _, _, after in run(rollout, choices, verdicts, NO_PROMOTION):
        assert after.status.stable_version in (None, STABLE), after.status.message
        assert not (after.status.stage is Stage.RELEASE and after.status.stable_subset_moved)


@SETTINGS
@given(data=spec_data(), choices=st.data())
def test_only_a_person_makes_an_unchecked_version_live(
    data: dict[str, Any], choices: st.DataObject
) -> None:
    """The one exception: promotions. When a version went live with no passing check, a
    promotion was handled on the way."""
    actions = st.sampled_from(list(Action))
    promoted = False
    for before, _, after in run(make(data), choices, NOT_PASSING, actions):
        handled = after.status.handled_request
        if handled is not None and handled != before.status.handled_request:
            promoted |= handled.action in ("promote", "promote-full") and not (
                handled.result.startswith("rejected")
            )
        if after.status.stable_version not in (None, STABLE):
            assert promoted


@SETTINGS
@given(data=spec_data(), choices=st.data())
def test_the_canary_gets_more_traffic_only_when_it_was_just_seen_ready(
    data: dict[str, Any], choices: st.DataObject
) -> None:
    verdicts = st.sampled_from(list(Verdict))
    actions = st.sampled_from(list(Action))
    for before, observed, after in run(make(data), choices, verdicts, actions):
        if exposure_rank(after) > exposure_rank(before) and after.status.stage is not None:
            if after.status.stage is Stage.RELEASE and before.status.stage is Stage.RELEASE:
                continue  # inside the release sequence the canary already has everything
            assert observed.canary_ready, (before.status, after.status)


VERSIONS = st.sampled_from(["v1", "v2", "v3"])
TRAFFIC = st.builds(
    Traffic,
    canary_weight=st.sampled_from([0, 1, 25, 99, 100]),
    mirror_percent=st.sampled_from([0.0, 50.0, 100.0]),
    header_route=st.booleans(),
    stable_version=VERSIONS,
    canary_version=VERSIONS,
)


@settings(max_examples=500, deadline=None)
@given(before=TRAFFIC, after=TRAFFIC)
def test_no_write_order_sends_requests_to_a_version_neither_position_sends_them_to(
    before: Traffic, after: Traffic
) -> None:
    plan = write_plan(before, after)
    allowed = exposure(before) | exposure(after)
    routes, versions = before, before
    for write in plan:
        if write.target == "virtualService":
            routes = write.traffic
        else:
            versions = write.traffic
        between = Traffic(
            routes.canary_weight,
            routes.mirror_percent,
            routes.header_route,
            versions.stable_version,
            versions.canary_version,
        )
        assert exposure(between) <= allowed, (plan, between)
    assert (routes.canary_weight, routes.mirror_percent, routes.header_route) == (
        after.canary_weight,
        after.mirror_percent,
        after.header_route,
    )
    assert (versions.stable_version, versions.canary_version) == (
        after.stable_version,
        after.canary_version,
    )
    assert {write.target for write in plan} == {"destinationRule", "virtualService"}


@SETTINGS
@given(data=spec_data(), choices=st.data())
def test_every_phase_change_is_an_entry_of_the_table(
    data: dict[str, Any], choices: st.DataObject
) -> None:
    """Issue 20: a reconcile changes the phase only through TRANSITIONS, each fired transition
    starting where the previous one ended; the one exception (documented in machine.py) is an
    Invalid Rollout's suspended phase, which leaving Invalid or a request answered then uses."""
    rollout, now = make(data), T0
    actions = st.sampled_from(list(Action))
    for i in range(60):
        if choices.draw(st.integers(0, 6), label="request?") == 0:
            rollout = with_request(rollout, choices.draw(actions, label="action"), f"r{i}")
        if choices.draw(st.integers(0, 12), label="invalid?") == 0:
            decision = invalid(rollout, "a problem", now)
        else:
            due = analysis_due(rollout, now)
            verdicts = st.sampled_from(list(Verdict))
            readings = gates(rollout, choices.draw(verdicts, label="v")) if due else None
            ready = choices.draw(st.booleans(), label="ready")
            observed = Observed(canary_ready=ready, stable_version=STABLE, gates=readings)
            decision = advance(rollout, observed, now)
        stored = rollout.status.phase
        # The exception: an Invalid Rollout's suspended phase takes its requests.
        phase = rollout.status.suspended_phase if stored is Phase.INVALID else stored
        for transition in decision.transitions:
            assert TRANSITIONS[(transition.source, transition.trigger)] is transition.target
            if transition.source is Phase.INVALID and stored is Phase.INVALID:
                continue  # it stays Invalid, its suspended phase as the chain left it
            assert transition.source == phase, (phase, transition)
            phase = transition.target
        if decision.status.phase is Phase.INVALID:
            assert phase is Phase.INVALID or decision.status.suspended_phase == phase
        else:
            assert decision.status.phase == phase, (stored, decision.transitions)
        rollout = written(rollout, decision, now)
        now += decision.requeue_after or timedelta(seconds=choices.draw(st.integers(1, 60)))
