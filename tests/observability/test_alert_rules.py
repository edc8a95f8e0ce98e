"""The alert rules with Prometheus's own tools.

Aspects: `promtool check rules` accepts the file and finds the five alerts; `promtool test
rules` proves each fires on the situation it names (and not before): a stage held for over an
hour, two rollbacks in six hours, no reconcile for ten minutes, most PromQL queries failing,
releases waiting half an hour for a slot.
"""

from __future__ import annotations

import subprocess

import yaml
from observability_helpers import ALERT_TESTS, ALERTS
from support.binaries import require_binary

EXPECTED = {
    "CanaryReleaseStuck",
    "CanaryRepeatedRollbacks",
    "CanaryControllerNotReconciling",
    "CanaryPrometheusUnreachable",
    "CanaryReleasesWaitingForSlot",
}


def test_the_rules_name_the_five_situations() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    alerts = {rule["alert"] for group in groups for rule in group["rules"]}
    assert alerts == EXPECTED


def test_promtool_checks_the_rules() -> None:
    promtool = require_binary("promtool")
    done = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def test_promtool_unit_tests_fire_each_alert_when_it_should() -> None:
    promtool = require_binary("promtool")
    done = subprocess.run(
        [promtool, "test", "rules", ALERT_TESTS.name],
        capture_output=True,
        text=True,
        check=False,
        cwd=ALERT_TESTS.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    tested = yaml.safe_load(ALERT_TESTS.read_text())["tests"][0]["alert_rule_test"]
    assert {case["alertname"] for case in tested} == EXPECTED
