"""`canary backtest --html FILE`: the backtest's report as one self-contained page.

The charts are the dashboard's (`dashboard/static/charts.js`, inlined): the canary's traffic
share and each gate's value against its threshold per check, with a mark at every check where
the policy held, promoted or rolled back. The page loads nothing from anywhere.
"""

from __future__ import annotations

import html
import json
from datetime import datetime
from importlib import resources
from typing import Any

from canary.cli.backtest import verdict_line
from canary.cli.dashboard.state import thresholds_of

_OUTCOMES = ("hold", "promote", "rollback")


def page(report: dict[str, Any], title: str) -> str:
    """The whole HTML document for `report` (what `backtest.summarise` returns)."""
    specs = json.dumps(chart_specs(report)).replace("</", "<\\/")
    charts = _static("charts.js")
    phase, summary = html.escape(str(report["phase"])), html.escape(verdict_line(report))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p id="verdict" class="verdict {phase}">{summary}</p>
<div id="charts"></div>
<h2>Checks</h2>
{_table(report["checks"])}
<script>{charts}</script>
<script>
(function () {{
  var specs = {specs};
  var box = document.getElementById("charts");
  specs.forEach(function (spec) {{
    var chart = document.createElement("div");
    chart.className = "chart";
    chart.setAttribute("data-chart", spec.title);
    box.appendChild(chart);
    CanaryCharts.lineChart(chart, spec);
  }});
}})();
</script>
</body></html>
"""


def chart_specs(report: dict[str, Any]) -> list[dict[str, Any]]:
    """CanaryCharts specs: the traffic share, then one chart per gate, in the order first seen."""
    checks = report["checks"]
    markers = [
        {"at": _millis(c["time"]), "label": f"{c['at']} {c['outcome']}", "kind": c["outcome"]}
        for c in checks
        if c["outcome"] in _OUTCOMES
    ]
    traffic = {
        "title": "canary traffic",
        "unit": "%",
        "series": [
            {"name": "canary", "points": [[_millis(c["time"]), c["canaryWeight"]] for c in checks]}
        ],
        "thresholds": [],
        "markers": markers,
        "yMin": 0,
        "yMax": 100,
    }
    return [traffic, *(_gate_spec(name, checks, markers) for name in _gate_names(checks))]


def _gate_spec(name: str, checks: list[dict[str, Any]], markers: list[Any]) -> dict[str, Any]:
    readings = [(c["time"], g) for c in checks for g in c["gates"] if g["name"] == name]
    points = [[_millis(t), g["value"]] for t, g in readings if g["value"] is not None]
    texts = dict.fromkeys(g["threshold"] for _, g in readings if g["threshold"])
    return {
        "title": name,
        "unit": "",
        "series": [{"name": name, "points": points}],
        "thresholds": [bound for text in texts for bound in thresholds_of(text)],
        "markers": markers,
    }


def _gate_names(checks: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(g["name"] for c in checks for g in c["gates"]))


def _table(checks: list[dict[str, Any]]) -> str:
    rows = "".join(
        f'<tr class="{html.escape(c["outcome"])}"><td>{html.escape(c["at"])}</td>'
        f"<td>{html.escape(c['position'])}</td><td>{html.escape(c['outcome'])}</td>"
        f"<td>{_gates_text(c['gates'])}</td></tr>"
        for c in checks
    )
    return (
        '<table id="checks"><thead><tr><th>at</th><th>position</th><th>then</th>'
        f"<th>gates</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _gates_text(gates: list[dict[str, Any]]) -> str:
    return "<br>".join(html.escape(g["message"] or g["verdict"]) for g in gates)


def _millis(moment: str) -> int:
    return int(datetime.fromisoformat(moment).timestamp() * 1000)


def _static(name: str) -> str:
    return (resources.files("canary.cli.dashboard") / "static" / name).read_text(encoding="utf-8")


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #212529; }
.verdict { font-weight: 600; }
.verdict.Succeeded { color: #2f9e44; } .verdict.RolledBack { color: #c92a2a; }
.chart { max-width: 720px; margin: 0.5em 0 1.5em; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #dee2e6;
  text-align: left; vertical-align: top; }
tr.rollback td { background: #fff5f5; } tr.promote td { background: #f4fce3; }
"""
