"""`canary dashboard --prometheus`: each gate's line over a release, read from a real
Prometheus scraping the simulator (`dashboard.ranges.RangeReader`).

Aspects: a running release gets a line per gate with a point per analysis interval, measured as
the controller measures (the tenfold canary's error comparison fails its threshold all along,
its success rate stays near 95 %); a succeeded release keeps its fixed gates' lines but not the
comparison with a stable version the status no longer names; a Prometheus that does not answer
is one sentence on the page, not an error; lines are read again only after `REFRESH`.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

from analysis_helpers import ERROR_RATE, rollout
from support.scraped import Sandbox

from canary.cli.dashboard.ranges import REFRESH, RangeReader
from canary.testing import ManualClock

FIXED = {"name": "success-rate", "successRate": {"min": 99.0}}


def running_release(sandbox: Sandbox, service: str, **status: Any) -> dict[str, Any]:
    """`service`'s release of v2, in its split stage since Prometheus began scraping."""
    started = sandbox.started + timedelta(seconds=1)
    body = rollout(service, sandbox.url, gates=[ERROR_RATE, FIXED], interval="2s").wire()
    body["status"] |= {
        "phase": "Progressing",
        "stage": "split",
        "releaseStartedAt": started.isoformat(),
        "stageStartedAt": started.isoformat(),
        "history": [{"time": started.isoformat(), "phase": "Progressing", "stage": "split"}],
        **status,
    }
    body["metadata"]["resourceVersion"] = "1"
    return body


def test_a_running_release_has_a_line_per_gate(sandbox: Sandbox) -> None:
    reader = RangeReader(sandbox.url)
    lines = reader.read(running_release(sandbox, "tenfold"))
    assert lines.error is None
    assert set(lines.points) == {"errors-vs-stable", "success-rate"}
    errors, success = lines.points["errors-vs-stable"], lines.points["success-rate"]
    assert len(success) >= 3 and len(errors) >= 3
    assert all(b[0] - a[0] == 2000 for a, b in itertools.pairwise(success))
    assert all(90 < value < 98 for _, value in success)  # the canary answers 5 % 5xx
    assert all(value > 50 for _, value in errors[1:])  # tenfold stable's: past maxIncrease 50
    assert lines.thresholds["success-rate"].startswith(">= 99")


def test_a_succeeded_release_keeps_its_fixed_gates_only(sandbox: Sandbox) -> None:
    ended = datetime.now(UTC).isoformat()
    body = running_release(sandbox, "healthy", phase="Succeeded", stage=None, stableVersion="v2")
    body["status"]["history"].append({"time": ended, "phase": "Succeeded"})
    lines = RangeReader(sandbox.url).read(body)
    assert lines.error is None
    assert list(lines.points) == ["success-rate"]
    assert lines.points["success-rate"] and all(v > 98 for _, v in lines.points["success-rate"])


def test_a_prometheus_that_does_not_answer_is_one_sentence(sandbox: Sandbox) -> None:
    lines = RangeReader("http://127.0.0.1:9").read(running_release(sandbox, "healthy"))
    assert lines.points == {}
    assert lines.error is not None and lines.error.startswith("no gate lines from Prometheus: ")
    assert "\n" not in lines.error


def test_lines_are_read_again_only_after_the_refresh(sandbox: Sandbox) -> None:
    clock = ManualClock(datetime.now(UTC))
    reader = RangeReader(sandbox.url, clock)
    body = running_release(sandbox, "healthy")
    first = reader.read(body)
    clock.now += REFRESH / 2
    assert reader.read(body) is first
    clock.now += REFRESH
    again = reader.read(body)
    assert again is not first and again.error is None
