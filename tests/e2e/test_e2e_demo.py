"""`canary demo -o json`, the one-command tour, run as a user runs it.

Aspects: the demo builds its own stack (sandbox, simulator, Prometheus, controller process),
exits 0, and its JSON summary says ok, v2 Succeeded and v3 RolledBack, with the stages walked
and the gate readings that decided each release. With `--kubeconfig` the same releases run on
the real control plane (examples/ui installed by the demo, its Deployments made ready by kwok's
Pods), with the same summary; what it installed stays in its namespace.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from env_helpers import CANARY
from support.binaries import require_binary
from support.controlplane import namespace_name

from canary_sandbox.client import SandboxClient
from canary_sandbox.controlplane import ControlPlane
from canary_sandbox.stack import SERVICE, delete_example

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("metrics", ["--prometheus", "--no-prometheus"])
def test_demo_releases_v2_and_rolls_back_v3(metrics: str) -> None:
    """With a real Prometheus, and with the controller reading the simulator directly (what
    the demo does on a machine without a `prometheus` binary)."""
    if metrics == "--prometheus":
        require_binary("prometheus")
    assert_demo_passed(demo("-o", "json", metrics))


def test_demo_on_a_real_control_plane(control_plane: ControlPlane, tmp_path: Path) -> None:
    require_binary("prometheus")
    kubeconfig = control_plane.write_kubeconfig(tmp_path / "kubeconfig")
    namespace = namespace_name("demo")
    try:
        summary = demo("-o", "json", "--kubeconfig", str(kubeconfig), "-n", namespace)
        assert_demo_passed(summary)
        client = SandboxClient.from_kubeconfig(kubeconfig)
        left = client.get("canary.dev/v1alpha1", "Rollout", namespace, SERVICE)
        assert (left["status"]["phase"], left["status"]["stableVersion"]) == ("RolledBack", "v2")
        ready = client.get("apps/v1", "Deployment", namespace, "ui-v3")["status"]
        assert ready.get("readyReplicas") == 2  # from kwok's Pods: the demo never sets status
    finally:
        delete_example(SandboxClient.from_kubeconfig(kubeconfig), namespace)


def demo(*args: str) -> Any:
    """`canary demo ARGS` as a user runs it; its JSON summary once it exited 0."""
    result = subprocess.run(
        [str(CANARY), "demo", *args], check=False, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


def assert_demo_passed(summary: Any) -> None:
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
