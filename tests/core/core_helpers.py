"""Shared builders for the core tests: the ui example as a dict, rollouts in any phase, ticks.

Named `core_helpers` (not `helpers`) so that it cannot collide with a helper module of the
same name in another test tier: pytest puts each rootless test directory on `sys.path`.
Every time is a fixed datetime derived from `T0`; nothing here reads a clock.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from canary.core.machine import Decision, Observed, advance, subset_moved
from canary.core.model import REQUEST_ANNOTATION, Rollout
from canary.core.path import analysis_due
from canary.core.requests import Action, encode_request
from canary.core.spec import Stage
from canary.core.status import GateResult, Phase, RolloutStatus, Verdict
from canary_sandbox.stack import example_release

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
STABLE = "v1"
CANARY = "v2"
_EXAMPLE_DICT: dict[str, Any] = example_release(CANARY)


def example() -> dict[str, Any]:
    """A fresh deep copy of examples/ui/rollout.yaml releasing v2, as plain data."""
    return copy.deepcopy(_EXAMPLE_DICT)


def spec_dict(**stage_overrides: Any) -> dict[str, Any]:
    """The example spec with `stages` replaced by the given ones (None drops a stage)."""
    data = example()
    stages = data["spec"]["stages"]
    for name, value in stage_overrides.items():
        if value is None:
            stages.pop(name, None)
        else:
            stages[name] = value
    return data


def make(
    data: dict[str, Any] | None = None,
    *,
    status: RolloutStatus | dict[str, Any] | None = None,
    version: str = CANARY,
    manual_before: list[str] | None = None,
    failure_limit: int | None = None,
    no_data: str | None = None,
    generation: int | None = 1,
) -> Rollout:
    """A validated Rollout from the example (or `data`), with a few common overrides."""
    data = copy.deepcopy(data) if data is not None else example()
    data["spec"]["canary"]["version"] = version
    if manual_before is not None:
        data["spec"].setdefault("promotion", {})["manualBefore"] = manual_before
    if failure_limit is not None:
        data["spec"]["analysis"]["failureLimit"] = failure_limit
    if no_data is not None:
        data["spec"]["analysis"]["noData"] = no_data
    if generation is not None:
        data["metadata"]["generation"] = generation
    rollout = Rollout.model_validate(data)
    if status is not None:
        rollout = with_status(rollout, status)
    return rollout


def with_status(rollout: Rollout, status: RolloutStatus | dict[str, Any]) -> Rollout:
    if isinstance(status, dict):
        status = RolloutStatus.model_validate(status)
    return rollout.model_copy(update={"status": status})


def with_spec(rollout: Rollout, **changes: Any) -> Rollout:
    """The same rollout (status kept) with spec fields changed through validation."""
    data = rollout.wire()
    status = rollout.status
    data.pop("status", None)
    for dotted, value in changes.items():
        target = data["spec"]
        *parents, leaf = dotted.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    return with_status(Rollout.model_validate(data), status)


def with_request(rollout: Rollout, action: Action | str, request_id: str) -> Rollout:
    raw = encode_request(Action(action), request_id)
    return with_annotation(rollout, raw)


def with_annotation(rollout: Rollout, raw: str) -> Rollout:
    annotations = {**rollout.metadata.annotations, REQUEST_ANNOTATION: raw}
    meta = rollout.metadata.model_copy(update={"annotations": annotations})
    return rollout.model_copy(update={"metadata": meta})


def gates(rollout: Rollout, *verdicts: Verdict) -> tuple[GateResult, ...]:
    """One result per gate of the spec; the verdicts cycle over the gates (default: pass)."""
    cycle = verdicts or (Verdict.PASS,)
    results = []
    for i, gate in enumerate(rollout.spec.analysis.gates):
        verdict = cycle[i % len(cycle)]
        value = None if verdict in (Verdict.NO_DATA, Verdict.ERROR) else 97.5 + i
        results.append(
            GateResult(
                name=gate.name,
                verdict=verdict,
                value=value,
                threshold=f">= 99{i}",
                message="bad reading" if verdict is Verdict.ERROR else None,
            )
        )
    return tuple(results)


def tick(
    rollout: Rollout,
    now: datetime,
    *,
    gate_results: tuple[GateResult, ...] | None = None,
    ready: bool = True,
    stable_version: str | None = STABLE,
) -> tuple[Rollout, Decision]:
    """One reconcile: `advance`, and the rollout carrying the decided status as the controller
    leaves it after its writes (`subset_moved`)."""
    observed = Observed(canary_ready=ready, stable_version=stable_version, gates=gate_results)
    decision = advance(rollout, observed, now)
    return written(rollout, decision, now), decision


def written(rollout: Rollout, decision: Decision, now: datetime) -> Rollout:
    """The rollout once the controller has written `decision` (status, then traffic)."""
    status = subset_moved(decision.status, now) or decision.status
    return rollout.model_copy(update={"status": status})


def status_at(
    phase: Phase | None,
    *,
    stage: Stage | None = None,
    step: int = 0,
    weight: int = 0,
    stable: str = STABLE,
    canary: str = CANARY,
    since: datetime = T0,
    **extra: Any,
) -> RolloutStatus:
    """A status as the machine would leave it, at an explicit position."""
    fields: dict[str, Any] = {
        "phase": phase,
        "stage": stage,
        "step_index": step,
        "canary_weight": weight,
        "stable_version": stable,
        "canary_version": canary,
        "release_started_at": since,
        "stage_started_at": since,
        "step_started_at": since,
    }
    fields.update(extra)
    return RolloutStatus(**fields)


def started(rollout: Rollout, now: datetime = T0) -> tuple[Rollout, Decision]:
    """From an empty status: initialise on v1 and start the release of the spec's version."""
    return tick(rollout, now)


def run_passing(
    rollout: Rollout, now: datetime, *, max_ticks: int = 500
) -> tuple[Rollout, datetime, list[Decision]]:
    """Tick with passing gates whenever analysis is due until the release leaves RUNNING."""
    decisions: list[Decision] = []
    for _ in range(max_ticks):
        due = analysis_due(rollout, now)
        rollout, decision = tick(rollout, now, gate_results=gates(rollout) if due else None)
        decisions.append(decision)
        if decision.status.phase not in (Phase.PENDING, Phase.PROGRESSING):
            return rollout, now, decisions
        wait = decision.requeue_after
        now += wait if wait is not None else rollout.spec.analysis.interval
    raise AssertionError("the release did not end")


def position(status: RolloutStatus) -> tuple[Phase | None, Stage | None, int, int]:
    return status.phase, status.stage, status.step_index, status.canary_weight


def after(interval: timedelta, times: int = 1, start: datetime = T0) -> datetime:
    return start + interval * times
