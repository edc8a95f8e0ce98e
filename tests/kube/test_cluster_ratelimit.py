"""The client-side rate limiter and backoff, and the adapter's use of them.

Covers: a burst passes without waiting, then tokens come at `qps`; tokens refill while idle
but never above `burst`; concurrent callers each get their own token; qps <= 0 is unlimited;
backoff doubles up to its cap with jitter; the adapter takes a token and counts (verb,
resource) and calls `on_request` for every request it sends.
"""

from __future__ import annotations

import threading

import pytest
from cluster_helpers import NAMESPACE

from canary.common.pacing import Backoff, TokenBucket
from canary.kube.client import KubeCluster
from canary_sandbox.apiserver import ApiServer


class FakeClock:
    """A monotonic clock that only moves when the limiter sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def bucket(qps: float, burst: int, clock: FakeClock) -> TokenBucket:
    return TokenBucket(qps, burst, clock=clock, sleep=clock.sleep)


def test_a_burst_passes_then_requests_are_spaced_by_qps():
    clock = FakeClock()
    limiter = bucket(qps=2, burst=3, clock=clock)

    waits = [limiter.acquire() for _ in range(6)]

    assert waits == [0, 0, 0, 0.5, 0.5, 0.5]
    assert clock.now == pytest.approx(1.5)


def test_idle_time_refills_up_to_burst_only():
    clock = FakeClock()
    limiter = bucket(qps=10, burst=2, clock=clock)
    for _ in range(2):
        limiter.acquire()

    clock.now += 60  # a long idle spell earns at most `burst` tokens
    waits = [limiter.acquire() for _ in range(3)]

    assert waits == [0, 0, pytest.approx(0.1)]


def test_concurrent_callers_each_reserve_their_own_token():
    clock = FakeClock()
    limiter = TokenBucket(qps=4, burst=1, clock=clock, sleep=lambda _: None)  # time stands still
    waits: list[float] = []
    lock = threading.Lock()

    def take() -> None:
        waited = limiter.acquire()
        with lock:
            waits.append(waited)

    threads = [threading.Thread(target=take) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(waits) == [0, 0.25, 0.5, 0.75, 1.0]


def test_zero_qps_is_unlimited():
    clock = FakeClock()
    limiter = bucket(qps=0, burst=1, clock=clock)

    assert [limiter.acquire() for _ in range(100)] == [0] * 100
    assert clock.sleeps == []


def test_burst_must_be_positive():
    with pytest.raises(ValueError, match="burst must be at least 1"):
        TokenBucket(qps=1, burst=0)


def test_backoff_doubles_to_its_cap_with_jitter():
    no_jitter = Backoff(base=0.5, cap=3, jitter=lambda: 1.0)
    half = Backoff(base=0.5, cap=3, jitter=lambda: 0.0)

    assert [no_jitter.next_delay() for _ in range(5)] == [0.5, 1, 2, 3, 3]
    assert [half.next_delay() for _ in range(3)] == [0.25, 0.5, 1]
    no_jitter.reset()
    assert no_jitter.next_delay() == 0.5


def test_the_adapter_takes_a_token_for_every_request(server: ApiServer, kubeconfig: object):
    clock = FakeClock()
    limiter = bucket(qps=5, burst=1, clock=clock)
    cluster = KubeCluster.from_kubeconfig(str(kubeconfig), limiter=limiter)
    seen: list[tuple[str, str, int]] = []
    cluster.on_request = lambda verb, resource, code, seconds: seen.append((verb, resource, code))

    cluster.list_rollouts(NAMESPACE)
    cluster.workload_state(NAMESPACE, "Deployment", "ui-v2")
    cluster.try_acquire_lease(NAMESPACE, "leader", "a", 15)

    assert seen == [
        ("list", "rollouts", 200),
        ("get", "deployments", 404),
        ("get", "leases", 404),
        ("create", "leases", 201),
    ]
    assert clock.sleeps == [0.2, 0.2, 0.2]  # the first request used the burst
    assert cluster.request_counts == {
        ("list", "rollouts"): 1,
        ("get", "deployments"): 1,
        ("get", "leases"): 1,
        ("create", "leases"): 1,
    }
    assert sum(cluster.request_counts.values()) == len(server.request_log.records)
