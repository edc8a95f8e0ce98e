"""API requests per reconcile with the informer caches (`CachedCluster`), counted by the
controller's own client (`KubeCluster.request_counts`), on the sandbox and (`ON_BOTH`) on the
real control plane: the figures docs/performance.md reports, guarded so they cannot regress.
The informers' standing watches are not a tick's requests and are not counted (a watch that
times out reconnects whenever it does); their lists are.

Covers: a tick that changes nothing sends zero requests (no reads either); a check that does not
move traffic is one status write; a check that holds again, saying what the stored check said,
writes nothing until the heartbeat, and a changed verdict is stored at once; a step is one
VirtualService write and one status write, no DestinationRule write and no read; a hand edit
reaches the cache through the watch and is undone; a cache that is behind gets a 409 and the
write is planned again from a fresh read, keeping the other writer's change; the naive adapter
(no caches) reads on every tick; a tick on the mesh and spec it last found settled neither
checks nor plans (a spec edit does both again).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from controller_helpers import Env, writes
from support.controlplane import ON_BOTH
from support.polling import wait_until

from canary.controller.reconcile import Reconciler
from canary.core.path import CHECK_HEARTBEAT
from canary.core.status import Verdict
from canary.kube.informers import CachedCluster
from canary.mesh.istio import IstioRouter
from canary_sandbox.stack import example_release

READ_VERBS = ("get", "list")


@pytest.fixture
def cached(env: Env) -> Iterator[CachedCluster]:
    cluster = CachedCluster(env.cluster)
    stop = threading.Event()
    cluster.start(stop)
    assert cluster.wait_synced(10)
    env.reconciler = Reconciler(
        cluster=cluster, router=IstioRouter(), metrics=env.metrics, clock=env.clock
    )
    yield cluster
    stop.set()


def stored(env: Env) -> dict:
    """The Rollout as stored (the test's own client: not counted)."""
    return env.rollout()


def tick(env: Env, seconds: float) -> None:
    env.clock.advance(seconds)
    env.cluster.request_counts.clear()
    env.reconciler.reconcile(stored(env))


def requests(env: Env) -> dict[tuple[str, str], int]:
    """What the controller's client sent since the tick began, but the informers' watches."""
    return {key: n for key, n in env.cluster.request_counts.items() if key[0] != "watch" and n}


def count(env: Env, verb: str, resource: str, subresource: str | None = None) -> int:
    return requests(env).get((verb, f"{resource}/{subresource}" if subresource else resource), 0)


def requests_except_events(env: Env) -> int:
    return sum(n for (_verb, resource), n in requests(env).items() if resource != "events")


def reads(env: Env) -> int:
    return sum(n for (verb, _resource), n in requests(env).items() if verb in READ_VERBS)


def start_release(env: Env, split_interval: str = "30s") -> None:
    rollout = copy.deepcopy(example_release())
    rollout["spec"]["analysis"]["interval"] = "10s"
    rollout["spec"]["stages"]["mirror"]["duration"] = "10s"
    rollout["spec"]["stages"]["headerCanary"]["duration"] = "10s"
    rollout["spec"]["stages"]["split"]["interval"] = split_interval
    env.apply(rollout)
    env.reconciler.reconcile(stored(env))
    tick(env, 1)  # settles anything the first reconcile asked to requeue


def to_split(env: Env) -> None:
    for _ in range(2):  # mirror -> header canary -> split 10 %
        tick(env, 10)
    assert stored(env)["status"]["stage"] == "split"


@ON_BOTH
def test_a_tick_that_changes_nothing_sends_no_request(env: Env, cached: CachedCluster) -> None:
    start_release(env)
    to_split(env)
    tick(env, 1)  # analysis not due: nothing to measure, nothing to write
    assert requests(env) == {}


@ON_BOTH
def test_a_check_that_moves_no_traffic_is_one_status_write(env: Env, cached: CachedCluster) -> None:
    start_release(env)
    to_split(env)
    tick(env, 10)  # 1 of the 3 checks of split 10 %
    assert stored(env)["status"]["passedChecks"] == 1
    assert count(env, "patch", "rollouts", "status") == 1
    assert requests_except_events(env) == 1


@ON_BOTH
def test_a_check_that_holds_again_writes_nothing_until_the_heartbeat(
    env: Env, cached: CachedCluster
) -> None:
    start_release(env)
    to_split(env)
    env.metrics.verdict = Verdict.NO_DATA
    tick(env, 10)  # the first hold is news: stored, with its AnalysisHeld Event
    first = stored(env)["status"]["lastAnalysis"]
    assert (first["countedAs"], count(env, "patch", "rollouts", "status")) == ("noData", 1)
    repeats = int(CHECK_HEARTBEAT.total_seconds() // 10) - 1
    for _ in range(repeats):
        tick(env, 10)
        assert requests(env) == {}
    assert stored(env)["status"]["lastAnalysis"] == first
    tick(env, 10)  # the heartbeat: the check is stored again, and only the check
    assert count(env, "patch", "rollouts", "status") == 1
    assert requests_except_events(env) == 1
    assert stored(env)["status"]["lastAnalysis"]["time"] != first["time"]


@ON_BOTH
def test_store_every_check_stores_each_hold(env: Env, cached: CachedCluster) -> None:
    start_release(env)
    to_split(env)
    env.reconciler.store_every_check = True  # `canary controller --store-every-check`
    env.metrics.verdict = Verdict.NO_DATA
    tick(env, 10)
    tick(env, 10)
    assert count(env, "patch", "rollouts", "status") == 1


@ON_BOTH
def test_a_changed_verdict_is_stored_at_once(env: Env, cached: CachedCluster) -> None:
    start_release(env)
    to_split(env)
    env.metrics.verdict = Verdict.NO_DATA
    tick(env, 10)
    env.metrics.verdict = Verdict.PASS
    tick(env, 10)
    assert count(env, "patch", "rollouts", "status") == 1
    assert stored(env)["status"]["lastAnalysis"]["countedAs"] == "pass"


@ON_BOTH
def test_a_step_is_one_virtual_service_write_and_one_status_write(
    env: Env, cached: CachedCluster
) -> None:
    start_release(env, split_interval="10s")
    to_split(env)
    tick(env, 10)  # split 10 % -> 25 %
    assert stored(env)["status"]["canaryWeight"] == 25
    assert count(env, "update", "virtualservices") == 1
    assert count(env, "patch", "rollouts", "status") == 1
    assert count(env, "update", "destinationrules") == 0
    assert reads(env) == 0
    assert requests_except_events(env) == 2


@ON_BOTH
def test_a_hand_edit_reaches_the_cache_by_watch_and_is_undone(
    env: Env, cached: CachedCluster
) -> None:
    start_release(env)
    to_split(env)
    vs = env.vs()
    for destination in vs["spec"]["http"][-1]["route"]:
        destination["weight"] = 50
    edited = env.put(vs)
    edited_version = int(edited["metadata"]["resourceVersion"])
    wait_until(
        lambda: _cached_version(cached, env.namespace) >= edited_version,
        "the watch to deliver the edit",
        every=0.02,
    )
    tick(env, 1)
    assert count(env, "update", "virtualservices") == 1
    assert reads(env) == 0
    weights = {
        d["destination"]["subset"]: d["weight"] for d in env.vs()["spec"]["http"][-1]["route"]
    }
    assert weights == {"stable": 90, "canary": 10}


@ON_BOTH
def test_a_cache_that_is_behind_gets_a_conflict_and_plans_again_from_a_fresh_read(
    env: Env,
) -> None:
    cluster = CachedCluster(env.cluster)  # never started: the caches see no watch events
    env.reconciler = Reconciler(
        cluster=cluster, router=IstioRouter(), metrics=env.metrics, clock=env.clock
    )
    start_release(env, split_interval="10s")
    to_split(env)
    vs = env.vs()
    vs["metadata"].setdefault("annotations", {})["someone-else"] = "was here"
    env.put(vs)
    tick(env, 10)  # split 10 % -> 25 %, planned first on the stale cached object
    assert count(env, "update", "virtualservices") == 2  # 409, then ok
    after = env.vs()
    assert after["metadata"]["annotations"]["someone-else"] == "was here"
    assert stored(env)["status"]["canaryWeight"] == 25
    weights = {d["destination"]["subset"]: d["weight"] for d in after["spec"]["http"][-1]["route"]}
    assert weights == {"stable": 75, "canary": 25}


@ON_BOTH
def test_without_caches_every_tick_reads_the_mesh(env: Env) -> None:
    start_release(env)
    to_split(env)
    tick(env, 1)
    # one read of each object per tick (the figure docs/performance.md reports): converge and
    # the decision plan on the same read, and a write would read again (read-modify-write)
    assert count(env, "get", "virtualservices") == 1
    assert count(env, "get", "destinationrules") == 1
    assert writes(env) == 0


def _cached_version(cluster: CachedCluster, namespace: str) -> int:
    cached = cluster.virtual_services.get(namespace, "ui") or {}
    return int(cached.get("metadata", {}).get("resourceVersion") or 0)


class CountingRouter(IstioRouter):
    """The Istio router, counting its checks and plans."""

    def __init__(self) -> None:
        self.calls = 0

    def check(self, *args: Any) -> None:
        self.calls += 1
        super().check(*args)

    def plan_virtual_service(self, *args: Any) -> Any:
        self.calls += 1
        return super().plan_virtual_service(*args)

    def plan_destination_rule(self, *args: Any) -> Any:
        self.calls += 1
        return super().plan_destination_rule(*args)


@ON_BOTH
def test_a_tick_on_the_mesh_and_spec_it_last_found_settled_checks_and_plans_nothing(
    env: Env, cached: CachedCluster
) -> None:
    router = CountingRouter()
    env.reconciler.router = router
    start_release(env)
    to_split(env)
    tick(env, 1)  # the first on this reconciler's memory of the settled mesh
    router.calls = 0
    tick(env, 1)
    assert router.calls == 0 and requests(env) == {}

    rollout = stored(env)
    rollout["spec"]["analysis"]["failureLimit"] = 5  # a spec edit: checked and planned again
    env.put(rollout)
    tick(env, 1)
    assert router.calls > 0
