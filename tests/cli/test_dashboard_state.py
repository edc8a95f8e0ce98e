"""The dashboard's pure state: Rollouts and Events in, the page's JSON out.

Aspects: list rows (sorted, every column, a Rollout with no status yet), thresholds parsed from
the controller's threshold text, the Timeline (traffic only when it changes, each check once by
its time, position markers by kind), the detail (traffic split, gates, events in order, the
traffic chart seeded from status.history, a gate chart per gate with its threshold).
"""

from __future__ import annotations

from typing import Any

from canary.cli.dashboard import state
from canary_sandbox.stack import example_release

Obj = dict[str, Any]
T0 = "2024-05-01T12:00:00Z"
T0_MS = 1714564800000


def rollout(name: str = "ui", namespace: str = "shop", **status: Any) -> Obj:
    body = example_release("v2")
    body["metadata"] = {"name": name, "namespace": namespace, "uid": "u1"}
    if status:
        body["status"] = status
    return body


def analysis(time: str, success: float | None, latency: float = 40.0) -> Obj:
    return {
        "time": time,
        "outcome": "pass",
        "countedAs": "pass",
        "gates": [
            {"name": "success-rate", "verdict": "pass", "value": success, "threshold": ">= 99.0%"},
            {"name": "p99-latency", "verdict": "pass", "value": latency, "threshold": "<= 500ms"},
        ],
    }


def test_list_rows_are_sorted_and_show_every_column() -> None:
    rows = state.list_rows(
        [
            rollout("web", phase="Paused", pausedReason="Manual", stage="mirror"),
            rollout(
                "api", phase="Progressing", stage="split", stepIndex=1, canaryWeight=25,
                stableVersion="v1", canaryVersion="v2", message="at split step 2",
            ),
        ]
    )  # fmt: skip
    assert [r["name"] for r in rows] == ["api", "web"]
    assert rows[0] == {
        "key": "shop/api",
        "namespace": "shop",
        "name": "api",
        "phase": "Progressing",
        "phaseText": "Progressing",
        "stage": "split",
        "step": "2 of 5",
        "canaryWeight": 25,
        "stableVersion": "v1",
        "canaryVersion": "v2",
        "message": "at split step 2",
    }
    assert rows[1]["phaseText"] == "Paused (Manual)"


def test_a_rollout_without_status_is_a_row_of_dashes_with_the_wanted_version() -> None:
    row = state.list_row(rollout())
    assert (row["phase"], row["stage"], row["step"], row["canaryWeight"]) == ("-", "-", "-", 0)
    assert row["canaryVersion"] == "v2"


def test_thresholds_from_the_controllers_text() -> None:
    assert state.thresholds_of(">= 99.0%") == [{"value": 99.0, "label": ">= 99.0"}]
    assert state.thresholds_of("<= 500ms") == [{"value": 500.0, "label": "<= 500"}]
    assert [t["value"] for t in state.thresholds_of(">= 1 and <= 5")] == [1.0, 5.0]
    assert state.thresholds_of("error rate <= stable +1% at 0.95") == []  # relative to stable
    assert state.thresholds_of(None) == []
    assert state.thresholds_of("2xx") == []


def test_the_timeline_keeps_changes_and_counts_each_check_once() -> None:
    timeline = state.Timeline()
    mirror = rollout(phase="Progressing", stage="mirror", mirrorPercent=100.0,
                     lastAnalysis=analysis(T0, 99.5))  # fmt: skip
    state.observe(timeline, mirror, T0_MS)
    state.observe(timeline, mirror, T0_MS + 500)  # the same object again: nothing new
    split = rollout(phase="Progressing", stage="split", canaryWeight=10,
                    lastAnalysis=analysis("2024-05-01T12:00:02Z", 99.9))  # fmt: skip
    state.observe(timeline, split, T0_MS + 2000)
    rolled = rollout(phase="RolledBack", canaryWeight=0,
                     lastAnalysis=analysis("2024-05-01T12:00:02Z", 99.9))  # fmt: skip
    state.observe(timeline, rolled, T0_MS + 3000)
    assert timeline.traffic == [
        (T0_MS, 0, 100.0),
        (T0_MS + 2000, 10, 0.0),
        (T0_MS + 3000, 0, 0.0),
    ]
    assert timeline.checks["success-rate"] == [(T0_MS, 99.5), (T0_MS + 2000, 99.9)]
    assert timeline.checks["p99-latency"] == [(T0_MS, 40.0), (T0_MS + 2000, 40.0)]
    assert [(m["label"], m["kind"]) for m in timeline.markers] == [
        ("split 1", "stage"),
        ("RolledBack", "rollback"),
    ]


