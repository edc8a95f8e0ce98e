"""What the dashboard page shows, as JSON-ready dicts: pure functions of Rollouts and Events.

No I/O and no clock: `now` comes in as an argument (epoch milliseconds). The server keeps one
`Timeline` per Rollout and feeds it every version of the object its watch sees; the page's
charts are drawn from it (plus the status's own bounded `history`, so a page opened late still
sees the release so far). Chart specs follow static/charts.js: `{title, unit, series: [{name,
points: [[epochMillis, value], ...]}], thresholds: [{value, label}], markers: [{at, label,
kind}]}`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from canary.cli.render import (
    NONE,
    event_time,
    parse_time,
    phase_text,
    split_weights,
    status_of,
    step_text,
)
from canary.core.objects import Obj, key_of, metadata_of

MAX_POINTS = 600  # per series: a long release seen live stays a few hundred KB at most
EVENTS_SHOWN = 20
ACTIONS = ("promote", "pause", "resume", "abort", "retry")
PHASE_MARKERS = {"RolledBack": "rollback", "Aborted": "rollback", "Succeeded": "promote"}
BOUND = re.compile(r"(>=|<=)\s*(-?\d+(?:\.\d+)?)")


def millis(value: str | None) -> int | None:
    """An RFC 3339 time as epoch milliseconds (None when absent or unreadable)."""
    parsed = parse_time(value)
    return None if parsed is None else int(parsed.timestamp() * 1000)


def rollout_key(rollout: Obj) -> str:
    return key_of(rollout)


# ---------------------------------------------------------------- the list


def list_row(rollout: Obj) -> Obj:
    metadata, status = metadata_of(rollout), status_of(rollout)
    spec = rollout.get("spec") or {}
    return {
        "key": key_of(rollout),
        "namespace": str(metadata.get("namespace", "")),
        "name": str(metadata.get("name", "")),
        "phase": str(status.get("phase") or NONE),
        "phaseText": phase_text(status) if status.get("phase") else NONE,
        "stage": str(status.get("stage") or NONE),
        "step": step_text(rollout),
        "canaryWeight": int(status.get("canaryWeight") or 0),
        "stableVersion": str(status.get("stableVersion") or NONE),
        "canaryVersion": str(
            status.get("canaryVersion") or (spec.get("canary") or {}).get("version") or NONE
        ),
        "message": str(status.get("message") or ""),
    }


def list_rows(rollouts: Iterable[Obj]) -> list[Obj]:
    return [list_row(r) for r in sorted(rollouts, key=key_of)]


# ---------------------------------------------------------------- what the server remembers


@dataclass
class Timeline:
    """One Rollout as the server has seen it change: traffic weight and mirror share per
    observed version, and each gate's value per check (a check counted once, by its time)."""

    traffic: list[tuple[int, int, float]] = field(default_factory=list)  # (at, weight, mirror)
    checks: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # gate -> points
    checked_at: set[int] = field(default_factory=set)
    markers: list[Obj] = field(default_factory=list)
    last_position: tuple[str, str, int] | None = None  # (phase, stage, step)


def observe(timeline: Timeline, rollout: Obj, now: int) -> Timeline:
    """Add what this version of the Rollout says to `timeline` (in place; also returned)."""
    status = status_of(rollout)
    if not status:
        return timeline
    weight = int(status.get("canaryWeight") or 0)
    mirror = float(status.get("mirrorPercent") or 0)
    if not timeline.traffic or timeline.traffic[-1][1:] != (weight, mirror):
        timeline.traffic.append((now, weight, mirror))
    record = status.get("lastAnalysis")
    at = millis(record.get("time")) if isinstance(record, dict) else None
    if isinstance(record, dict) and at is not None and at not in timeline.checked_at:
        timeline.checked_at.add(at)
        for gate in record.get("gates") or []:
            value = gate.get("value")
            if isinstance(value, int | float):
                timeline.checks.setdefault(str(gate.get("name", "")), []).append((at, float(value)))
    position = (
        str(status.get("phase") or ""),
        str(status.get("stage") or ""),
        int(status.get("stepIndex") or 0),
    )
    if position != timeline.last_position:
        if timeline.last_position is not None:
            timeline.markers.append(position_marker(position, now))
        timeline.last_position = position
    _trim(timeline)
    return timeline


