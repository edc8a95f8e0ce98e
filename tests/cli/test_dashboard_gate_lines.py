"""The pure parts of the dashboard's gate lines (`dashboard.ranges`, `state.gate_charts`).

Aspects: a release's span runs to now while it runs and to its last change once ended; check
times step by the analysis interval, more sparsely for a long release, never past the end; a
compare gate's window starts where the stage in force began; a succeeded release's compare
gates are left out; a gate chart carries the checks and the Prometheus line, and a gate that has
only a line (no check stored yet) still gets a chart with its threshold.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from canary.cli.dashboard import ranges, state
from canary.cli.dashboard.server import _range_reader
from canary.cli.errors import UserError
from canary.core.model import Rollout
from canary.core.status import RolloutStatus

T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
T0_MS = T0.timestamp() * 1000


def status(**fields: Any) -> RolloutStatus:
    return RolloutStatus.model_validate(fields)


def entry(seconds: int, phase: str, stage: str | None = None) -> dict[str, Any]:
    return {"time": (T0 + timedelta(seconds=seconds)).isoformat(), "phase": phase, "stage": stage}


def test_a_running_release_spans_to_now_an_ended_one_to_its_last_change() -> None:
    now = T0 + timedelta(minutes=5)
    history = [entry(0, "Progressing", "mirror"), entry(60, "RolledBack")]
    running = status(phase="Progressing", releaseStartedAt=T0, history=history[:1])
    assert ranges.release_span(running, now) == (T0, now)
    ended = status(phase="RolledBack", releaseStartedAt=T0, history=history)
    assert ranges.release_span(ended, now) == (T0, T0 + timedelta(seconds=60))
    assert ranges.release_span(status(phase="Succeeded"), now) is None


def test_check_times_follow_the_interval_and_thin_out_for_long_releases() -> None:
    step, times = ranges.check_times(T0, T0 + timedelta(seconds=35), timedelta(seconds=10))
    assert step == timedelta(seconds=10)
    assert times == [T0 + timedelta(seconds=s) for s in (10, 20, 30)]
    step, times = ranges.check_times(T0, T0 + timedelta(hours=10), timedelta(seconds=10))
    assert len(times) == ranges.MAX_POINTS and step == timedelta(seconds=150)
    assert times[-1] <= T0 + timedelta(hours=10)


def test_the_comparison_window_starts_with_the_stage_in_force() -> None:
    history = [
        entry(0, "Progressing", "mirror"),
        entry(30, "Progressing", "split"),
        entry(60, "Progressing", "split"),  # the next split step: the same stage
        entry(90, "Paused", "split"),
    ]
    subject = status(phase="Paused", releaseStartedAt=T0, history=history)
    assert ranges.stage_started(subject, T0 + timedelta(seconds=10)) == T0
    assert ranges.stage_started(subject, T0 + timedelta(seconds=75)) == T0 + timedelta(seconds=30)
    assert ranges.stage_started(subject, T0 - timedelta(seconds=1)) == T0  # before any entry


def example(**status_fields: Any) -> Rollout:
    gates = [
        {"name": "success-rate", "successRate": {"min": 99.0}},
        {
            "name": "errors",
            "compare": {"against": "stable", "metric": "errorRate", "maxIncrease": 50},
        },
    ]
    return Rollout.model_validate(
        {
            "metadata": {"name": "ui", "namespace": "shop"},
            "spec": {
                "host": "ui",
                "virtualService": {"name": "ui"},
                "destinationRule": {"name": "ui"},
                "stable": {"subset": "stable"},
                "canary": {"subset": "canary", "version": "v2"},
                "stages": {"split": {"steps": [50], "interval": "10s"}},
                "analysis": {"gates": gates},
            },
            "status": status_fields,
        }
    )


def test_a_succeeded_release_is_measured_without_its_compare_gates() -> None:
    running = example(stableVersion="v1", canaryVersion="v2")
    assert ranges.measured_subject(running) is running
    done = ranges.measured_subject(example(stableVersion="v2", canaryVersion="v2"))
    assert [gate.name for gate in done.spec.analysis.gates] == ["success-rate"]


def test_gate_charts_carry_the_checks_and_the_prometheus_line() -> None:
    record = {
        "time": T0.isoformat(),
        "outcome": "pass",
        "gates": [{"name": "success-rate", "value": 99.5, "threshold": ">= 99.0%"}],
    }
    lines = state.GateRanges(
        points={"success-rate": [[T0_MS - 10_000, 99.4]], "latency": [[T0_MS, 120.0]]},
        thresholds={"latency": "<= 250ms"},
    )
    charted = state.gate_charts({"lastAnalysis": record}, state.Timeline(), lines, [])
    success, latency = charted
    assert [s["name"] for s in success["series"]] == ["checks", "Prometheus"]
    assert success["series"][0]["points"] == [[T0_MS, 99.5]]
    assert success["series"][1]["points"] == [[T0_MS - 10_000, 99.4]]
    assert latency["title"] == "latency" and latency["unit"] == "ms"
    assert latency["series"][0]["points"] == []
    assert latency["thresholds"] == [{"value": 250.0, "label": "<= 250"}]


def test_a_prometheus_that_is_not_an_http_url_is_one_sentence() -> None:
    with pytest.raises(UserError, match=r"^--prometheus ftp://x is not an http\(s\) URL: give"):
        _range_reader("ftp://x")
    assert _range_reader(None) is None