def test_a_check_without_a_value_adds_no_point() -> None:
    timeline = state.observe(state.Timeline(), rollout(lastAnalysis=analysis(T0, None)), T0_MS)
    assert "success-rate" not in timeline.checks
    assert timeline.checks["p99-latency"] == [(T0_MS, 40.0)]


def test_the_timeline_is_bounded() -> None:
    timeline = state.Timeline()
    for n in range(state.MAX_POINTS + 50):
        state.observe(timeline, rollout(phase="Progressing", canaryWeight=n % 2), T0_MS + n)
    assert len(timeline.traffic) == state.MAX_POINTS
    assert timeline.traffic[-1][0] == T0_MS + state.MAX_POINTS + 49


def test_the_detail_has_split_gates_events_and_charts() -> None:
    history = [
        {"time": T0, "phase": "Progressing", "stage": "mirror", "canaryWeight": 0},
        {"time": "2024-05-01T12:00:10Z", "phase": "Progressing", "stage": "split", "step": 0,
         "canaryWeight": 10},
        {"time": "2024-05-01T12:00:20Z", "phase": "Paused", "stage": "split", "step": 0,
         "canaryWeight": 10},
    ]  # fmt: skip
    body = rollout(
        phase="Paused", stage="split", stepIndex=0, canaryWeight=10, failedChecks=1,
        lastAnalysis=analysis("2024-05-01T12:00:15Z", 99.2), history=history,
        handledRequest={"id": "1", "action": "pause", "time": T0, "result": "paused"},
    )  # fmt: skip
    events = [
        {"lastTimestamp": "2024-05-01T12:00:20Z", "type": "Normal", "reason": "Paused",
         "message": "paused by request"},
        {"lastTimestamp": T0, "type": "Normal", "reason": "Started", "message": "release v2",
         "count": 2},
    ]  # fmt: skip
    timeline = state.observe(state.Timeline(), body, T0_MS + 30_000)
    detail = state.detail(body, events, timeline)

    assert detail["traffic"] == {"stable": 90, "canary": 10, "mirror": 0.0, "headerRoute": False}
    assert (detail["failedChecks"], detail["failureLimit"]) == (1, 2)
    assert [g["name"] for g in detail["gates"]] == ["success-rate", "p99-latency"]
    assert [e["reason"] for e in detail["events"]] == ["Started", "Paused"]
    assert detail["events"][0]["count"] == 2
    assert detail["handledRequest"]["result"] == "paused"
    assert detail["actions"] == ["promote", "pause", "resume", "abort", "retry"]

    traffic = detail["charts"]["traffic"]
    weights = traffic["series"][0]["points"]
    assert weights == [[T0_MS, 0.0], [T0_MS + 10_000, 10.0], [T0_MS + 20_000, 10.0],
                       [T0_MS + 30_000, 10.0]]  # fmt: skip
    assert [(m["label"], m["kind"]) for m in traffic["markers"]] == [
        ("mirror", "stage"),
        ("split 1", "stage"),
        ("Paused", "hold"),
    ]
    success = detail["charts"]["gates"][0]
    assert success["title"] == "success-rate"
    assert success["unit"] == "%"
    assert success["series"][0]["points"] == [[T0_MS + 15_000, 99.2]]
    assert success["thresholds"] == [{"value": 99.0, "label": ">= 99.0"}]
    assert detail["charts"]["gates"][1]["unit"] == "ms"


def test_events_are_the_most_recent_ones() -> None:
    events = [
        {"lastTimestamp": f"2024-05-01T12:{n // 60:02d}:{n % 60:02d}Z", "reason": str(n)}
        for n in range(state.EVENTS_SHOWN + 5)
    ]
    rows = state.event_rows(list(reversed(events)))
    assert [r["reason"] for r in rows] == [str(n) for n in range(5, state.EVENTS_SHOWN + 5)]
