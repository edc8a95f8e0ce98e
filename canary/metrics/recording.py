"""Record what a Rollout's gates read, and replay a release on it with the controller's code.

`record` runs one range query per series a check needs, from `start` to `end` every analysis
interval: the exact query of each successRate/latency/query gate and of the request count, and
for compare gates each counter itself (`sum(...)` without `increase`). `replay` then walks
the release with `canary.core.simulate.walk`, measuring with `measure` (the function
the controller's `PrometheusSource` runs) against a `RecordedPrometheus` that answers from
the recording whenever an analysis is due. A compare gate's
`increase(...[since stage start])` is answered from the recorded counter's growth.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from canary.core.durations import parse_duration
from canary.core.model import Rollout
from canary.core.simulate import Tick, walk
from canary.core.status import GateResult
from canary.metrics.compare import RANGE, counter_templates
from canary.metrics.prometheus import PrometheusClient, RangeSeries, measure
from canary.metrics.promql import (
    Target,
    gate_query,
    promql_duration,
    request_count_query,
    target_of,
)
from canary.metrics.verdicts import Reading, Series

FORMAT = "canary.dev/recording/v1"


class RecordingError(ValueError):
    """A recording file that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class Recording:
    """Range data for one Rollout's gates: exact queries, and the compare gates' counters."""

    start: datetime
    end: datetime
    step: timedelta
    canary_version: str
    stable_version: str
    queries: Mapping[str, tuple[RangeSeries, ...]] = field(default_factory=dict)
    counters: Mapping[str, tuple[RangeSeries, ...]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "step": promql_duration(self.step),
            "canaryVersion": self.canary_version,
            "stableVersion": self.stable_version,
            "queries": {q: _series_json(s) for q, s in self.queries.items()},
            "counters": {t: _series_json(s) for t, s in self.counters.items()},
        }

    @classmethod
    def from_json(cls, body: Any, source: str) -> Recording:
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise RecordingError(
                f"{source} is not a canary recording: make one with `canary record`"
            )
        try:
            return cls(
                start=datetime.fromisoformat(body["start"]),
                end=datetime.fromisoformat(body["end"]),
                step=parse_duration(body["step"]),
                canary_version=str(body["canaryVersion"]),
                stable_version=str(body["stableVersion"]),
                queries={q: _series_of(s) for q, s in body["queries"].items()},
                counters={t: _series_of(s) for t, s in body["counters"].items()},
            )
        except (KeyError, TypeError, ValueError) as error:
            raise RecordingError(
                f"{source} is a damaged recording ({type(error).__name__}: {error}); "
                "record it again"
            ) from None


def _series_json(series: tuple[RangeSeries, ...]) -> list[dict[str, Any]]:
    return [{"metric": dict(s.labels), "values": [list(p) for p in s.points]} for s in series]


def _series_of(body: list[dict[str, Any]]) -> tuple[RangeSeries, ...]:
    return tuple(
        RangeSeries(
            {str(k): str(v) for k, v in item["metric"].items()},
            tuple((float(t), float(v)) for t, v in item["values"]),
        )
        for item in body
    )


# ---------------------------------------------------------------- recording


def backtest_target(rollout: Rollout, stable_version: str) -> Target:
    """Whose traffic a backtest reads: spec.canary.version against `stable_version`."""
    target = target_of(rollout)
    return Target(
        namespace=target.namespace,
        host=target.host,
        service=target.service,
        canary_version=rollout.spec.canary.version,
        stable_version=stable_version,
        window=target.window,
    )


def planned_queries(rollout: Rollout, stable_version: str) -> tuple[list[str], list[str]]:
    """The exact queries and the counter templates a check of `rollout` reads."""
    target = backtest_target(rollout, stable_version)
    queries: list[str] = [request_count_query(target)]
    templates: list[str] = []
    for gate in rollout.spec.analysis.gates:
        if gate.compare is not None:
            templates += counter_templates(gate.compare, target).values()
            continue
        planned = gate_query(gate, target)
        if planned.query is None:
            raise RecordingError(planned.problem or f"gate {gate.name!r} has no query")
        queries.append(planned.query)
    return queries, templates


