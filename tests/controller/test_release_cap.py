"""--max-concurrent-releases: the registry of release slots, and releases beyond the cap.

Covers: `ReleaseSlots` (many threads racing for the last slot: exactly one wins; an older
version of a Rollout never overrides a newer one; a slot frees when its release ends, when a
claim began nothing and when the Rollout is deleted; the longest waiting are woken first, as
many as slots freed). The Reconciler with a cap of 1 on three Rollouts (ON_BOTH, a manual
clock): at every stored moment at most one release is under way, the others wait in Pending
with the reason in their message and condition and no canary traffic, each begins after the
previous ends, all end Succeeded. The runtime (an in-process Controller on the sandbox): the
same driven by its own ticks and wake-ups, checked from every recorded Rollout write; and a
controller restarted mid-release: the running release keeps its slot, the waiting one waits.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from controller_helpers import Env
from support.controller import in_process_controller
from support.controlplane import ON_BOTH
from support.polling import wait_until
from support.rollouts import quick_rollout
from support.traffic import weights

from canary.controller.main import release_slots
from canary.controller.reconcile import Reconciler
from canary.controller.slots import ReleaseSlots
from canary.controller.telemetry import Telemetry
from canary.controller.workqueue import WorkQueue
from canary.core.status import Verdict, wire_holds_release_slot
from canary.mesh.istio import IstioRouter
from canary.testing import FixedVerdicts
from canary_sandbox.recorder import StoreRecorder
from canary_sandbox.stack import delete_example, example_release, install_example

Obj = dict[str, Any]
WAITING = (
    "waiting for a release slot: 1 of 1 concurrent releases are running (--max-concurrent-releases)"
)


def rollout_obj(
    namespace: str, version: str = "1", phase: str = "Pending", stage: str = "waiting"
) -> Obj:
    return {
        "metadata": {"namespace": namespace, "name": "ui", "resourceVersion": version},
        "status": {"phase": phase, "stage": stage},
    }


# ---------------------------------------------------------------- the registry


def race_for_one_slot(contenders: int) -> tuple[ReleaseSlots, list[str]]:
    """`contenders` threads, released at once, each claiming the last of 3 slots."""
    slots = ReleaseSlots(3)
    slots.observe(rollout_obj("a", phase="Progressing", stage="split"))
    slots.observe(rollout_obj("b", phase="Progressing", stage="split"))
    barrier = threading.Barrier(contenders)
    granted: list[str] = []

    def race(key: str) -> None:
        barrier.wait()
        if slots.claim(key).granted:
            granted.append(key)

    threads = [threading.Thread(target=race, args=(f"ns/r{n}",)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return slots, granted


def test_threads_racing_for_the_last_slot_exactly_one_wins() -> None:
    for _ in range(20):
        slots, granted = race_for_one_slot(16)
        assert len(granted) == 1
        assert slots.running() == 3
        assert len(slots.waiting()) == 15


def test_a_release_that_began_keeps_its_slot_past_its_claim() -> None:
    slots = ReleaseSlots(1)
    assert slots.claim("a/ui").granted
    slots.observe(rollout_obj("a", "2", "Progressing", "mirror"))  # the status write
    slots.unclaim("a/ui")
    assert slots.running() == 1
    assert not slots.claim("b/ui").granted


def test_an_older_version_never_overrides_a_newer_one() -> None:
    slots = ReleaseSlots(1)
    slots.observe(rollout_obj("a", "7", "Progressing", "split"))
    slots.observe(rollout_obj("a", "5", "Pending", "waiting"))  # a late event
    assert slots.running() == 1
    slots.observe(rollout_obj("a", "9", "Succeeded", ""))
    assert slots.running() == 0


def test_freed_slots_wake_the_longest_waiting_first() -> None:
    woken: list[str] = []
    slots = ReleaseSlots(2, on_free=woken.append)
    slots.observe(rollout_obj("a", "1", "Progressing", "split"))
    slots.observe(rollout_obj("b", "1", "Paused", "split"))
    for key in ("c/ui", "d/ui", "e/ui"):
        assert not slots.claim(key).granted
    assert slots.waiting() == ["c/ui", "d/ui", "e/ui"]
    slots.observe(rollout_obj("a", "2", "Succeeded", ""))
    assert woken == ["c/ui"]
    slots.forget("b/ui")  # deleted mid-release
    assert woken[1:] == ["c/ui", "d/ui"]  # two free now; c has not claimed yet
    assert slots.claim("c/ui").granted
    slots.unclaim("c/ui")  # it began nothing (its canary was not ready): the slot frees
    assert woken[3:] == ["d/ui", "e/ui"]
    slots.not_waiting("e/ui")  # its release was superseded by the stable version
    assert slots.waiting() == ["d/ui"]


def test_a_restarted_registry_orders_waiters_by_their_stored_wait() -> None:
    from datetime import UTC, datetime

    slots = ReleaseSlots(1)
    slots.observe(rollout_obj("a", "1", "Progressing", "split"))
    slots.claim("late/ui", datetime(2030, 1, 1, 12, 5, tzinfo=UTC))
    slots.claim("early/ui", datetime(2030, 1, 1, 12, 0, tzinfo=UTC))
    assert slots.waiting() == ["early/ui", "late/ui"]


def test_metrics_show_the_cap_the_slots_in_use_and_the_waiting() -> None:
    telemetry = Telemetry()
    slots = release_slots(2, WorkQueue())
    assert slots is not None
    telemetry.track_release_slots(slots.limit, slots.running, lambda: len(slots.waiting()))
    slots.observe(rollout_obj("a", phase="Progressing", stage="split"))
    slots.claim("b/ui")
    slots.claim("c/ui")
    slots.claim("d/ui")

    def sample(name: str) -> float | None:
        return telemetry.registry.get_sample_value(name)

    assert sample("canary_release_slots") == 2
    assert sample("canary_release_slots_in_use") == 2
    assert sample("canary_release_slots_waiting") == 2
    slots.unclaim("b/ui")  # it began nothing
    assert sample("canary_release_slots_in_use") == 1


def test_a_cap_is_at_least_one() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ReleaseSlots(0)


# ---------------------------------------------------------------- three Rollouts, one slot


@contextmanager
def three_namespaces(env: Env) -> Iterator[list[str]]:
    """examples/ui in the test's namespace and two more (v1 and v2 ready in each)."""
    others = [f"{env.namespace}-b", f"{env.namespace}-c"]
    for namespace in others:
        install_example(env.client, namespace)
    try:
        yield [env.namespace, *others]
    finally:
        if env.plane is not None:
            for namespace in others:
                delete_example(env.client, namespace)


