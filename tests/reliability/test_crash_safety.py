"""SIGKILL the controller over and over during a release: nothing is skipped, nothing moves
back, no step is cut short, nothing advances on a failing check, and the end is right.

A seeded run (CANARY_CRASH_SEED, default 7) kills the controller process at random moments (at
least 30 times) while it releases `ui` v2 with real traffic and a real Prometheus, with a
stretch in the middle where the canary fails its gates (failureLimit is high, so it holds).
From every stored version of the VirtualService and the Rollout:
- the traffic states are exactly the planned ones, in order, each reached once;
- every position got at least its required passing checks, counted from the Rollout's own
  analysis records (a check belongs to the position in force when it ran);
- every position change happened on a passing check (or is part of the release sequence);
- the release ends Succeeded with stable 100 on v2.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from reliability_helpers import (
    checks_by_position,
    position,
    store_recorder,
    stored_rollout,
    wait_until_ready,
)
from support.binaries import require_binary
from support.polling import wait_until
from support.stacks import example_stack
from support.traffic import collapse, routing

from canary.core.model import Rollout
from canary.core.path import required_checks
from canary.core.spec import Stage
from canary_sandbox.stack import (
    ControllerProcess,
    fast_rollout,
)

MIN_KILLS = 30
SEED = int(os.environ.get("CANARY_CRASH_SEED", "7"))
STEPS = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
PLANNED = [
    (0, 0.0, False),
    (0, 100.0, False),
    (0, 0.0, True),
    *[(w, 0.0, False) for w in STEPS],
    (0, 0.0, False),
]


def rollout_under_test(prometheus_url: str) -> dict[str, Any]:
    rollout = fast_rollout(1.0, prometheus_url)
    spec = rollout["spec"]
    spec["stages"]["split"] = {"steps": STEPS, "interval": "2s"}
    spec["analysis"]["failureLimit"] = 1000  # failing checks hold; they never roll back here
    return rollout


@pytest.fixture
def prometheus_binary() -> None:
    require_binary("prometheus")


def test_thirty_kills_never_skip_repeat_or_rush_a_step(
    tmp_path: Path, prometheus_binary: None
) -> None:
    rng = random.Random(SEED)
    kills = 0
    with contextlib.ExitStack() as stack:
        started = stack.enter_context(example_stack(tmp_path))
        api, client = started.api, started.client
        simulator, prometheus = started.simulator, started.prometheus
        assert api is not None
        services = stack.enter_context(store_recorder(api, "virtualservices"))
        rollouts = stack.enter_context(store_recorder(api, "rollouts"))
        rollout = rollout_under_test(prometheus.url)
        client.apply(rollout)

        def failed_checks() -> int:
            return sum(v.count("fail") for v in checks_by_position(rollouts.versions).values())

        def sabotage(done: threading.Event) -> None:
            """From 30 % canary weight until three checks have failed, v2 answers 30 % 5xx."""
            while not done.wait(0.1):
                weight = int(stored_rollout(api).get("status", {}).get("canaryWeight", 0))
                broken = weight >= 30 and failed_checks() < 3
                simulator.set_version("shop", "ui", "v2", error_rate=0.3 if broken else 0.0)

        done = threading.Event()
        stack.callback(done.set)
        threading.Thread(target=sabotage, args=(done,), daemon=True).start()
        while True:
            controller = ControllerProcess(
                tmp_path / "kubeconfig", tmp_path / f"controller-{kills}.log"
            ).start()
            wait_until_ready(controller)  # kill it while it works, however slow its start-up
            time.sleep(rng.uniform(0.1, 2.0))
            controller.kill()
            kills += 1
            assert kills < 200, "the release made no progress under repeated kills"
            if kills >= MIN_KILLS and failed_checks() >= 3:
                with ControllerProcess(tmp_path / "kubeconfig", tmp_path / "last.log"):
                    wait_until(
                        lambda: stored_rollout(api).get("status", {}).get("phase") == "Succeeded",
                        "the release to finish after the kills",
                        120,
                        every=0.05,
                    )
                    wait_until(
                        lambda: routing(services.versions[-1]) == PLANNED[-1],
                        "stable 100",
                        30,
                        every=0.05,
                    )
                break

    states = [routing(vs) for vs in services.versions]
    assert collapse(states) in (PLANNED, PLANNED[1:]), str(collapse(states))
    spec = Rollout.model_validate(rollout).spec
    checks = checks_by_position(rollouts.versions)
    for (stage, step), verdicts in checks.items():
        if stage in ("mirror", "headerCanary", "split"):
            needed = required_checks(spec, Stage(stage))
            assert verdicts.count("pass") >= needed, (stage, step, verdicts)
    statuses = [obj.get("status", {}) for obj in rollouts.versions]
    for before, after in itertools.pairwise(statuses):
        moved = position(before)[1:] != position(after)[1:]
        analysed = before.get("stage") in ("mirror", "headerCanary", "split")
        if moved and analysed and after.get("phase") == "Progressing":
            assert (after.get("lastAnalysis") or {}).get("countedAs") == "pass", after
    assert any(v == "fail" for verdicts in checks.values() for v in verdicts)
    final = stored_rollout(api)["status"]
    assert final["stableVersion"] == "v2"
    print(f"kills: {kills}, checks: {sum(len(v) for v in checks.values())}, seed {SEED}")