def position_marker(position: tuple[str, str, int], at: int) -> Obj:
    phase, stage, step = position
    kind = PHASE_MARKERS.get(phase, "hold" if phase == "Paused" else "stage")
    label = phase if kind != "stage" else (stage or phase)
    if kind == "stage" and stage == "split":
        label = f"split {step + 1}"
    return {"at": at, "label": label, "kind": kind}


def _trim(timeline: Timeline) -> None:
    del timeline.traffic[:-MAX_POINTS]
    del timeline.markers[:-MAX_POINTS]
    for points in timeline.checks.values():
        del points[:-MAX_POINTS]
    if len(timeline.checked_at) > 2 * MAX_POINTS:
        kept = sorted(timeline.checked_at)[-MAX_POINTS:]
        timeline.checked_at = set(kept)


# ---------------------------------------------------------------- one Rollout

Points = dict[str, list[list[float]]]  # gate name -> [[epoch millis, value], ...]


@dataclass(frozen=True)
class GateRanges:
    points: Points = field(default_factory=dict)
    thresholds: dict[str, str] = field(default_factory=dict)  # gate name -> its threshold text
    error: str | None = None  # why there are no lines (one sentence), shown on the page


def thresholds_of(text: str | None) -> list[Obj]:
    """`>= 99.0%` -> [{value: 99.0, label: ">= 99.0%"}]; `>= 1 and <= 5` gives two; a
    threshold with no fixed number (a comparison with stable) gives none."""
    if not text:
        return []
    return [
        {"value": float(number), "label": f"{op} {number}"} for op, number in BOUND.findall(text)
    ]


def gate_unit(gate: Obj) -> str:
    threshold = str(gate.get("threshold") or "")
    if threshold.endswith("%") or "rate" in str(gate.get("name", "")):
        return "%"
    return "ms" if "ms" in threshold else ""


def gate_rows(status: Obj) -> list[Obj]:
    record = status.get("lastAnalysis")
    if not isinstance(record, dict):
        return []
    return [
        {
            "name": str(gate.get("name", "")),
            "value": gate.get("value"),
            "threshold": str(gate.get("threshold") or NONE),
            "verdict": str(gate.get("verdict", "")),
            "samples": gate.get("samples"),
            "message": str(gate.get("message") or ""),
        }
        for gate in record.get("gates") or []
    ]


def traffic_split(status: Obj) -> Obj:
    weight = int(status.get("canaryWeight") or 0)
    return {
        "stable": 100 - weight,
        "canary": weight,
        "mirror": float(status.get("mirrorPercent") or 0),
        "headerRoute": bool(status.get("headerRoute")),
    }


def history_markers(status: Obj) -> list[Obj]:
    """The status history's entries as chart markers (stage changes, holds, the outcome)."""
    markers = []
    for entry in status.get("history") or []:
        at = millis(entry.get("time"))
        if at is None:
            continue
        step = entry.get("step")
        position = (
            str(entry.get("phase", "")),
            str(entry.get("stage") or ""),
            step if isinstance(step, int) else 0,
        )
        markers.append(position_marker(position, at))
    return markers


def traffic_points(status: Obj, timeline: Timeline) -> tuple[list[list[float]], list[list[float]]]:
    """(canary weight, mirror share) over time: the status history first, then what was seen."""
    weights: dict[int, float] = {}
    mirrors: dict[int, float] = {}
    for entry in status.get("history") or []:
        at = millis(entry.get("time"))
        if at is not None:
            weights[at] = float(entry.get("canaryWeight") or 0)
    for at, weight, mirror in timeline.traffic:
        weights[at] = float(weight)
        mirrors[at] = mirror
    return (
        [[at, value] for at, value in sorted(weights.items())],
        [[at, value] for at, value in sorted(mirrors.items())],
    )


