"""The path of a release and what is due on it: read-only questions about a Rollout that the
controller asks before `advance` (is a check due, which webhooks to call) and that the state
machine asks while it decides (the next position, the checks a position needs)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from canary.core.model import Rollout
from canary.core.spec import RELEASE_CANARY_FULL, RolloutSpec, Stage, WebhookCheck, WebhookType
from canary.core.status import AnalysisRecord, Phase, RolloutStatus
from canary.core.webhooks import before_stage, gate_webhooks

ANALYSED_STAGES = (Stage.MIRROR, Stage.HEADER_CANARY, Stage.SPLIT)
# A check that repeats the stored one is stored again only after this long (as the kubelet
# reports an unchanged node status every 5 minutes): a bounded heartbeat, not a write per tick.
CHECK_HEARTBEAT = timedelta(minutes=5)


@dataclass(frozen=True)
class Position:
    stage: Stage
    step: int


def positions(spec: RolloutSpec) -> list[Position]:
    """Every analysed position of a release in order, then the release sequence."""
    path: list[Position] = []
    if spec.stages.mirror is not None:
        path.append(Position(Stage.MIRROR, 0))
    if spec.stages.header_canary is not None:
        path.append(Position(Stage.HEADER_CANARY, 0))
    if spec.stages.split is not None:
        path += [Position(Stage.SPLIT, i) for i in range(len(spec.stages.split.weights()))]
    path.append(Position(Stage.RELEASE, RELEASE_CANARY_FULL))
    return path


_EXPOSURE_RANK = {Stage.MIRROR: 0, Stage.HEADER_CANARY: 1, Stage.SPLIT: 2, Stage.RELEASE: 3}


def next_position(spec: RolloutSpec, stage: Stage | None, step: int, weight: int = 0) -> Position:
    """The position after (stage, step). If the spec changed under a running release and that
    position is gone, the first position that exposes the canary more than `weight` did."""
    path = positions(spec)
    if stage in (None, Stage.WAITING):
        return path[0]
    current = Position(stage, step)
    if current in path:
        return path[min(path.index(current) + 1, len(path) - 1)]
    exposure = (_EXPOSURE_RANK[stage], weight)
    later = [p for p in path if (_EXPOSURE_RANK[p.stage], weight_at(spec, p)) > exposure]
    return later[0] if later else path[-1]


def required_checks(spec: RolloutSpec, stage: Stage) -> int:
    """Passing checks a position needs: its duration in analysis intervals, at least one."""
    interval = spec.analysis.interval
    durations = {
        Stage.MIRROR: spec.stages.mirror.duration if spec.stages.mirror else interval,
        Stage.HEADER_CANARY: (
            spec.stages.header_canary.duration if spec.stages.header_canary else interval
        ),
        Stage.SPLIT: spec.stages.split.interval if spec.stages.split else interval,
    }
    return max(1, math.ceil(durations.get(stage, interval) / interval - 1e-9))


def analysis_due(rollout: Rollout, now: datetime) -> bool:
    """Whether this reconcile should query the gates (the controller asks before it does).

    Checks are spaced by the analysis interval from the later of the last check and the start
    of the current step, so a restarted controller never squeezes in an extra check. A small
    tolerance absorbs scheduler jitter.
    """
    status, interval = rollout.status, rollout.spec.analysis.interval
    if status.phase not in (Phase.PROGRESSING, Phase.PAUSED) or status.stage not in ANALYSED_STAGES:
        return False
    marks = [t for t in (status.step_started_at, _last_check_time(status)) if t is not None]
    if not marks:
        return True
    tolerance = min(interval / 10, timedelta(seconds=1))
    return now >= max(marks) + interval - tolerance


def _last_check_time(status: RolloutStatus) -> datetime | None:
    return status.last_analysis.time if status.last_analysis else None


def repeats_stored_check(stored: RolloutStatus, decided: RolloutStatus) -> bool:
    """Whether `decided` differs from `stored` only by a newer check that says what the stored
    check said (the same outcome, the same verdict for each gate), within `CHECK_HEARTBEAT`.

    Such a check moves no counter, no phase and no traffic (a hold, or a pass while paused), so
    it need not be stored: a Rollout that holds costs no write per interval. The values shown in
    `lastAnalysis` are then up to `CHECK_HEARTBEAT` old; a changed verdict is stored at once.
    """
    old, new = stored.last_analysis, decided.last_analysis
    if old is None or new is None or new.time - old.time >= CHECK_HEARTBEAT:
        return False
    if _verdicts(old) != _verdicts(new):
        return False
    return decided.model_copy(update={"last_analysis": old}).wire() == stored.wire()


def _verdicts(record: AnalysisRecord) -> tuple[object, ...]:
    gates = tuple((gate.name, gate.verdict) for gate in record.gates)
    return record.outcome, record.counted_as, gates


def boundary_target(spec: RolloutSpec, status: RolloutStatus) -> Position | None:
    """The position a passing check would move into now, when that starts a new stage."""
    if status.phase is Phase.PENDING and status.stage is Stage.WAITING:
        return positions(spec)[0]
    if status.phase is not Phase.PROGRESSING or status.stage not in ANALYSED_STAGES:
        return None
    if status.passed_checks + 1 < required_checks(spec, status.stage):
        return None
    target = next_position(spec, status.stage, status.step_index, status.canary_weight)
    return target if target.stage is not status.stage else None


def boundary_webhooks(spec: RolloutSpec, status: RolloutStatus) -> tuple[WebhookCheck, ...]:
    """pre-stage and confirm-promotion webhooks of the stage a passing check would start."""
    target = boundary_target(spec, status)
    if target is None:
        return ()
    return before_stage(spec, WebhookType.PRE_STAGE, target.stage) + before_stage(
        spec, WebhookType.CONFIRM_PROMOTION, target.stage
    )


def webhooks_due(rollout: Rollout, now: datetime, canary_ready: bool) -> tuple[WebhookCheck, ...]:
    """The webhooks the controller should call before this reconcile's `advance`."""
    spec, status = rollout.spec, rollout.status
    if status.phase is Phase.PENDING and status.stage is Stage.WAITING:
        return boundary_webhooks(spec, status) if canary_ready else ()
    if not analysis_due(rollout, now):
        return ()
    return gate_webhooks(spec) + boundary_webhooks(spec, status)


def weight_at(spec: RolloutSpec, position: Position) -> int:
    if position.stage is Stage.SPLIT and spec.stages.split is not None:
        return spec.stages.split.weights()[position.step]
    return 100 if position.stage is Stage.RELEASE else 0
