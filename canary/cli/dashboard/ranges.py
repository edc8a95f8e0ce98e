"""Each gate's value over a release, from Prometheus range data (`canary dashboard
--prometheus URL`).

The checks are measured again at every analysis interval of the release, from range data, by
the code the controller measures with (as `canary backtest` does): the line is what each check
read, or would have read between two the status kept. Compare gates compare the canary with the
release's stable version; once a release has succeeded the status names only the new version,
so they are left out of a finished release's lines.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

from pydantic import ValidationError

from canary.cli.dashboard.state import GateRanges, Points
from canary.core.model import Rollout
from canary.core.objects import Obj, key_of
from canary.core.status import RUNNING_PHASES, RolloutStatus
from canary.metrics.errors import MetricsError
from canary.metrics.prometheus import PrometheusClient, measure
from canary.metrics.recording import RecordedPrometheus, RecordingError, record

MAX_POINTS = 240  # per gate line: a long release is sampled more sparsely, never more often
REFRESH = timedelta(seconds=10)  # a running release's lines are read again at most this often

# ---------------------------------------------------------------- pure


def release_span(status: RolloutStatus, now: datetime) -> tuple[datetime, datetime] | None:
    """From the release's start to now while it runs, else to its last recorded change."""
    start = status.release_started_at
    if start is None:
        return None
    end = (
        now
        if status.phase in RUNNING_PHASES
        else max((e.time for e in status.history), default=now)
    )
    end = min(end, now)
    return (start, end) if end > start else None


def check_times(
    start: datetime, end: datetime, interval: timedelta
) -> tuple[timedelta, list[datetime]]:
    """The step (the analysis interval, wider for a long release) and the times of the checks."""
    seconds = max(interval.total_seconds(), (end - start).total_seconds() / MAX_POINTS)
    step = timedelta(seconds=math.ceil(seconds))
    count = int((end - start) / step)
    return step, [start + step * n for n in range(1, count + 1)]


def stage_started(status: RolloutStatus, at: datetime) -> datetime | None:
    """When the stage in force at `at` began, by the status history (compare gates' window)."""
    began, stage = None, None
    for entry in sorted(status.history, key=lambda e: e.time):
        if entry.time > at:
            break
        if entry.stage != stage or began is None:
            began, stage = entry.time, entry.stage
    return began or status.release_started_at


def measured_subject(rollout: Rollout) -> Rollout:
    """The Rollout whose gates are measured: without compare gates when the status no longer
    names the release's stable version (it succeeded: stable and canary are one version)."""
    status = rollout.status
    if status.stable_version is not None and status.stable_version != status.canary_version:
        return rollout
    gates = [gate for gate in rollout.spec.analysis.gates if gate.compare is None]
    analysis = rollout.spec.analysis.model_copy(update={"gates": gates})
    spec = rollout.spec.model_copy(update={"analysis": analysis})
    return rollout.model_copy(update={"spec": spec})


def gate_lines(
    subject: Rollout, answers: Callable[[datetime], PrometheusClient], times: list[datetime]
) -> GateRanges:
    """Every gate's value at each time, measured from `answers(time)` (a recording)."""
    points: Points = {gate.name: [] for gate in subject.spec.analysis.gates}
    thresholds: dict[str, str] = {}
    for at in times:
        stage_start = stage_started(subject.status, at)
        status = subject.status.model_copy(update={"stage_started_at": stage_start})
        for result in measure(answers(at), subject.model_copy(update={"status": status}), at):
            if result.threshold:
                thresholds[result.name] = result.threshold
            if result.value is not None and math.isfinite(result.value):
                points[result.name].append([at.timestamp() * 1000, result.value])
    return GateRanges(points, thresholds)


# ---------------------------------------------------------------- reading Prometheus


class RangeReader:
    """The lines of each Rollout's gates, read from one Prometheus and kept for `REFRESH`
    (a finished release's for as long as its span stays the same)."""

    def __init__(self, url: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.url = url
        self.clock = clock
        self._lock = threading.Lock()  # one read of Prometheus at a time
        self._kept: dict[str, tuple[datetime, tuple[datetime, datetime], GateRanges]] = {}

    def read(self, obj: Obj) -> GateRanges:
        try:
            rollout = Rollout.model_validate(obj)
        except ValidationError:
            return GateRanges(error="the Rollout cannot be read (see `canary lint`): no gate lines")
        now = self.clock()
        span = release_span(rollout.status, now)
        if span is None:
            return GateRanges(error="no release has started yet: no gate lines")
        key = key_of(obj)
        with self._lock:
            kept = self._kept.get(key)
            if kept is not None and (kept[1] == span or now - kept[0] < REFRESH):
                return kept[2]
            ranges = self._fetch(rollout, span)
            self._kept[key] = (now, span, ranges)
            return ranges

    def _fetch(self, rollout: Rollout, span: tuple[datetime, datetime]) -> GateRanges:
        subject = measured_subject(rollout)
        start, end = span
        step, times = check_times(start, end, subject.spec.analysis.interval)
        stable = subject.status.stable_version or subject.spec.canary.version
        try:
            with PrometheusClient(subject.spec.prometheus.at(self.url)) as client:
                recording = record(client, subject, stable, start, end, step)

            def answers(at: datetime) -> PrometheusClient:
                return cast(PrometheusClient, RecordedPrometheus(recording, at))

            return gate_lines(subject, answers, times)
        except (MetricsError, RecordingError) as error:
            return GateRanges(error=f"no gate lines from Prometheus: {error}")