def record(
    client: PrometheusClient,
    rollout: Rollout,
    stable_version: str,
    start: datetime,
    end: datetime,
    step: timedelta | None = None,
) -> Recording:
    """Range data for every query the checks of `rollout` need, from `start` to `end`, every
    `step` (by default the analysis interval: one point per check)."""
    step = step or rollout.spec.analysis.interval
    queries, templates = planned_queries(rollout, stable_version)
    return Recording(
        start=start,
        end=end,
        step=step,
        canary_version=rollout.spec.canary.version,
        stable_version=stable_version,
        queries={q: client.query_range(q, start, end, step) for q in queries},
        counters={t: client.query_range(raw_counter(t), start, end, step) for t in templates},
    )


def raw_counter(template: str) -> str:
    """`sum(increase(x{...}[RANGE]))` -> `sum(x{...})`: the counter itself, whatever the scrape
    interval (an increase over one short step may hold fewer than two samples)."""
    return template.replace("increase(", "", 1).replace(f"[{RANGE}])", "", 1)


# ---------------------------------------------------------------- answering from a recording


class RecordedPrometheus:
    """Instant queries at `now`, answered from a recording (stands in for PrometheusClient)."""

    def __init__(self, recording: Recording, now: datetime) -> None:
        self.recording = recording
        self.now = now.timestamp()
        self._patterns = [(_range_pattern(t), t) for t in recording.counters]

    def query(self, promql: str) -> Reading:
        if promql in self.recording.queries:
            return self._latest(self.recording.queries[promql])
        for pattern, template in self._patterns:
            match = pattern.fullmatch(promql)
            if match:
                window = parse_duration(match.group(1)).total_seconds()
                return self._summed(self.recording.counters[template], window)
        raise RecordingError(f"the recording has no data for {promql}: record the Rollout again")

    def _latest(self, series: tuple[RangeSeries, ...]) -> Reading:
        oldest = self.now - self.recording.step.total_seconds()
        found = []
        for one in series:
            points = [v for t, v in one.points if oldest < t <= self.now + 1e-6]
            if points:
                found.append(Series(one.labels, points[-1]))
        return tuple(found)

    def _summed(self, series: tuple[RangeSeries, ...], window: float) -> Reading:
        """The counter's growth over (now - window, now]; a drop is a reset (counts from 0)."""
        found = []
        for one in series:
            growth, seen, previous = 0.0, False, None
            for t, value in one.points:
                if not math.isfinite(value) or t > self.now + 1e-6:
                    continue
                if previous is not None and t > self.now - window:
                    growth += value - previous if value >= previous else value
                    seen = True
                previous = value
            if seen:
                found.append(Series(one.labels, growth))
        return tuple(found)


def _range_pattern(template: str) -> re.Pattern[str]:
    before, after = template.split(RANGE, 1)
    return re.compile(re.escape(before) + r"([0-9smhd]+)" + re.escape(after))


# ---------------------------------------------------------------- replay


def replay(recording: Recording, rollout: Rollout) -> Iterator[Tick]:
    """Every reconcile of the release of spec.canary.version over the recorded span."""
    rollout = rollout.model_copy(update={"status": rollout.status.model_copy(update=_fresh())})

    def measured(subject: Rollout, now: datetime) -> tuple[GateResult, ...]:
        return measure(cast(PrometheusClient, RecordedPrometheus(recording, now)), subject, now)

    return walk(rollout, recording.start, recording.stable_version, measured, recording.end)


def _fresh() -> dict[str, Any]:
    """A status with nothing released yet: advance starts from the stable version."""
    return {"phase": None, "stage": None, "stable_version": None, "canary_version": None}


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """An RFC 3339 time, unix seconds, `now`, or `now-10m`."""
    now = now or datetime.now(UTC)
    text = value.strip()
    if text == "now":
        return now
    if text.startswith("now-"):
        return now - parse_duration(text[4:])
    try:
        return datetime.fromtimestamp(float(text), UTC)
    except ValueError:
        pass
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def load(path: str) -> Recording:
    try:
        with open(path, encoding="utf-8") as file:
            body = json.load(file)
    except OSError as error:
        raise RecordingError(f"{path} cannot be read ({error.strerror}): check the path") from None
    except json.JSONDecodeError:
        raise RecordingError(f"{path} is not JSON: give a file made by `canary record`") from None
    return Recording.from_json(body, path)
