"""`canary backtest --html`: the page built from a backtest report (canary/cli/backtest_page.py).

Aspects: one chart for the canary's traffic and one per gate, each gate's values and its
threshold; a mark at every check where the policy held, promoted or rolled back; the page is
self-contained (the charts' code inlined, no URL loaded) and escapes what the report says.
The page in a real browser: tests/analysis/test_backtest.py."""

from __future__ import annotations

import re
from typing import Any

from canary.cli.backtest_page import chart_specs, page

T0 = "2026-12-03T10:00:00+00:00"


def check(at: int, outcome: str, weight: int, value: float | None) -> dict[str, Any]:
    return {
        "at": f"+{at}s",
        "time": f"2026-12-03T10:00:{at:02d}+00:00",
        "position": "split step 1 (50%)",
        "canaryWeight": weight,
        "outcome": outcome,
        "gates": [
            {
                "name": "success-rate",
                "verdict": "pass" if value is None or value >= 99 else "fail",
                "value": value,
                "threshold": ">= 99.0%",
                "message": f"success-rate {value} <script>",
            }
        ],
    }


REPORT = {
    "phase": "RolledBack",
    "furthest": "split step 1 (50%)",
    "endedAt": "+20s",
    "message": "success-rate 80 < 99",
    "checks": [
        check(5, "hold", 0, None),
        check(10, "promote", 50, 99.5),
        check(20, "rollback", 0, 80.0),
    ],
}


def test_a_chart_for_the_traffic_and_one_per_gate_with_its_threshold() -> None:
    traffic, gate = chart_specs(REPORT)
    assert traffic["series"][0]["points"] == [
        [1796292005000, 0],
        [1796292010000, 50],
        [1796292020000, 0],
    ]
    assert gate["title"] == "success-rate"
    assert gate["series"][0]["points"] == [[1796292010000, 99.5], [1796292020000, 80.0]]
    assert gate["thresholds"] == [{"value": 99.0, "label": ">= 99.0"}]


def test_every_check_is_marked_with_what_the_policy_did() -> None:
    for spec in chart_specs(REPORT):
        assert [m["kind"] for m in spec["markers"]] == ["hold", "promote", "rollback"]


def test_the_page_is_self_contained_and_escapes_the_report() -> None:
    text = page(REPORT, "backtest of ui.yaml")
    assert "CanaryCharts" in text and "lineChart" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert "would have rolled back at +20s" in text
    assert "&lt;script&gt;" in text  # a message is text, not markup


def test_a_gate_name_cannot_end_the_pages_script() -> None:
    report = {**REPORT, "checks": [check(10, "hold", 0, 99.5)]}
    report["checks"][0]["gates"][0]["name"] = "x</script><b>"
    text = page(report, "backtest")
    assert text.count("</script>") == text.count("<script>") == 2
