"""`canary record` and `canary backtest` against a real Prometheus and the simulator.

Aspects: a healthy canary recorded then backtested would have succeeded, with every check
listed; a canary with ten times stable's errors would have rolled back, naming the gate; a
backtest straight from Prometheus gives the same outcome as one from its recording; the
recording holds the compare gates' counters and the fixed gates' exact queries; user errors
are one sentence.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from analysis_helpers import ERROR_RATE, rollout
from support.browser import chrome
from support.scraped import Sandbox
from typer.testing import CliRunner

from canary.cli.app import app

FIXED = {"name": "success-rate", "successRate": {"min": 90.0}}
QUICK_SPLIT = {"steps": [50], "interval": "3s"}


def rollout_file(tmp_path: Path, service: str, url: str) -> str:
    subject = rollout(service, url, gates=[ERROR_RATE, FIXED], split=QUICK_SPLIT)
    body = subject.wire()
    body["spec"]["promotion"] = {"settleDelay": "1s"}
    path = tmp_path / f"{service}.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


MIN_SPAN_SECONDS = 20.0  # enough simulated traffic for a whole quick release


def span(sandbox: Sandbox) -> list[str]:
    """--from/--to over the traffic so far, waiting until there is enough of it."""
    start = sandbox.started.timestamp() + 1
    time.sleep(max(0.0, start + MIN_SPAN_SECONDS - datetime.now(UTC).timestamp()))
    return ["--from", f"{start:.0f}", "--to", f"{datetime.now(UTC).timestamp():.0f}"]


def record(tmp_path: Path, sandbox: Sandbox, service: str) -> tuple[str, str]:
    path = rollout_file(tmp_path, service, sandbox.url)
    output = str(tmp_path / f"{service}.json")
    result = CliRunner().invoke(app, ["record", "--rollout", path, *span(sandbox), "-o", output])
    assert result.exit_code == 0, result.output
    return path, output


def backtest(*args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(app, ["backtest", *args, "-o", "json"])
    return result.exit_code, json.loads(result.stdout)


def test_a_healthy_recording_would_have_succeeded(tmp_path: Path, sandbox: Sandbox) -> None:
    path, recording = record(tmp_path, sandbox, "healthy")
    code, report = backtest(path, "--recording", recording)
    assert (code, report["phase"]) == (0, "Succeeded"), report
    checks = report["checks"]
    assert isinstance(checks, list) and len(checks) >= 3
    assert {g["name"] for g in checks[-1]["gates"]} == {"errors-vs-stable", "success-rate"}


def test_a_tenfold_recording_would_have_rolled_back(tmp_path: Path, sandbox: Sandbox) -> None:
    path, recording = record(tmp_path, sandbox, "tenfold")
    result = CliRunner().invoke(app, ["backtest", path, "--recording", recording])
    assert result.exit_code == 1, result.output
    assert "would have rolled back" in result.output
    assert "gate errors-vs-stable fail" in result.output
    code, report = backtest(path, "--recording", recording)
    assert (code, report["phase"]) == (1, "RolledBack")
    assert report["furthest"] == "split step 1 (50%)"


def test_straight_from_prometheus_matches_the_recording(tmp_path: Path, sandbox: Sandbox) -> None:
    path = rollout_file(tmp_path, "tenfold", sandbox.url)
    times = span(sandbox)
    output = str(tmp_path / "tenfold.json")
    recorded = CliRunner().invoke(app, ["record", "--rollout", path, *times, "-o", output])
    assert recorded.exit_code == 0, recorded.output
    live = backtest(path, "--prometheus", sandbox.url, *times)
    replayed = backtest(path, "--recording", output)
    assert live == replayed
    assert live[1]["phase"] == "RolledBack"


def test_the_recording_holds_counters_and_exact_queries(tmp_path: Path, sandbox: Sandbox) -> None:
    _, recording = record(tmp_path, sandbox, "healthy")
    body = json.loads(Path(recording).read_text())
    assert body["format"] == "canary.dev/recording/v1"
    assert body["stableVersion"] == "v1"
    assert len(body["counters"]) == 4  # requests and errors of canary and stable
    assert any("response_code!~" in query for query in body["queries"])


def test_user_errors_are_one_sentence(tmp_path: Path, sandbox: Sandbox) -> None:
    path = rollout_file(tmp_path, "healthy", sandbox.url)
    runner = CliRunner()
    neither = runner.invoke(app, ["backtest", path])
    assert neither.exit_code == 1
    assert "give exactly one of --recording FILE or --prometheus URL" in neither.output
    missing = runner.invoke(app, ["backtest", path, "--recording", str(tmp_path / "none.json")])
    assert "cannot be read" in missing.output and "Traceback" not in missing.output
    no_span = runner.invoke(app, ["backtest", path, "--prometheus", sandbox.url])
    assert "--prometheus needs --from and --to" in no_span.output


def test_the_html_page_charts_the_checks_and_marks_the_rollback(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    """`--html`: the tenfold recording's page, opened in chromium, draws the traffic chart and
    one chart per gate with the checks as points, and marks the rollback."""
    from selenium.webdriver.common.by import By

    path, recording = record(tmp_path, sandbox, "tenfold")
    page = tmp_path / "report.html"
    result = CliRunner().invoke(
        app, ["backtest", path, "--recording", recording, "--html", str(page)]
    )
    assert result.exit_code == 1, result.output
    driver = chrome()
    try:
        driver.get(page.as_uri())
        charts = driver.find_elements(By.CSS_SELECTOR, "#charts .chart")
        titles = [chart.get_attribute("data-chart") for chart in charts]
        assert titles == ["canary traffic", "errors-vs-stable", "success-rate"]
        for chart in charts:
            assert chart.find_elements(By.CSS_SELECTOR, "svg .cc-marker.cc-rollback")
        assert charts[0].find_elements(By.CSS_SELECTOR, "svg .cc-point")
        assert "would have rolled back" in driver.find_element(By.ID, "verdict").text
    finally:
        driver.quit()
