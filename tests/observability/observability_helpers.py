"""Shared pieces of the observability tests: the dashboard's expressions with template
variables substituted, and metric names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "canary-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "canary-alerts.yaml"
ALERT_TESTS = ROOT / "deploy" / "prometheus" / "canary-alerts.test.yaml"

VARIABLES = {
    "${datasource}": "prometheus",
    "$__rate_interval": "1m",
    "$__range": "1h",
    "$namespace": "shop",
    "$rollout": "ui",
    "$service": "ui",
    "$success_gate": "success-rate",
    "$latency_gate": "p99-latency",
}
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.*),\s*(?P<label>\w+)\)$")
METRIC = re.compile(r"\b(canary_[a-z_]+|istio_[a-z_]+)\b")


def substitute(expr: str) -> str:
    for name in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(name, VARIABLES[name])
    assert "$" not in expr, f"an unknown template variable is left in {expr!r}"
    return expr


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_expressions() -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target, template variable query and annotation."""
    board = dashboard()
    found = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            found.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            match = LABEL_VALUES.match(query)
            found.append((f"variable {variable['name']}", match["selector"] if match else query))
    for annotation in board["annotations"]["list"]:
        if "expr" in annotation:
            found.append((f"annotation {annotation['name']}", annotation["expr"]))
    return [(where, substitute(expr)) for where, expr in found]
