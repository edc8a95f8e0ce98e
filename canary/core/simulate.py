"""Walk a release on paper: feed `advance` passing checks until the release ends.

`canary plan` prints what the controller would write at each position; tests use the same
walk. Pure: the clock is the `start` argument plus whole analysis intervals.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from canary.core.machine import Decision, Observed, advance, analysis_due
from canary.core.model import TERMINAL_PHASES, GateResult, Rollout, Verdict


@dataclass(frozen=True)
class Tick:
    time: datetime
    decision: Decision


def passing(rollout: Rollout) -> tuple[GateResult, ...]:
    return tuple(GateResult(name=g.name, verdict=Verdict.PASS) for g in rollout.spec.analysis.gates)


def walk(
    rollout: Rollout, start: datetime, stable_version: str | None, max_ticks: int = 10_000
) -> Iterator[Tick]:
    """Every reconcile of a healthy release of `spec.canary.version`, from `start` to its end."""
    now = start
    for _ in range(max_ticks):
        gates = passing(rollout) if analysis_due(rollout, now) else None
        observed = Observed(canary_ready=True, stable_version=stable_version, gates=gates)
        decision = advance(rollout, observed, now)
        yield Tick(now, decision)
        rollout = rollout.model_copy(update={"status": decision.status})
        if decision.status.phase in TERMINAL_PHASES and decision.requeue_after is None:
            return
        now += decision.requeue_after if decision.requeue_after is not None else _interval(rollout)


def _interval(rollout: Rollout) -> timedelta:
    return rollout.spec.analysis.interval
