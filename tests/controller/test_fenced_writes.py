"""A replica that stops being sure of its Lease in the middle of a reconcile writes nothing more
of it (ON_BOTH): never the traffic without the status. `benchmarks/failover.py` caught a
replica, whose renewal was late on a loaded machine, skip the status write of a step and still
write the step's VirtualService: the canary got 40 % for two minutes while the status said 35 %,
and the next holder restarted the step.

Covers: the Lease lapsing while the gates are measured writes neither the step's traffic nor
its status (FencedError), and the same reconcile with the Lease steps as usual; lapsing right
after the status write leaves the traffic for the next reconcile, which brings the
VirtualService to the status's weight.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import pytest
from controller_helpers import Env, run_until, start
from support.controlplane import ON_BOTH

from canary.controller.reconcile import FencedError


def canary_weight(env: Env) -> int:
    route = env.vs()["spec"]["http"][-1]["route"]
    return sum(d.get("weight", 0) for d in route if d["destination"]["subset"] == "canary")


def at_split(env: Env) -> threading.Event:
    """The release at split, and a lease that lapses once the returned event is set."""
    start(env)
    run_until(env, lambda status: status.get("stage") == "split")
    lapsed = threading.Event()
    env.reconciler.may_write = lambda key: not lapsed.is_set()
    return lapsed


@ON_BOTH
def test_a_lease_lapsing_while_the_gates_are_measured_writes_nothing(env: Env) -> None:
    lapsed = at_split(env)
    measure = env.metrics.evaluate

    def measured_as_the_lease_lapses(rollout: Any) -> Any:
        lapsed.set()
        return measure(rollout)

    stepped = 0
    for _ in range(60):
        status, weight = env.rollout()["status"], canary_weight(env)
        env.clock.advance(10)
        env.metrics.evaluate = measured_as_the_lease_lapses  # type: ignore[method-assign]
        with pytest.raises(FencedError):
            env.reconcile()
        assert (env.rollout()["status"], canary_weight(env)) == (status, weight)
        env.metrics.evaluate = measure  # type: ignore[method-assign]
        lapsed.clear()
        env.reconcile()  # the same decision, with the Lease: written whole
        if env.rollout()["status"].get("stepIndex") != status.get("stepIndex"):
            stepped += 1
            assert canary_weight(env) == env.rollout()["status"]["canaryWeight"]
            break
    assert stepped == 1


@ON_BOTH
def test_a_lease_lapsing_after_the_status_leaves_the_traffic_to_the_next_reconcile(
    env: Env,
) -> None:
    lapsed = at_split(env)
    patch = env.reconciler.cluster.patch_rollout_status

    def patched_as_the_lease_lapses(*args: Any, **kwargs: Any) -> Any:
        answer = patch(*args, **kwargs)
        lapsed.set()
        return answer

    env.reconciler.cluster.patch_rollout_status = patched_as_the_lease_lapses  # type: ignore[method-assign]
    for _ in range(60):
        status, weight = env.rollout()["status"], canary_weight(env)
        env.clock.advance(10)
        with contextlib.suppress(FencedError):  # raised once a write comes after the status
            env.reconcile()
        lapsed.clear()
        if env.rollout()["status"].get("stepIndex") != status.get("stepIndex"):
            assert canary_weight(env) == weight  # the step's traffic was not written
            env.reconciler.cluster.patch_rollout_status = patch  # type: ignore[method-assign]
            env.reconcile()
            assert canary_weight(env) == env.rollout()["status"]["canaryWeight"]
            return
    raise AssertionError("the release never stepped")