def apply_release(env: Env, namespace: str, rollout: Obj) -> None:
    body = copy.deepcopy(rollout)
    body["metadata"]["namespace"] = namespace
    env.client.apply(body)


def stored(env: Env, namespace: str) -> Obj:
    return env.client.get("canary.dev/v1alpha1", "Rollout", namespace, "ui")


def canary_weight(env: Env, namespace: str) -> int:
    vs = env.client.get("networking.istio.io/v1beta1", "VirtualService", namespace, "ui")
    return weights(vs).get("canary", 0)


def assert_waits(env: Env, namespace: str, status: Obj) -> None:
    assert (status.get("phase"), status.get("stage")) == ("Pending", "waiting")
    assert status.get("message") == WAITING
    progressing = next(c for c in status["conditions"] if c["type"] == "Progressing")
    assert progressing["reason"] == "WaitingForReleaseSlot"
    assert canary_weight(env, namespace) == 0


@ON_BOTH
def test_three_releases_with_one_slot_run_one_at_a_time(env: Env) -> None:
    reconciler = Reconciler(
        cluster=env.cluster,
        router=IstioRouter(),
        metrics=env.metrics,
        clock=env.clock,
        slots=ReleaseSlots(1),
    )
    with three_namespaces(env) as namespaces:
        for namespace in namespaces:
            apply_release(env, namespace, quick_rollout())
        began: dict[str, int] = {}
        ended: dict[str, int] = {}
        for tick in range(200):
            for namespace in namespaces:
                reconciler.reconcile(stored(env, namespace))
                statuses = {ns: stored(env, ns).get("status") or {} for ns in namespaces}
                running = [ns for ns, s in statuses.items() if wire_holds_release_slot(s)]
                assert len(running) <= 1, statuses
                for ns in running:
                    began.setdefault(ns, tick)
                for ns, status in statuses.items():
                    if status.get("phase") == "Succeeded" and ns in began:
                        ended.setdefault(ns, tick)
                    if ns not in began and status:
                        assert_waits(env, ns, status)
            if len(ended) == len(namespaces):
                break
            env.clock.advance(10)
        first, second, third = namespaces
        assert list(began) == namespaces  # in the order they were reconciled, one after another
        assert began[second] >= ended[first] and began[third] >= ended[second]
        for namespace in namespaces:
            status = stored(env, namespace)["status"]
            assert (status["phase"], status["stableVersion"]) == ("Succeeded", "v2")


