"""The controller process dies and comes back; two controllers share one Lease.

Aspects: SIGKILL at several points of a release (right after it writes a new position) and a
fresh process resumes: the VirtualService/DestinationRule states recorded from watches are the
planned ones, each split weight one contiguous run, each position once in the history, phase
Succeeded. With `--leader-elect`, a second controller stays passive (one Lease holder, every
reconcile and write from the leader) and takes over when the leader is killed, finishing the
release.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_helpers import logged, planned_states
from env_helpers import Env
from support.traffic import TrafficState, collapse

from canary.cli.offline import plan
from canary_sandbox.client import SandboxError
from canary_sandbox.stack import EXAMPLE

pytestmark = pytest.mark.slow

STABLE_V1 = TrafficState(0, 0.0, False, "v1")
LEASE = "canary-controller"


def planned_for(env: Env, body: dict[str, Any], tmp_path: Path) -> list[TrafficState]:
    rollout_file = tmp_path / "rollout.yaml"
    rollout_file.write_text(yaml.safe_dump(body))
    steps = plan(
        str(rollout_file),
        str(EXAMPLE / "virtualservice.yaml"),
        str(EXAMPLE / "destinationrule.yaml"),
    )
    return collapse([STABLE_V1, *planned_states(steps)])


def positions_of(status: dict[str, Any]) -> list[tuple[str, int]]:
    since = status["releaseStartedAt"]
    return [
        (h["stage"], h.get("step", 0))
        for h in status["history"]
        if h["time"] >= since and h.get("stage") not in (None, "waiting")
    ]


def assert_resumed_exactly(env: Env, version: str, planned: list[TrafficState]) -> None:
    recorder = env.recorder
    assert recorder is not None
    status = env.wait_for_phase(version, "Succeeded", "RolledBack", "Aborted")
    assert status["phase"] == "Succeeded", status.get("message")
    env.wait_for(lambda: recorder.states()[-1] == planned[-1], what="the final traffic write")
    assert collapse(recorder.states()) == planned
    weights = recorder.weights()
    assert weights == [0, 10, 25, 50, 75, 100, 0]
    for weight in (10, 25, 50, 75, 100):
        assert weights.count(weight) == 1  # one contiguous run each
    positions = positions_of(status)
    assert len(positions) == len(set(positions)), positions
    assert [stage for stage, _ in positions].count("split") == 5


def test_a_killed_controller_resumes_without_skipping_or_repeating(
    env: Env, tmp_path: Path
) -> None:
    version = env.new_version()
    body = env.rollout_body(version)
    planned = planned_for(env, body, tmp_path)
    env.record()
    controller = env.start_controller()
    env.client.apply(body)
    kill_points = [("headerCanary", 0), ("split", 25), ("split", 75)]
    for stage, weight in kill_points:
        env.wait_for_status(
            lambda s, stage=stage, weight=weight: (
                s.get("canaryVersion") == version
                and s.get("stage") == stage
                and s.get("canaryWeight") == weight
            ),
            what=f"{stage} at {weight} %",
            every=0.01,  # kill as close to the status write as we can: before its traffic write
        )
        controller.kill()
        assert controller.process is not None and controller.process.returncode == -9
        controller = env.start_controller()
    assert len(env.controllers) == len(kill_points) + 1
    assert_resumed_exactly(env, version, planned)


def test_a_second_controller_stays_passive_and_takes_over(env: Env, tmp_path: Path) -> None:
    args = ("--leader-elect", "--lease-namespace", env.namespace, "--log-level", "debug")
    first = env.start_controller(*args, name="first")
    second = env.start_controller(*args, name="second")

    def holder() -> str | None:
        try:
            return env.client.get("coordination.k8s.io/v1", "Lease", env.namespace, LEASE)[
                "spec"
            ].get("holderIdentity")
        except SandboxError:
            return None

    identity = env.wait_for(holder, what="a Lease holder")
    env.wait_for(
        lambda: logged(first.logs(), "became leader") or logged(second.logs(), "became leader"),
        what="a controller to log `became leader`",
    )
    leader, follower = (
        (first, second)
        if [r["identity"] for r in logged(first.logs(), "became leader")] == [identity]
        else (second, first)
    )
    assert [r["identity"] for r in logged(leader.logs(), "became leader")] == [identity]

    version = env.new_version()
    body = env.rollout_body(version)
    planned = planned_for(env, body, tmp_path)
    env.record()
    env.client.apply(body)
    env.wait_for_status(
        lambda s: s.get("canaryVersion") == version and s.get("canaryWeight") == 25,
        what="the 25 % split step",
    )
    # while both run: one Lease holder, and only it reconciles (and so writes)
    assert holder() == identity
    assert logged(follower.logs(), "became leader") == []
    assert logged(follower.logs(), "decided") == []
    assert [r for r in logged(leader.logs(), "decided") if r.get("rollout") == "ui"]
    assert not [r for r in follower.logs().splitlines() if '"reason"' in r]

    leader.kill()
    successor = env.wait_for(
        lambda: [r["identity"] for r in logged(follower.logs(), "became leader")],
        what="the second controller to take the Lease",
    )[0]
    assert successor != identity
    env.wait_for(lambda: holder() == successor, what="the Lease to name the new leader")
    assert_resumed_exactly(env, version, planned)
    assert logged(follower.logs(), "decided")
