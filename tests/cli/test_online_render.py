"""render: the small pure pieces the tables are made of (bars, ages, steps, CI lines)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from canary.cli.render import age, progress_line, step_text, weight_bar

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("weight", "bar"),
    [(0, "░" * 20 + " 0%"), (25, "█" * 5 + "░" * 15 + " 25%"), (100, "█" * 20 + " 100%")],
)
def test_weight_bar(weight: int, bar: str) -> None:
    assert weight_bar(weight) == bar


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(5, "5s"), (150, "2m30s"), (1800, "30m"), (4 * 3600 + 60, "4h1m"), (30 * 3600, "30h")],
)
def test_age_reads_like_kubectl(seconds: int, text: str) -> None:
    stamp = (NOW - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert age(stamp, NOW) == text
    assert age(None, NOW) == "-"


def test_split_step_counts_from_one() -> None:
    rollout = {
        "spec": {"stages": {"split": {"stepWeight": 20, "maxWeight": 50}}},
        "status": {"stage": "split", "stepIndex": 2},
    }
    assert step_text(rollout) == "3 of 3"  # 20, 40, 50


def test_progress_line_is_plain_text_with_a_utc_time() -> None:
    rollout = {
        "metadata": {"generation": 1},
        "spec": {"canary": {"version": "v2"}},
        "status": {
            "phase": "Progressing",
            "stage": "split",
            "canaryWeight": 25,
            "canaryVersion": "v2",
            "observedGeneration": 1,
            "message": "at split step 2 (25% canary)",
        },
    }
    assert progress_line(rollout, NOW) == (
        "2024-05-01T12:00:00Z  Progressing  split          25%  at split step 2 (25% canary)"
    )
