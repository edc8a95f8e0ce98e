"""Walk a release on paper: feed `advance` the checks of a gate source until the release ends.

`canary plan` walks with passing checks (what the controller would write at each position),
`canary backtest` with checks measured on recorded metrics; tests use the same walk. Pure: the
clock is the `start` argument plus whole requeue delays or analysis intervals, and the walk
does what the controller does after each decision's write (`subset_moved`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from canary.core.machine import Decision, Observed, advance, subset_moved
from canary.core.model import Rollout
from canary.core.path import analysis_due
from canary.core.status import TERMINAL_PHASES, GateResult, Verdict

GateSource = Callable[[Rollout, datetime], tuple[GateResult, ...]]


@dataclass(frozen=True)
class Tick:
    time: datetime
    gates: tuple[GateResult, ...] | None
    decision: Decision


def passing(rollout: Rollout, now: datetime | None = None) -> tuple[GateResult, ...]:
    return tuple(GateResult(name=g.name, verdict=Verdict.PASS) for g in rollout.spec.analysis.gates)


def walk(
    rollout: Rollout,
    start: datetime,
    stable_version: str | None,
    gates: GateSource = passing,
    until: datetime | None = None,
    max_ticks: int = 10_000,
) -> Iterator[Tick]:
    """Every reconcile of the release of `spec.canary.version` from `start` to its end (or to
    `until`), with the checks `gates` gives whenever an analysis is due."""
    now = start
    for _ in range(max_ticks):
        if until is not None and now > until:
            return
        measured = gates(rollout, now) if analysis_due(rollout, now) else None
        observed = Observed(canary_ready=True, stable_version=stable_version, gates=measured)
        decision = advance(rollout, observed, now)
        yield Tick(now, measured, decision)
        status = subset_moved(decision.status, now) or decision.status
        rollout = rollout.model_copy(update={"status": status})
        if status.phase in TERMINAL_PHASES and decision.requeue_after is None:
            return
        now += decision.requeue_after if decision.requeue_after is not None else _interval(rollout)


def _interval(rollout: Rollout) -> timedelta:
    return rollout.spec.analysis.interval
