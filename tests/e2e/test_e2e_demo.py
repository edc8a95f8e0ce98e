"""`canary demo -o json`, the one-command tour, run as a user runs it.

Aspects: the demo builds its own stack (sandbox, simulator, Prometheus, controller process),
exits 0, and its JSON summary says ok, v2 Succeeded and v3 RolledBack, with the stages walked
and the gate readings that decided each release.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from binary_support import require_binary
from e2e_support import CANARY

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("metrics", ["--prometheus", "--no-prometheus"])
def test_demo_releases_v2_and_rolls_back_v3(metrics: str) -> None:
    """With a real Prometheus, and with the controller reading the simulator directly (what
    the demo does on a machine without a `prometheus` binary)."""
    if metrics == "--prometheus":
        require_binary("prometheus")
    result = subprocess.run(
        [str(CANARY), "demo", "-o", "json", metrics],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["ok"] is True
    outcomes = {r["version"]: (r["outcome"], r["asExpected"]) for r in summary["releases"]}
    assert outcomes == {"v2": ("Succeeded", True), "v3": ("RolledBack", True)}

    v2, v3 = summary["releases"]
    stages = [s["stage"] for s in v2["stages"] if s["stage"]]
    assert stages[:2] == ["mirror", "headerCanary"] and "split" in stages
    assert {g["name"]: g["verdict"] for g in v2["gates"]}["success-rate"] == "pass"
    failing = {g["name"]: g for g in v3["gates"]}["success-rate"]
    assert failing["verdict"] == "fail"
    assert failing["value"] < 99.0
    assert "rolled back" in v3["message"]
