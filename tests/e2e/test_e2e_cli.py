"""The `canary` CLI, run as a subprocess with --kubeconfig, against the live controller.

Aspects: `promote` skips the current wait (a 10-minute mirror moves to the header canary at
once); `promote --full` goes through the safe release sequence (canary 100, the stable subset
moves, then stable 100) to Succeeded; `abort` mid-split leaves stable 100 and phase Aborted;
`pause` holds the weight across at least three analyses and `resume` carries on to Succeeded;
`retry` after an automatic rollback starts again from the first stage and succeeds once the
canary is fixed; every exit code of `wait` (0 succeeded, 1 rolled back or aborted, 2 timeout,
3 paused at a `manualBefore: [split]` gate, 0 there with --paused-ok); `get -o json` parses and
equals the stored object; `kubectl canary get` through kubectl's plugin discovery.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest
from e2e_helpers import errors_in_window
from env_helpers import CANARY, Env
from support.binaries import require_binary
from support.traffic import HEADER_ROUTE, MANAGED_ROUTE, TrafficState, collapse, http_route, traffic

from canary_sandbox.stack import SERVICE, ControllerProcess

pytestmark = pytest.mark.slow

STABLE_V1 = TrafficState(0, 0.0, False, "v1")


def long_stages(*stages: str) -> Any:
    """A spec change: the named stages last ten minutes, so only a person moves them on."""

    def change(spec: dict[str, Any]) -> None:
        for stage in stages:
            spec["stages"][stage]["duration"] = "10m"

    return change


def ok(result: subprocess.CompletedProcess[str], code: int = 0) -> str:
    assert result.returncode == code, (
        f"exit {result.returncode}, wanted {code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    )
    return result.stdout + result.stderr


def release_positions(status: dict[str, Any]) -> list[tuple[str, int]]:
    since = status["releaseStartedAt"]
    return [
        (h["stage"], h.get("step", 0))
        for h in status["history"]
        if h["time"] >= since and h.get("stage") not in (None, "waiting")
    ]


def test_promote_skips_the_wait_and_promote_full_releases_safely(env: Env) -> None:
    version = env.new_version()
    recorder = env.record()
    env.start_controller()
    env.release(version, long_stages("mirror", "headerCanary"))
    env.wait_for_status(lambda s: s.get("stage") == "mirror", what="the mirror stage")
    env.wait_for(lambda: recorder.states()[-1].mirror_percent == 100, what="the mirror write")

    text = ok(env.canary("promote", SERVICE))
    assert "headerCanary" in text or "header" in text
    status = env.status()  # promote returns once the controller has answered
    assert (status["stage"], status["handledRequest"]["action"]) == ("headerCanary", "promote")
    env.wait_for(lambda: recorder.states()[-1].header_route, what="the header route")

    ok(env.canary("promote", SERVICE, "--full"))
    status = env.status()
    assert status["handledRequest"]["action"] == "promote-full"
    # at release: unless its settle delay (one interval) ended it before this read; the
    # positions below show that release came straight after the header canary either way
    assert status.get("stage") == "release" or status["phase"] == "Succeeded", status
    ok(env.canary("wait", SERVICE, "--timeout", "60s"), 0)
    status = env.status()
    assert (status["phase"], status["stableVersion"]) == ("Succeeded", version)
    env.wait_for(lambda: recorder.states()[-1].stable_version == version, what="the last write")
    assert collapse(recorder.states()) == [
        STABLE_V1,
        TrafficState(0, 100.0, False, "v1"),
        TrafficState(0, 0.0, True, "v1"),
        TrafficState(100, 0.0, False, "v1"),  # every request on the canary, by the canary subset
        TrafficState(100, 0.0, False, version),  # the stable subset moves while nothing uses it
        TrafficState(0, 0.0, False, version),
    ]
    assert [stage for stage, _ in release_positions(status)] == [
        "mirror",
        "headerCanary",
        "release",
        "release",
    ]


def test_abort_mid_split_returns_everything_to_stable(env: Env) -> None:
    version = env.new_version()
    recorder = env.record()
    env.start_controller()
    env.release(version, lambda spec: spec["stages"]["split"].update(interval="10s"))
    env.wait_for(lambda: recorder.states()[-1].canary_weight == 10, what="the 10 % split write")

    ok(env.canary("abort", SERVICE))
    status = env.status()
    assert status["phase"] == "Aborted"
    env.wait_for(lambda: recorder.states()[-1] == STABLE_V1, what="the abort's traffic write")
    vs = env.virtual_service()
    managed = http_route(vs, MANAGED_ROUTE)
    assert managed is not None
    assert [e["destination"]["subset"] for e in managed["route"]] == ["stable"]
    assert "mirror" not in managed
    assert http_route(vs, HEADER_ROUTE) is None
    assert [e["type"] for e in env.events("Aborted")] == ["Warning"]

    assert "Aborted" in ok(env.canary("wait", SERVICE, "--timeout", "30s"), 1)

    shown = json.loads(ok(env.canary("get", SERVICE, "-o", "json")))
    stored = env.rollout()
    assert shown["status"] == stored["status"]
    assert shown["spec"] == stored["spec"]
    assert shown["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]


def test_pause_holds_the_weight_and_resume_finishes(env: Env) -> None:
    version = env.new_version()
    controller = env.start_controller()
    # five-second steps: the pause lands in the split however long the CLI takes to start
    # (with one-second steps a loaded machine saw the release end first)
    env.release(version, lambda spec: spec["stages"]["split"].update(interval="5s"))
    env.wait_for_status(lambda s: s.get("stage") == "split", what="the split stage")

    ok(env.canary("pause", SERVICE))
    paused = env.status()
    assert (paused["phase"], paused["pausedReason"]) == ("Paused", "user")
    weight = paused["canaryWeight"]
    checks_before = checks(controller)

    def three_analyses_while_paused() -> bool:
        status = env.status()
        assert (status["phase"], status["canaryWeight"]) == ("Paused", weight)
        # Passing checks while paused repeat the stored check, so they are counted, not stored.
        return checks(controller) >= checks_before + 3

    env.wait_for(three_analyses_while_paused, what="three analyses while paused")
    assert traffic(env.virtual_service()).canary_weight == weight

    ok(env.canary("resume", SERVICE))
    assert env.status()["phase"] == "Progressing"
    ok(env.canary("wait", SERVICE, "--timeout", "90s"), 0)
    status = env.status()
    assert (status["phase"], status["stableVersion"]) == ("Succeeded", version)
    positions = collapse(release_positions(status))  # a pause adds entries, not positions
    assert len(positions) == len(set(positions)), positions  # the pause repeated nothing
    assert ("split", 4) in positions


def test_retry_after_a_rollback_starts_from_the_first_stage(env: Env) -> None:
    version = env.new_version()
    env.stack.simulator.set_version(env.namespace, SERVICE, version, error_rate=0.5)
    env.start_controller()
    env.release(version)
    assert "RolledBack" in ok(env.canary("wait", SERVICE, "--timeout", "60s"), 1)
    rolled_back = env.status()
    assert rolled_back["phase"] == "RolledBack"

    env.stack.simulator.set_version(env.namespace, SERVICE, version, error_rate=0.0)
    env.wait_for(
        lambda: errors_in_window(env.stack.prometheus.url, version, namespace=env.namespace) == 0,
        what="the 5xx to leave Prometheus's window",
    )
    ok(env.canary("retry", SERVICE))
    retried = env.status()
    assert retried["handledRequest"]["action"] == "retry"
    assert retried["releaseStartedAt"] > rolled_back["releaseStartedAt"]

    ok(env.canary("wait", SERVICE, "--timeout", "90s"), 0)
    status = env.status()
    assert (status["phase"], status["stableVersion"]) == ("Succeeded", version)
    positions = release_positions(status)
    assert positions[0] == ("mirror", 0)
    assert [stage for stage, _ in collapse(positions)][:3] == ["mirror", "headerCanary", "split"]


def test_wait_exit_codes_at_a_manual_gate(env: Env) -> None:
    version = env.new_version()
    env.start_controller()

    def gated(spec: dict[str, Any]) -> None:
        long_stages("mirror")(spec)
        spec["promotion"]["manualBefore"] = ["split"]

    env.release(version, gated)
    env.wait_for_status(lambda s: s.get("stage") == "mirror", what="the mirror stage")
    assert "timed out" in ok(env.canary("wait", SERVICE, "--timeout", "2s"), 2)

    ok(env.canary("promote", SERVICE))  # past the long mirror; the header canary runs 2 s
    assert "promote" in ok(env.canary("wait", SERVICE, "--timeout", "60s"), 3)
    status = env.status()
    assert (status["phase"], status["pausedReason"]) == ("Paused", "manualGate")
    assert status["stage"] == "headerCanary"
    ok(env.canary("wait", SERVICE, "--timeout", "10s", "--paused-ok"), 0)
    ok(env.canary("wait", SERVICE, "--timeout", "10s", "--for", "paused"), 0)

    ok(env.canary("promote", SERVICE))
    assert env.status()["stage"] == "split"
    ok(env.canary("wait", SERVICE, "--timeout", "60s"), 0)
    assert env.status()["phase"] == "Succeeded"


def test_kubectl_finds_the_plugin(env: Env) -> None:
    kubectl = require_binary("kubectl")
    env.start_controller()
    env.release("v1")  # the live version: nothing to release, Succeeded at once
    env.wait_for_phase("v1", "Succeeded")
    path = f"{CANARY.parent}{os.pathsep}{os.environ.get('PATH', '')}"
    environ = {**os.environ, "PATH": path, "KUBECONFIG": str(env.kubeconfig)}

    def kubectl_run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [kubectl, *args], check=False, capture_output=True, text=True, env=environ, timeout=60
        )

    assert "kubectl-canary" in ok(kubectl_run("plugin", "list"))
    table = ok(kubectl_run("canary", "get", "-n", env.namespace))
    assert SERVICE in table and "Succeeded" in table
    shown = json.loads(ok(kubectl_run("canary", "get", SERVICE, "-n", env.namespace, "-o", "json")))
    assert shown["status"] == env.rollout()["status"]
    explicit = ok(
        kubectl_run(
            "canary", "get", SERVICE, "-n", env.namespace, "--kubeconfig", str(env.kubeconfig)
        )
    )
    assert "Succeeded" in explicit


def checks(controller: ControllerProcess) -> float:
    return controller.metric("canary_analysis_checks_total", rollout=SERVICE)
