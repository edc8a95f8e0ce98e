"""A replica that takes Rollouts over (a shard gained, or elected) reconciles each first from
the Rollout as stored, not as its cache holds it (ON_BOTH). Its watch may not yet have
delivered the last writes of the replica that held them: `benchmarks/failover.py` caught a new
shard holder taking a release back a step from its stale cache, and the same stale read would
undo a rollback. Here the cache holds a release at split while the API holds it RolledBack.
"""

from __future__ import annotations

import threading

from controller_helpers import Env, run_until, start
from support.controlplane import ON_BOTH
from support.polling import wait_until

from canary.controller.runtime import Controller
from canary.controller.telemetry import Telemetry
from canary.core.status import Verdict

KEY_NAME = "ui"


def rolled_back_behind_a_stale_cache(env: Env) -> Controller:
    """The release rolled back by "the other replica" (the env's reconciler), and a controller
    whose cache still holds it at split."""
    start(env)
    run_until(env, lambda status: status.get("stage") == "split")
    stale = env.rollout()
    env.metrics.verdict = Verdict.FAIL
    run_until(env, lambda status: status.get("phase") == "RolledBack")
    controller = Controller(env.cluster, env.reconciler, telemetry=Telemetry())
    controller.rollouts.put(stale)
    return controller


def work_once(controller: Controller, key: str) -> None:
    worker = threading.Thread(target=controller._work, daemon=True)
    worker.start()
    wait_until(lambda: len(controller.queue) == 0, "the take-over's reconcile", 10)
    controller.queue.shut_down()
    worker.join(10)
    assert not worker.is_alive() and key not in controller._taken_over


@ON_BOTH
def test_a_rollout_taken_over_is_reconciled_as_stored(env: Env) -> None:
    controller = rolled_back_behind_a_stale_cache(env)
    key = f"{env.namespace}/{KEY_NAME}"
    rolled_back, routes = env.rollout(), env.vs()["spec"]

    controller._take_over([key])
    work_once(controller, key)

    assert env.rollout()["status"]["phase"] == "RolledBack"
    assert env.rollout()["status"].get("stage") == rolled_back["status"].get("stage")
    assert env.vs()["spec"] == routes  # no traffic back to the canary
    cached = controller.rollouts.get(env.namespace, KEY_NAME)
    assert cached is not None and cached["status"]["phase"] == "RolledBack"