def charts(rollout: Obj, timeline: Timeline, ranges: GateRanges | None = None) -> Obj:
    """The traffic chart and one per gate: the checks the status kept (and this page saw),
    and with `ranges` each gate's line from Prometheus."""
    status = status_of(rollout)
    weights, mirrors = traffic_points(status, timeline)
    markers = _merged_markers(history_markers(status), timeline.markers)
    series: list[Obj] = [{"name": "canary weight", "points": weights, "step": True}]
    if any(value for _, value in mirrors):
        series.append({"name": "mirror", "points": mirrors, "step": True})
    traffic = {
        "title": "Traffic to the canary",
        "unit": "%",
        "series": series,
        "thresholds": [],
        "markers": markers,
    }
    return {"traffic": traffic, "gates": gate_charts(status, timeline, ranges, markers)}


def gate_charts(
    status: Obj, timeline: Timeline, ranges: GateRanges | None, markers: list[Obj]
) -> list[Obj]:
    """One chart per gate: its checks as points, and its Prometheus line when read."""
    lines = ranges or GateRanges()
    rows = {gate["name"]: gate for gate in gate_rows(status)}
    record_at = millis((status.get("lastAnalysis") or {}).get("time"))
    charted = []
    for name in [*rows, *(n for n in lines.points if n not in rows)]:
        gate = rows.get(name) or {
            "name": name,
            "value": None,
            "threshold": lines.thresholds.get(name),
        }
        points = timeline.checks.get(name, [])
        if not points and isinstance(gate["value"], int | float) and record_at is not None:
            points = [(record_at, float(gate["value"]))]
        series: list[Obj] = [{"name": "checks", "points": [[at, v] for at, v in points]}]
        if name in lines.points:
            series.append({"name": "Prometheus", "points": lines.points[name], "dots": False})
        charted.append(
            {
                "title": name,
                "unit": gate_unit(gate),
                "series": series,
                "thresholds": thresholds_of(gate["threshold"]),
                "markers": markers,
            }
        )
    return charted


def _merged_markers(first: Sequence[Obj], second: Sequence[Obj]) -> list[Obj]:
    """Both lists by time; a seen marker within 2 s of a history one with its label is a copy."""
    merged = list(first)
    for marker in second:
        if not any(
            m["label"] == marker["label"] and abs(m["at"] - marker["at"]) < 2000 for m in first
        ):
            merged.append(marker)
    return sorted(merged, key=lambda m: m["at"])


def event_rows(events: Sequence[Obj]) -> list[Obj]:
    rows = [
        {
            "time": event_time(event) or "",
            "type": str(event.get("type", "")),
            "reason": str(event.get("reason", "")),
            "message": str(event.get("message", "")),
            "count": int(event.get("count") or 1),
        }
        for event in events
    ]
    return sorted(rows, key=lambda row: millis(str(row["time"])) or 0)[-EVENTS_SHOWN:]


def detail(
    rollout: Obj, events: Sequence[Obj], timeline: Timeline, ranges: GateRanges | None = None
) -> Obj:
    status = status_of(rollout)
    spec = rollout.get("spec") or {}
    handled = status.get("handledRequest")
    analysis = status.get("lastAnalysis") if isinstance(status.get("lastAnalysis"), dict) else {}
    return {
        **list_row(rollout),
        "failedChecks": int(status.get("failedChecks") or 0),
        "failureLimit": (spec.get("analysis") or {}).get("failureLimit"),
        "splitSteps": split_weights(spec),
        "traffic": traffic_split(status),
        "gates": gate_rows(status),
        "lastCheck": {
            "time": (analysis or {}).get("time"),
            "outcome": (analysis or {}).get("outcome"),
        },
        "conditions": [
            {
                "type": str(c.get("type", "")),
                "status": str(c.get("status", "")),
                "reason": str(c.get("reason", "")),
                "message": str(c.get("message") or ""),
            }
            for c in status.get("conditions") or []
        ],
        "handledRequest": handled if isinstance(handled, dict) else None,
        "events": event_rows(events),
        "charts": charts(rollout, timeline, ranges),
        "rangeNote": ranges.error if ranges is not None else None,
        "actions": list(ACTIONS),
    }


def error_payload(message: str) -> Obj:
    return {"error": message}