# ---------------------------------------------------------------- the runtime


def brisk_release(namespace: str) -> Obj:
    """examples/ui releasing v2 through one split step, every check and wait 1 s long."""
    rollout = example_release(namespace=namespace)
    spec = rollout["spec"]
    spec["stages"] = {"split": {"steps": [50], "interval": "1s"}}
    spec["analysis"]["interval"] = "1s"
    spec["promotion"]["settleDelay"] = "1s"
    return rollout


def rollout_writes(env: Env) -> StoreRecorder:
    """Every stored version of every Rollout, in resourceVersion order (one counter)."""
    return StoreRecorder(env.sandbox.store, lambda event: event.storage_key[1] == "rollouts")


def most_running_at_once(versions: list[Obj]) -> int:
    """The most releases under way at any stored moment, replaying every write in order."""
    holding: dict[str, bool] = {}
    most = 0
    for obj in versions:
        meta = obj["metadata"]
        holding[meta["namespace"]] = wire_holds_release_slot(obj.get("status") or {})
        most = max(most, sum(holding.values()))
    return most


def succeeded(env: Env, namespace: str) -> bool:
    status = stored(env, namespace).get("status") or {}
    return status.get("phase") == "Succeeded" and status.get("stableVersion") == "v2"


def test_the_runtime_runs_one_release_at_a_time_and_wakes_the_next(env: Env) -> None:
    with three_namespaces(env) as namespaces, rollout_writes(env) as recorder:
        with in_process_controller(
            env.kubeconfig, FixedVerdicts(), max_concurrent_releases=1
        ) as controller:
            for namespace in namespaces:
                apply_release(env, namespace, brisk_release(namespace))
            for namespace in namespaces:
                wait_until(lambda ns=namespace: succeeded(env, ns), f"{namespace} released", 60.0)
        versions = recorder.versions
    assert most_running_at_once(versions) == 1
    waited = {
        obj["metadata"]["namespace"]
        for obj in versions
        if (obj.get("status") or {}).get("message") == WAITING
    }
    assert len(waited) == 2  # all three asked at once; two waited, each for the one before
    assert controller.slots is not None
    assert controller.slots.running() == 0 and controller.slots.waiting() == []


def test_a_restarted_controller_keeps_the_running_release_and_the_wait(env: Env) -> None:
    holding = FixedVerdicts(Verdict.NO_DATA)  # the release holds at its split step
    with three_namespaces(env) as namespaces, rollout_writes(env) as recorder:
        first, second, _ = namespaces
        with in_process_controller(env.kubeconfig, holding, max_concurrent_releases=1):
            apply_release(env, first, brisk_release(first))
            wait_until(lambda: canary_weight(env, first) == 50, "the first release at 50 %")
            apply_release(env, second, brisk_release(second))
            wait_until(
                lambda: (stored(env, second).get("status") or {}).get("message") == WAITING,
                "the second release waiting",
            )
        with in_process_controller(
            env.kubeconfig, holding, max_concurrent_releases=1
        ) as controller:
            restarted = controller.slots
            assert restarted is not None
            # reconciled by the new controller, and refused: the running release kept its slot
            wait_until(lambda: restarted.waiting() == [f"{second}/ui"], "the second refused")
            assert restarted.running() == 1
            assert_waits(env, second, stored(env, second)["status"])
            assert stored(env, first)["status"]["phase"] == "Progressing"
            holding.verdict = Verdict.PASS
            for namespace in (first, second):
                wait_until(lambda ns=namespace: succeeded(env, ns), f"{namespace} released", 60.0)
        assert most_running_at_once(recorder.versions) == 1
